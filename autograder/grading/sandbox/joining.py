"""Joining a namespace sandbox: a forked process (a kernel forked from the fork server) enters one bwrap built.

``namespaces.Holder`` builds one submission's sandbox around a placeholder process; ``join_and_fork`` moves the
calling process into the placeholder's namespaces and forks the process that runs student code, so that the fork
server's speed-up is kept. This file is standalone, like ``kernel_boot.py``: it imports nothing from
``autograder`` (its sibling ``lifetime.py`` is loaded by path), and loads the C library when imported, since a
joining process must not load libraries once inside the sandbox.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import sys
import types
from collections.abc import Sequence

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
JOINED = (("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("pid", CLONE_NEWPID))
"""The namespaces a joining process enters after the user namespace that owns them, in this order."""
NS_GET_USERNS = 0xB701
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""Loaded at import: a joining process must not load libraries once it has entered the sandbox."""
LIFETIME_MODULE = "autograder_sandbox_lifetime"


def _load_lifetime() -> types.ModuleType:
    """``lifetime.py`` (standalone), loaded by path once per process."""
    if LIFETIME_MODULE not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lifetime.py")
        spec = importlib.util.spec_from_file_location(LIFETIME_MODULE, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[LIFETIME_MODULE] = module
    return sys.modules[LIFETIME_MODULE]


lifetime = _load_lifetime()


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def _identity(fd: int) -> tuple[int, int]:
    found = os.fstat(fd)
    return found.st_dev, found.st_ino


def _drop_capabilities(last: int, then_become: tuple[int, int] | None = None) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets; no new privileges, ever.

    ``then_become``: the user to become once the bounding set is empty (dropping it needs a capability).
    """
    for capability in range(last + 1):
        _check(_LIBC.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0), "dropping the capability bounding set")
    if then_become is not None:
        become(then_become)
    _LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_LIBC.capset(header, data), "capset")
    _check(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def join(holder_pid: int, run_as: tuple[int, int] | None = None, keep_fds: Sequence[int] = ()) -> None:
    """Enter the sandbox of the placeholder ``holder_pid`` (its user, mount, network, IPC, UTS and PID namespaces).

    Call in a single-threaded process. Every descriptor but 0, 1, 2 and ``keep_fds`` is closed first (one that
    named a folder outside would lead out of the sandbox). ``run_as`` (used only when this process is root):
    the unprivileged user it becomes: after entering a sandbox root built without a user namespace
    (``ROOT_NAMESPACES``), or, for one that ``run_as`` built, before entering its user namespace. Afterwards it
    has no capabilities and may gain none; its root and working folder are the sandbox's root. The PID namespace
    applies to children only: fork once more (``join_and_fork``).

    Raises:
        OSError: a namespace could not be entered (the process must then not run anything untrusted).
    """
    if _LIBC is None:
        raise OSError("namespace sandboxes need Linux")
    _close_all_but({0, 1, 2, *keep_fds})
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last_capability = int(handle.read())
    become = run_as if os.geteuid() == 0 else None
    kinds = ("user", *(kind for kind, _ in JOINED))
    mine = {kind: _identity_of(f"/proc/self/ns/{kind}") for kind in kinds}
    fds = {kind: os.open(f"/proc/{holder_pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in kinds}
    try:
        owner = fds["owner"] = _check(_LIBC.ioctl(fds["mnt"], NS_GET_USERNS), "finding the sandbox's user namespace")
        built_by_root = _identity(owner) == mine["user"]
        if become is not None and not built_by_root:
            become(become)
        if not built_by_root:
            _check(_LIBC.setns(owner, CLONE_NEWUSER), "entering the sandbox's user namespace")
        for kind, flag in JOINED:
            if _identity(fds[kind]) != mine[kind]:
                _check(_LIBC.setns(fds[kind], flag), f"entering the sandbox's {kind} namespace")
        if _identity(fds["user"]) not in (mine["user"], _identity(owner)):
            _check(_LIBC.setns(fds["user"], CLONE_NEWUSER), "entering the placeholder's user namespace")
    finally:
        for fd in fds.values():
            os.close(fd)
    _drop_capabilities(last_capability, then_become=become if built_by_root else None)
    os.chdir("/")


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass


def _identity_of(path: str) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_dev, found.st_ino


def become(user: tuple[int, int]) -> None:
    """Become ``user`` for good (real, effective and saved ids; no supplementary groups)."""
    uid, gid = user
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def join_and_fork(holder_pid: int, run_as: tuple[int, int] | None = None, keep_fds: Sequence[int] = ()) -> None:
    """``join``, then fork: returns in the child, the first process of the sandbox's PID namespace to run code.

    The calling process stays as the child's *waiter*: it passes on ``lifetime.FORWARDED_SIGNALS``, and ends as
    the child ends (the same exit code, or killed by the same signal). The child dies when the waiter dies.
    """
    join(holder_pid, run_as, keep_fds)
    waiter = os.getpid()
    child = os.fork()
    if child == 0:
        lifetime.die_with_parent(waiter)  # the waiter lies outside this PID namespace: its pid shows as 0
        return
    lifetime.forward_signals(child)
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
    _end_like(os.waitstatus_to_exitcode(status))


def _end_like(code: int) -> None:
    """End this process as the child ended: with exit ``code`` (>= 0), or killed by signal ``-code``."""
    if code < 0:
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # neither can have a handler, nor be blocked
            signal.signal(-code, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 1)


__all__ = ["become", "join", "join_and_fork"]
