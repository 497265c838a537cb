"""The folders, files and environment of one sandboxed submission.

Inside the submission's work folder::

    kernel/     the kernel's working folder and HOME: the only place it may write (owned by the sandbox user)
    ../.sandbox-shared/  what the batch's kernels share read-only: the MNIST sample and matplotlib's font cache
    private/    the checker's configuration and reports, the kernel's refusal log (never readable by the kernel)
    jupyter/    the kernel spec that starts ``kernel_boot.py``
    runtime/    Jupyter's connection files
    course/     the scratch nbgrader course (gradebook with hidden tests: never readable by the kernel)

The checker's Unix socket lives in a folder of its own with a short path under ``/tmp`` (``Sandbox.channel``, see
``processes.channel_folder``; removed after the submission), since a socket's path may have at most 107 bytes; so
do the kernel's ZMQ sockets (``channel/ipc/``, written by the kernel).

With ``isolate``, the kernel also runs in a namespace sandbox that bubblewrap builds for the submission
(``namespaces.Holder``): its filesystem holds the Python installation, the MNIST sample, matplotlib's cache
(read-only), ``kernel/`` (its one writable folder) and the channel, nothing else; no network, its own PID, IPC
and UTS namespaces, a private ``/tmp``, no capabilities. The kernel, forked from the fork server, joins it
before any student code runs (``kernel_boot.enter_sandbox``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import site
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import autograder
from autograder.grading import processes
from autograder.grading.nbgrader_worker import KERNEL_IPC_ENV
from autograder.grading.sandbox import kernel_boot, kernel_forks, namespaces, peer_files
from autograder.grading.sandbox.checker_config import CheckerConfig
from autograder.grading.sandbox.shared_data import stage_data, stage_matplotlib
from autograder.grading.sandbox.kernel_boot import OUTPUT_REFUSAL

SANDBOX_USER = "nobody"
MAX_FILE_BYTES = 512 * 2**20
MAX_PROCESSES = 512
SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/dev", "/sys", "/proc", "/opt")
PRELOAD = ("torch",)
SHARED = ".sandbox-shared"


@dataclass(frozen=True)
class Sandbox:
    """Paths and settings of one submission's sandbox (see the module docstring)."""

    work: Path
    channel: Path
    kernel: Path
    private: Path
    socket: Path
    reports: Path
    violations: Path
    kernel_pid: Path
    kernel_exit: Path
    checker_config: Path
    env: dict[str, str]
    uid: int | None
    holder: namespaces.Holder | None = None
    """The namespace sandbox's placeholder (None without ``isolate``); closing it ends every process in it."""


def _readable_by_others(path: Path, below: str = "/") -> bool:
    """Whether any user may read ``path``: the file readable, and every folder above it down to ``below`` searchable,
    by others (a namespace sandbox makes the folders above a bound folder searchable by all)."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        folders = [folder for folder in path.resolve().parents if namespaces.inside(str(folder), below)]
        return all(folder.stat().st_mode & stat.S_IXOTH for folder in folders)
    except OSError:
        return False


def sandbox_user(isolated: bool = False) -> tuple[int, int] | None:
    """(uid, gid) the kernel drops to when grading runs as root.

    None when grading runs as another user, when the user does not exist, or when that user could not read this
    Python installation: without ``isolated``, an interpreter under root's home folder is out of its reach; with it,
    the kernel sees only the bound folders, whose own modes count.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return None
    bound = namespaces.python_paths() if isolated else ["/"]
    torch_file = importlib.util.find_spec("torch").origin  # where the kernel imports torch from, without importing it here
    for file in (os.__file__, shutil.__file__, torch_file):
        real = os.path.realpath(file)
        below = next((os.path.realpath(folder) for folder in bound if namespaces.inside(real, os.path.realpath(folder))), None)
        if below is None or not _readable_by_others(Path(real), below):
            return None
    return entry.pw_uid, entry.pw_gid


def _kernel_spec(into: Path, boot_config: Path) -> None:
    spec = into / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-I", kernel_boot.__file__, str(boot_config), "-f", "{connection_file}"],
        "display_name": "Python 3 (autograder sandbox)",
        "language": "python",
    }))


def library_folders() -> list[str]:
    """Where this interpreter imports installed packages from: its site folders, and any other ``site-packages``
    or ``dist-packages`` folder on ``sys.path`` (one a ``.pth`` file or ``PYTHONPATH`` added)."""
    extra = [entry for entry in sys.path if Path(entry).name in ("site-packages", "dist-packages") and Path(entry).is_dir()]
    return sorted({sys.prefix, *site.getsitepackages(), *extra})


def _readable_roots(data: Path | None) -> list[str]:
    roots = {sys.base_prefix, sys.exec_prefix, *library_folders(), *SYSTEM_READABLE}
    if data is not None:
        roots.add(str(data.parent))
    return sorted(roots)


def _scrubbed_env(sandbox_home: Path, kernel: Path, work: Path, threads: int) -> dict[str, str]:
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(kernel),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "FASTAI_HOME": str(sandbox_home),
        "IPYTHONDIR": str(kernel / ".ipython"),
        "MPLCONFIGDIR": str(kernel / ".matplotlib"),
        "TMPDIR": str(kernel / "tmp"),
        "JUPYTER_PATH": str(work / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(work / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(work / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    for name in ("AUTOGRADER_DEVICE", "CUDA_VISIBLE_DEVICES"):
        if name in os.environ:
            env[name] = os.environ[name]
    if threads > 0:
        env.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    return env


def fork_server_env(shared: Path, threads: int) -> dict[str, str]:
    """The fork server's environment: a kernel's, with a home of its own under ``shared`` and the batch's
    matplotlib folder (read when matplotlib is imported; kernels may read it)."""
    home = shared / "fork-server"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = _scrubbed_env(home / ".fastai", home, home, threads)
    env["MPLCONFIGDIR"] = str(stage_matplotlib(shared))
    return env


def _hidden_parts(course_root: Path, work: Path, bound: list[str]) -> tuple[list[str], list[str]]:
    """(forbidden, hidden) for the kernel's namespace sandbox.

    Forbidden (never bound, nor any folder holding them): every entry of the course except one that holds a bound
    path (a virtual environment in the course folder), the submission's scratch course, private files and kernel
    spec. Hidden (covered by an empty read-only folder): the ``autograder`` package (reference and checks) when it
    lies inside a bound folder (installed into site-packages); else it is forbidden too.
    """
    bound = [os.path.realpath(path) for path in bound]
    course = course_root.resolve()
    forbidden = [str(entry) for entry in course.iterdir() if not any(namespaces.inside(b, os.path.realpath(entry)) for b in bound)]
    forbidden += [str(work / "course"), str(work / "private"), str(work / "jupyter")]
    package = str(Path(autograder.__file__).parent.resolve())
    inside_bound = any(package != b and namespaces.inside(package, b) for b in bound)
    return (forbidden, [package]) if inside_bound else ([*forbidden, package], [])


def _start_holder(kernel: Path, channel: Path, data: Path | None, matplotlib_folder: Path, course_root: Path, work: Path
                  ) -> namespaces.Holder:
    """The submission's namespace sandbox, built by this process's user (as root: with no user namespace, so that
    the kernel joins it as root and only then becomes ``sandbox_user``, see ``joining.join``)."""
    read_only = [*namespaces.python_paths(), str(matplotlib_folder), *([str(data)] if data is not None else [])]
    forbidden, hidden = _hidden_parts(course_root, work, read_only)
    mounts = namespaces.Mounts(read_only, str(kernel), shared=[str(channel)], forbidden=forbidden, hidden=hidden)
    return namespaces.Holder.start(mounts, preexec_fn=processes.child_setup())


def build_sandbox(
    work: Path, course_root: Path, points: dict[str, float], threads: int, output_bytes: int = 64 * 2**20, fork_server: Path | None = None,
    isolate: bool = False, memory_bytes: int | None = None,
) -> Sandbox:
    """Create the sandbox folders and configuration for one submission under ``work``.

    Args:
        work: the submission's (empty apart from ``course/``) work folder.
        course_root: the real course, which the kernel must not read.
        points: each blank's points, for the checker.
        threads: math-library threads for the kernel (0: library default).
        output_bytes: what the kernel may print in all; past it, printing raises and the refusal is logged.
        fork_server: the socket of the batch's ``kernel_forks`` server, which then forks the kernel (it
            writes the kernel's pid to ``Sandbox.kernel_pid``, and how it ended to ``Sandbox.kernel_exit``); None:
            the kernel boots on its own.
        isolate: run the kernel in a namespace sandbox of its own (see the module docstring).
        memory_bytes: writable memory each of the kernel's processes may map (RLIMIT_DATA, set as it joins the
            namespace sandbox); None: no such limit.

    Raises:
        OSError: ``isolate`` and bubblewrap could not build the sandbox.
    """
    user = sandbox_user(isolate)
    kernel, private, channel = _make_folders(work, user)
    data, matplotlib_folder, fastai_home = _stage_kernel_home(kernel, work.parent / SHARED, user, isolate)
    env = _scrubbed_env(fastai_home, kernel, work, threads)
    env[KERNEL_IPC_ENV] = str(channel / "ipc" / "k")
    sandbox = Sandbox(work, channel, kernel, private, channel / "checker.sock", private / "reports", private / "violations.log",
                      private / "kernel.pid", private / "kernel.exit", private / "checker.json", env, user[0] if user else None)
    device = "cpu" if isolate else os.environ.get("AUTOGRADER_DEVICE")  # a sandbox's /dev has no GPU: tensors sent to its kernel stay on the CPU
    CheckerConfig(str(sandbox.socket), str(sandbox.reports), points, device).save(sandbox.checker_config)
    boot_config = work / "jupyter" / "sandbox.json"
    _kernel_spec(work / "jupyter", boot_config)
    config = _boot_config(sandbox, course_root, data, matplotlib_folder, fork_server, output_bytes, memory_bytes, user)
    boot_config.write_text(json.dumps(config))
    _give_to_user(kernel, user)
    if not isolate:
        return sandbox
    holder = _start_holder(kernel, channel, data, matplotlib_folder, course_root, work)
    config["holder_pid"] = holder.pid
    boot_config.write_text(json.dumps(config))
    return replace(sandbox, holder=holder)


def _make_folders(work: Path, user: tuple[int, int] | None) -> tuple[Path, Path, Path]:
    """``work/kernel``, ``work/private`` and a channel folder (``ipc/`` in it: the kernel's sockets), with their modes."""
    kernel, private, channel = work / "kernel", work / "private", processes.channel_folder(mode=0o711)
    for folder in (kernel, kernel / "tmp", private, work / "runtime", work / "jupyter-config"):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (work, *list(work.parents)[:2]):
        if folder.stat().st_uid == os.geteuid():
            folder.chmod(folder.stat().st_mode | 0o711)
    private.chmod(0o700)
    ipc = channel / "ipc"
    ipc.mkdir(mode=0o700)
    if user is not None:
        os.chown(ipc, *user)
    return kernel, private, channel


def _stage_kernel_home(kernel: Path, shared: Path, user: tuple[int, int] | None, isolate: bool) -> tuple[Path | None, Path, Path]:
    """Stage the batch's shared data; fill the kernel's HOME: (MNIST sample or None, matplotlib folder, FASTAI_HOME).

    The sample is hard-linked where no kernel can write it: it runs as another user, or in a namespace sandbox,
    which mounts the sample read-only. Otherwise a kernel running as this user could write through a link into
    the provisioned sample, so it gets a copy.
    """
    data = stage_data(shared, hard_links=user is not None or isolate)
    matplotlib_folder = stage_matplotlib(shared)
    shutil.copytree(matplotlib_folder, kernel / ".matplotlib")
    fastai_home = kernel / ".fastai"
    (fastai_home / "data").mkdir(parents=True)
    if data is not None:
        (fastai_home / "data" / "mnist_sample").symlink_to(data, target_is_directory=True)
    return data, matplotlib_folder, fastai_home


def _boot_config(
    sandbox: Sandbox, course_root: Path, data: Path | None, matplotlib_folder: Path, fork_server: Path | None, output_bytes: int,
    memory_bytes: int | None, user: tuple[int, int] | None,
) -> dict:
    """What ``kernel_boot.py`` reads (``jupyter/sandbox.json``); ``holder_pid`` is set once the namespace sandbox runs."""
    return {
        "scratch": str(sandbox.kernel),
        "readable": [*_readable_roots(data), str(matplotlib_folder), *kernel_boot.SOURCE_FILES, *kernel_forks.SOURCE_FILES, *peer_files.SOURCE_FILES],  # shown in tracebacks
        "denied": [str(course_root.resolve()), str(Path(autograder.__file__).parent.resolve()), str(sandbox.work.parent.resolve())],
        "libraries": library_folders(),
        "socket": str(sandbox.socket),
        "peer": peer_files.PEER,
        "violations": str(sandbox.violations),
        "fork_server": str(fork_server) if fork_server is not None else None,
        "kernel_pid": str(sandbox.kernel_pid),
        "kernel_exit": str(sandbox.kernel_exit),
        "max_file_bytes": MAX_FILE_BYTES,
        "max_output_bytes": output_bytes,
        "max_processes": MAX_PROCESSES,
        "max_memory_bytes": memory_bytes,
        "preload": list(PRELOAD),
        "uid": user[0] if user else None,
        "gid": user[1] if user else None,
        "holder_pid": None,
    }


def _give_to_user(kernel: Path, user: tuple[int, int] | None) -> None:
    """Make ``kernel/`` and everything in it the sandbox user's (when there is one), readable by it alone."""
    if user is not None:
        for folder, dirs, files in os.walk(kernel):
            os.chown(folder, *user, follow_symlinks=False)
            for name in files + dirs:
                os.chown(Path(folder) / name, *user, follow_symlinks=False)
    kernel.chmod(0o700)


def violations(sandbox: Sandbox) -> list[str]:
    """The distinct actions the kernel was refused, in order."""
    if not sandbox.violations.exists():
        return []
    seen: list[str] = []
    for line in sandbox.violations.read_text(errors="replace").splitlines()[:1000]:
        try:
            entry = json.loads(line)
            what = str(entry["what"] if isinstance(entry, dict) else entry)[:200]
        except (ValueError, KeyError):
            continue
        if what not in seen:
            seen.append(what)
    return seen


def kernel_ending(sandbox: Sandbox) -> dict[str, int] | None:
    """How the forked kernel ended: ``{"pid", "exit_code"}`` or ``{"pid", "signal"}``; None when unknown (it
    runs still, or booted on its own)."""
    try:
        ending = json.loads(sandbox.kernel_exit.read_text())
    except (OSError, ValueError):
        return None
    return ending if isinstance(ending, dict) and ("exit_code" in ending or "signal" in ending) else None


def reports(sandbox: Sandbox) -> dict[str, dict]:
    """The checker's report of each blank it checked."""
    found = {}
    for path in sorted(sandbox.reports.glob("*.json")) if sandbox.reports.exists() else []:
        try:
            found[path.stem] = json.loads(path.read_text())
        except ValueError:
            continue
    return found


def disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder`` (symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


__all__ = ["OUTPUT_REFUSAL", "Sandbox", "build_sandbox", "disk_usage", "kernel_ending", "reports", "sandbox_user", "violations"]
