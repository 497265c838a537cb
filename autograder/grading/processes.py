"""Starting the grader's child processes, measuring and killing their trees, and the channel folders they share.

Every process the grader starts (the fork servers, a checker or nbgrader worker that no fork server could start,
the bubblewrap placeholder) is started by ``start``: a session of its own, so that the whole session can be
killed, and tied to the life of the thread that started it (``child_setup``, see ``sandbox/lifetime.py``). A
grading thread ends its processes with ``end``: their trees, then whatever is left in their sessions.

Unix sockets need short paths (at most 107 bytes), so the sockets of a submission (checker, kernel) and of the
batch's fork servers live in *channel folders* directly in the temporary folder (``channel_folder``). These, a
batch's work folder (``autograder-grade-*``) and a Dask worker's folder (``autograder-worker-*``) are *owned
folders*, named after the process that made them (``owned_folder``). Their makers remove them; a grader killed
with ``kill -9``, or a Dask worker its nanny ends, cannot, so each batch and each Dask worker first removes the
owned folders whose maker is dead (``remove_abandoned_folders``).
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

import psutil

from autograder.grading.sandbox.lifetime import die_with_parent

CHANNEL_PREFIX = "autograder-channel-"
GRADE_PREFIX = "autograder-grade-"
WORKER_PREFIX = "autograder-worker-"
OWNED_PREFIXES = (CHANNEL_PREFIX, GRADE_PREFIX, WORKER_PREFIX)
_OWNED_NAME = re.compile(
    "(?:" + "|".join(map(re.escape, OWNED_PREFIXES)) + r")(?P<pid>\d+)-(?P<namespace>\d+)-"
)
KILL_WAIT_SECONDS = 5


class Child(Protocol):
    """A started process: a ``subprocess.Popen``, or a ``trusted_forks.ForkedProcess`` that answers like one."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def child_setup(cpu_seconds: int | None = None) -> Callable[[], None]:
    """What a grading child runs between fork and exec: die with the calling thread, and cap its CPU time.

    The children run in sessions of their own, which a SIGKILL of the grader's process group does not reach;
    the parent-death signal ends them when the thread that started them ends, however it ends.
    """
    parent = os.getpid()

    def apply() -> None:
        die_with_parent(parent)
        if cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))

    return apply


def start(
    argv: Sequence[str], cwd: Path, env: dict[str, str], log: IO[bytes], stdin: int | IO = subprocess.DEVNULL,
    cpu_seconds: int | None = None, pass_fds: Sequence[int] = (),
) -> subprocess.Popen:
    """Start ``argv`` in a session of its own, output (both streams) to ``log``, dying with the calling thread."""
    return subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_setup(cpu_seconds),
        start_new_session=True, pass_fds=tuple(pass_fds),
    )


@functools.cache
def _proc_lists_children() -> bool:
    """Whether this system's ``/proc`` lists each thread's children (Linux: ``/proc/PID/task/TID/children``)."""
    return os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children")


def _child_pids(pid: int) -> list[int]:
    """The pids of the children of process ``pid``, read from its threads' ``children`` files in ``/proc``
    (empty when it has ended): files of this process only, where psutil reads every process of the system."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    pids = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as listing:
                pids.extend(map(int, listing.read().split()))
        except OSError:  # the thread has ended
            continue
    return pids


def tree(process: psutil.Process) -> list[psutil.Process]:
    """``process`` and all its descendants; empty when it has ended.

    Where ``/proc`` lists children, the descendants are found from ``process`` down, at a cost that grows with
    the tree, not with the number of processes on the machine (a watcher calls this every second, on shared
    hosts too); elsewhere psutil's ``children(recursive=True)`` finds them.
    """
    try:
        if not _proc_lists_children():
            return [process, *process.children(recursive=True)]
        if not process.is_running():
            return []
    except psutil.NoSuchProcess:
        return []
    found, pending = [process], _child_pids(process.pid)
    while pending:
        pid = pending.pop()
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        pending.extend(_child_pids(pid))
    return found


def tree_of(pid: int) -> list[psutil.Process]:
    """``tree`` of the process ``pid``; empty when there is none."""
    try:
        return tree(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return []


def usage(processes: list[psutil.Process]) -> tuple[float, float]:
    """(resident memory in MiB, CPU seconds) of ``processes`` together; ended ones count for nothing."""
    memory, cpu = 0.0, 0.0
    for proc in processes:
        try:
            memory += proc.memory_info().rss
            times = proc.cpu_times()
            cpu += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return memory / 2**20, cpu


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL each of ``processes`` and wait (a few seconds at most) for them to end."""
    for proc in processes:
        try:
            proc.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    psutil.wait_procs(processes, timeout=KILL_WAIT_SECONDS)


def kill_session(session_id: int) -> None:
    """Kill every process left in a session (a kernel's stray children cannot leave it: setsid is refused)."""
    stray = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session_id:
                stray.append(proc)
        except (OSError, psutil.Error):
            continue
    kill(stray)


def end(child: Child) -> None:
    """Kill ``child``'s tree if it still runs, then whatever is left in its session, and reap it."""
    if child.poll() is None:
        kill(tree_of(child.pid))
    kill_session(child.pid)
    child.wait()


# --- owned folders ------------------------------------------------------------------------------------------


def _temporary_folder() -> Path:
    return Path("/tmp") if os.path.isdir("/tmp") else Path(tempfile.gettempdir())


def _pid_namespace() -> int:
    """An identity of this process's PID namespace (0 where there is none to read): a pid means something only
    inside its namespace."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owned_folder(prefix: str, mode: int = 0o700, base: Path | None = None) -> Path:
    """A new folder ``<prefix><pid>-<pid namespace>-<random>`` in ``base`` (default: the temporary folder), named
    after this process so that ``remove_abandoned_folders`` can tell when its maker has ended.

    Args:
        prefix: one of ``OWNED_PREFIXES``.
        mode: the folder's permissions.
        base: where to make it.
    """
    if prefix not in OWNED_PREFIXES:
        raise ValueError(f"{prefix!r} is not one of the owned folders' prefixes {OWNED_PREFIXES}")
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-{_pid_namespace()}-", dir=base))
    folder.chmod(mode)
    return folder


@contextmanager
def temporary_owned_folder(prefix: str, base: Path | None = None) -> Iterator[Path]:
    """``owned_folder``, private, removed with all it holds when the block ends (as ``TemporaryDirectory``)."""
    folder = owned_folder(prefix, base=base)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def channel_folder(mode: int = 0o700, base: Path | None = None) -> Path:
    """A new owned folder with a short path for Unix sockets.

    Args:
        mode: the folder's permissions.
        base: where to make it; default ``/tmp`` (short, whatever ``TMPDIR`` says), else the temporary folder.
    """
    return owned_folder(CHANNEL_PREFIX, mode, base or _temporary_folder())


def folder_owner(folder: Path) -> int | None:
    """The pid of the process that made owned folder ``folder``, when it was made in this PID namespace."""
    found = _OWNED_NAME.match(folder.name)
    if found is None or int(found["namespace"]) != _pid_namespace():
        return None
    return int(found["pid"])


def remove_abandoned_folders(base: Path | None = None) -> list[Path]:
    """Remove the owned folders under ``base`` (default: ``/tmp`` and the temporary folder) whose maker has
    ended; never one of a running process, nor one made in another PID namespace. A folder that cannot be
    removed (another user's) is left.

    Returns:
        The folders removed.
    """
    removed = []
    for where in [base] if base else sorted({_temporary_folder(), Path(tempfile.gettempdir())}):
        try:
            candidates = [path for prefix in OWNED_PREFIXES for path in where.glob(f"{prefix}*")]
        except OSError:
            continue
        for folder in candidates:
            owner = folder_owner(folder)
            if owner is None or psutil.pid_exists(owner):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


__all__ = [
    "CHANNEL_PREFIX", "GRADE_PREFIX", "OWNED_PREFIXES", "WORKER_PREFIX", "Child", "channel_folder", "child_setup",
    "end", "folder_owner", "kill", "kill_session", "owned_folder", "remove_abandoned_folders", "start",
    "temporary_owned_folder", "tree", "tree_of", "usage",
]
