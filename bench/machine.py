"""What a benchmark run records about its machine and the processes it starts: ``machine_info`` (cores, memory,
CPU model, load, versions, commit) and ``TreeSampler`` (peak resident memory of process trees and the CPU of each
process by its role in grading, sampled in a thread).
"""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
FORKED_MARKER = "kernel_forks.py"
TRUSTED_SERVER_MARKER = "autograder.grading.trusted_forks"
"""The command line of a trusted fork server, and of the processes it forks (which only rename themselves)."""
SAMPLE_SECONDS = 0.2
CHECKER_MODULE = "autograder.grading.sandbox.checker"
NBGRADER_WORKER_MODULE = "autograder.grading.nbgrader_worker"
ROLES = ("kernels", "checkers", "nbgrader workers", "coordinator", "kernel fork server", "checkers' fork server",
         "nbgrader workers' fork server", "sandbox stand-ins and bwrap", "other")
"""The process roles of ``TreeSampler.cpu_by_role``, in the order a report shows them."""


def forked_name(module: str) -> str:
    """The name a trusted fork server's child running ``module`` gives itself (``trusted_forks._name_process``), as
    the system keeps it: at most 15 characters."""
    return module.rsplit(".", 1)[-1][:15]


def machine_info() -> dict:
    """Cores, memory, CPU model, load and software versions of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    quota = ""
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        quota = "none" if limit == "max" else f"{int(limit) / int(period):g} CPUs"
    except (OSError, ValueError):
        pass
    versions = {}
    for package in ("torch", "nbgrader", "nbclient", "jupyter_client", "ipykernel", "fastai"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            versions[package] = "-"
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except OSError:
        commit = "-"
    return {
        "cpu_model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "cgroup_cpu_quota": quota or "-",
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_available_gib": round(psutil.virtual_memory().available / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


class TreeSampler:
    """Samples, every 0.2 s in a thread, the resident memory of process trees, and the CPU of each process.

    Args:
        tops: the processes whose whole trees are watched.
        groups: the processes whose trees are one "grading process tree" each when no process matches
            ``marker`` (default: ``tops``).
        marker: a command-line fragment naming grading processes (``autograder``'s per-submission worker);
            each matching process with its descendants is one grading process tree.
    """

    def __init__(self, tops: list[int], groups: list[int] | None = None, marker: str | None = None) -> None:
        self.tops, self.groups, self.marker = list(tops), list(groups or tops), marker
        self.peak_group_mb = 0.0
        self.peak_total_mb = 0.0
        self._cpu: dict[tuple[int, float], tuple[str, float]] = {}  # (pid, start time) -> (role, CPU seconds) at its last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def add_top(self, pid: int, group: bool = False) -> None:
        self.tops.append(pid)
        if group:
            self.groups.append(pid)

    @staticmethod
    def _cmdline(proc: psutil.Process) -> str:
        """Read at each sample, never kept: a process seen between its fork and its exec still has its parent's."""
        try:
            return " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return ""

    @staticmethod
    def _tree(pid: int) -> list[psutil.Process]:
        try:
            proc = psutil.Process(pid)
            return [proc, *proc.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []

    def sample(self) -> None:
        procs = {p.pid: p for top in self.tops for p in self._tree(top)}
        rss = {}
        for pid, proc in procs.items():
            try:
                rss[pid] = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.peak_total_mb = max(self.peak_total_mb, sum(rss.values()) / 2**20)
        self._sample_cpu(procs)
        roots = [pid for pid, proc in procs.items() if self.marker and self._is_worker(proc)] or self.groups
        forked = self._forked_kernels(procs)
        for root in roots:
            group = sum(rss.get(p.pid, 0) for p in self._tree(root)) + sum(rss.get(pid, 0) for pid in self._kernels_of(root, forked))
            self.peak_group_mb = max(self.peak_group_mb, group / 2**20)

    def cpu_by_role(self) -> dict[str, tuple[float, int]]:
        """Role (``ROLES``) -> (CPU seconds, processes) of every process seen, each at its last sample.

        Sampled: what a process spent after its last sample (at most ``SAMPLE_SECONDS`` before it ended) is not
        counted, so the total is a little below the exact CPU of the tree.
        """
        found: dict[str, tuple[float, int]] = {}
        for role, cpu in self._cpu.values():
            seconds, count = found.get(role, (0.0, 0))
            found[role] = (seconds + cpu, count + 1)
        return {role: found[role] for role in ROLES if role in found}

    def _sample_cpu(self, procs: dict[int, psutil.Process]) -> None:
        for pid, proc in procs.items():
            try:
                times = proc.cpu_times()
                key = (pid, proc.create_time())
                role = self.role(proc, procs) or self._cpu.get(key, ("other", 0.0))[0]
                self._cpu[key] = (role, times.user + times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def role(self, proc: psutil.Process, procs: dict[int, psutil.Process]) -> str | None:
        """What ``proc`` is in a grading run (one of ``ROLES``), from its command line, name and parent; None when
        they cannot be read (a process that has ended: the role seen at an earlier sample stands).

        Read again at every sample: a process forked by a fork server shows its server's command line, and takes
        its own name only once it runs (``trusted_forks._name_process``); a forked kernel is told from its server
        by its parent, the server.
        """
        if proc.pid in self.tops:
            return "coordinator"
        command = self._cmdline(proc)
        try:
            name, parent = proc.name(), procs.get(proc.ppid())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if not command:
            return None
        if FORKED_MARKER in command:
            forked = parent is not None and parent.pid not in self.tops and FORKED_MARKER in self._cmdline(parent)
            return "kernels" if forked else "kernel fork server"
        if "kernel_boot" in command or name == "bwrap":
            return "sandbox stand-ins and bwrap"
        for module, role in ((CHECKER_MODULE, "checkers"), (NBGRADER_WORKER_MODULE, "nbgrader workers")):
            if name == forked_name(module) or (module in command and TRUSTED_SERVER_MARKER not in command):
                return role
        if TRUSTED_SERVER_MARKER in command:
            return "checkers' fork server" if command.endswith(CHECKER_MODULE) else "nbgrader workers' fork server"
        return "other"

    def _is_worker(self, proc: psutil.Process) -> bool:
        """A grading process: started with the marker on its command line, or forked by a trusted fork server
        and named after it; not the fork server itself, whose command line names the marker too."""
        command = self._cmdline(proc)
        try:
            named = proc.name() == forked_name(self.marker)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False
        return named if TRUSTED_SERVER_MARKER in command else self.marker in command or named

    def _forked_kernels(self, procs: dict[int, psutil.Process]) -> dict[str, int]:
        """Kernels forked by the batch's fork server (children of it, not of their grading process), by the
        submission's work folder (the parent of the kernel's working folder)."""
        found = {}
        for pid, proc in procs.items():
            try:
                parent = procs.get(proc.ppid())
                if parent is not None and FORKED_MARKER in self._cmdline(proc) and FORKED_MARKER in self._cmdline(parent):
                    found[str(Path(proc.cwd()).parent)] = pid
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def _kernels_of(self, root: int, forked: dict[str, int]) -> list[int]:
        """The forked kernel of the grading process ``root``: the one whose work folder holds root's working folder."""
        try:
            cwd = psutil.Process(root).cwd()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return []
        return [pid for work, pid in forked.items() if cwd == work or cwd.startswith(work + "/")]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)
