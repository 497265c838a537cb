"""Start the IPython kernel of one submission inside the sandbox.

Run as ``python -I kernel_boot.py SANDBOX.json -f CONNECTION_FILE`` (the kernel spec that the grading
worker writes does this). This file is standalone: it imports nothing from ``autograder``. In order:

0. when the configuration names a ``holder_pid`` (grading with the namespace sandbox), the process joins that
   submission's bubblewrap sandbox (``enter_sandbox``: no course, no ``autograder`` package, no network, its own
   PID namespace, no capabilities; as root it becomes the sandbox user there) and sets the operating system's
   limits on its processes and writable memory; everything below then runs inside it;
1. resource limits (file size, core dumps, and for a non-root kernel the number of processes);
2. torch is imported and the kernel initialised (reads its connection file) while still trusted;
3. ``autograder`` and ``autograder.checks`` are replaced by the shim of ``check_shim.py``, whose ``check(...)``
   sends the blank and the student's objects to the trusted checker over the data-only channel; changing the
   shim is refused and logged (the grader also flags a test cell that finishes without asking the checker);
4. when started as root, the process drops to the unprivileged sandbox user;
5. a PEP 578 audit hook is installed: from then on importing ``autograder``, reading or writing outside
   the allowed folders, starting processes, signalling other processes, network sockets and ctypes are
   refused with ``PermissionError`` and logged. Audit hooks cannot be removed once installed;
6. the kernel starts serving the notebook's cells.

When the sandbox configuration names a ``fork_server``, this process instead asks that server
(``kernel_forks.py``) for a kernel forked from a process that imported the heavy libraries already; the
fork runs the steps above, and this process stands in for it. Without an answer, it boots as above.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import stat
import sys
import threading
import time
import types

PROCESS_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "pty.spawn",
    "os.startfile",
})
NATIVE_EVENTS = frozenset({"ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer",
                           "ctypes.string_at", "ctypes.wstring_at", "ctypes.addressof", "ctypes.set_errno", "ctypes.get_errno"})
INTROSPECTION_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.setprofile", "sys.settrace"})
PRIVILEGE_EVENTS = frozenset({"os.chroot", "os.setuid", "os.setgid", "os.setreuid", "os.setregid", "os.setresuid",
                              "os.setresgid", "os.setgroups", "os.setsid", "os.setpgid", "resource.setrlimit",
                              "resource.prlimit", "os.symlink", "os.link", "os.chown", "os.lchown", "os.mknod", "os.mkfifo"})
WRITE_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.chmod": (0,),
                "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "os.chdir": ()}
READ_EVENTS = {"os.listdir": (0,), "os.scandir": (0,), "glob.glob": (0,), "os.getxattr": (0,), "os.listxattr": (0,)}
PRIVATE_PROC_ENTRIES = frozenset({"mem", "environ", "fd", "fdinfo", "map_files", "pagemap", "stack", "syscall", "io", "auxv"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MAX_REMEMBERED_FOLDERS = 4096
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")
"""Whose folders gain and lose entries without a change of their ctime: never listed by the audit hook."""
LIST_AFTER_OPENS = 64
"""Files opened in one unchanged folder before the audit hook lists it for symbolic links (see ``without_links``
in ``_install_audit_hook``): a folder the notebook only writes to, or opens a few files of, is never listed."""
SETTLED_NS = 3_000_000_000
"""How long a folder must have stayed unchanged (its ctime) before a listing of it is trusted: a file system's
clock ticks coarser than a nanosecond (up to 2 s), and a change made within the same tick as the listing
would leave the ctime as it was."""


def _limit_resources(config: dict) -> None:
    file_bytes = int(config["max_file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing


def _load_module(path: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sibling(name: str) -> str:
    """The path of the standalone file ``name`` beside this one."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


JOINING_MODULE = "autograder_sandbox_joining"


def load_joining() -> types.ModuleType:
    """``joining.py`` (standalone), loaded once per process (the fork server loads it before forking)."""
    if JOINING_MODULE not in sys.modules:
        sys.modules[JOINING_MODULE] = _load_module(_sibling("joining.py"), JOINING_MODULE)
    return sys.modules[JOINING_MODULE]


CHECK_SHIM = _load_module(_sibling("check_shim.py"), "autograder_sandbox_check_shim")
"""``check_shim.py``, loaded with this file: outside the sandbox, where the ``autograder`` package is not."""

SOURCE_FILES = (__file__, CHECK_SHIM.__file__)
"""This file and the shim's: the kernel may read them (its tracebacks show their lines)."""


def _load_peer(path: str) -> types.ModuleType:
    return _load_module(path, "autograder_sandbox_peer")


def _log_refusal(
    log_fd: int, what: str, frame: types.FrameType | None, _write=os.write, _dumps=json.dumps
) -> PermissionError:
    """Write a refusal to the violations log (outside the kernel's reach); return the error to raise.

    ``os.write`` and ``json.dumps`` are bound when this file loads, before any student code runs.
    """
    where = []
    while frame is not None and len(where) < 6:
        where.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    try:
        _write(log_fd, (_dumps({"what": what, "where": where}) + "\n").encode())
    except OSError:
        pass
    return PermissionError(f"autograder sandbox: {what} is not allowed while grading")


def _install_shims(socket_path: str, peer_module: types.ModuleType, log_fd: int) -> None:
    """Make ``from autograder.checks import check`` give the shim that asks the trusted checker (``check_shim.py``);
    changing the shim is refused and logged like the audit hook's refusals."""
    CHECK_SHIM.install(socket_path, peer_module, lambda what, frame: _log_refusal(log_fd, what, frame))


def _drop_privileges(config: dict) -> None:
    if os.geteuid() != 0 or config.get("uid") is None:
        return
    os.setgroups([])
    os.setgid(int(config["gid"]))
    os.setuid(int(config["uid"]))
    processes = int(config["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


OUTPUT_REFUSAL = "printing more than the output limit"


def _cap_output(limit: int, log_fd: int) -> None:
    """Make the kernel's stdout and stderr refuse to print more than ``limit`` characters in all.

    The coordinator also caps the output it receives; this stops a flood before the kernel buffers it.
    """
    printed = [0]

    def capped(stream):
        write = stream.write

        def capped_write(text):
            printed[0] += len(text)
            if printed[0] > limit:
                _log_refusal(log_fd, OUTPUT_REFUSAL, None)
                raise OSError(f"autograder sandbox: {OUTPUT_REFUSAL} ({limit // 2**20} MiB)")
            return write(text)

        stream.write = capped_write

    for stream in (sys.stdout, sys.stderr):
        try:
            capped(stream)
        except AttributeError:
            continue


def _install_audit_hook(config: dict, log_fd: int) -> None:
    """Install the hook; nothing outside this function keeps a reference to it or to its rules."""
    lstat, stat_path, readlink, getcwd, getpid, scandir = os.lstat, os.stat, os.readlink, os.getcwd, os.getpid, os.scandir
    is_link, fspath, getframe, get_ident, time_ns = stat.S_ISLNK, os.fspath, sys._getframe, threading.get_ident, time.time_ns
    scratch = os.path.realpath(config["scratch"])
    readable = tuple(os.path.realpath(p) for p in config["readable"]) + (scratch,)
    denied = tuple(os.path.realpath(p) for p in config["denied"])
    allowed_socket = config["socket"]
    library_roots = tuple(os.path.realpath(p) for p in config["libraries"])
    my_pid = getpid()
    my_pid_text = str(my_pid)

    real_folders: dict[str, tuple[str, int, int]] = {}  # folder as named -> (real path, device, inode)
    listings: dict[str, list] = {}  # real folder -> [(device, inode, ctime), holds no link (None: not listed yet), opens]
    listing_threads: set[int] = set()  # threads listing a folder for the hook, whose own events the hook lets pass

    def walk(resolved: str, parts: list) -> str:
        """``resolved`` (a real path) joined with ``parts``, following symlinks as the system would."""
        hops = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved.rsplit("/", 1)[0]
                continue
            candidate = resolved + "/" + part
            try:
                is_symlink = is_link(lstat(candidate).st_mode)
            except OSError:
                is_symlink = False
            if is_symlink and hops < 40:
                hops += 1
                target = readlink(candidate)
                parts = target.split("/") + parts
                resolved = "" if target.startswith("/") else resolved
            else:
                resolved = candidate
        return resolved

    def resolve(path) -> str:
        """The real absolute path, following symlinks with functions captured before any student code.

        The real path of an existing containing folder is remembered (a notebook reads thousands of images
        from one folder), except under /proc, whose links differ from process to process. A remembered path
        is used only while the folder, as named, is still the same folder (device and inode): a folder renamed
        or replaced, by this thread or another, is resolved anew.
        """
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = getcwd().rstrip("/") + "/" + path
        folder, _, name = path.rpartition("/")
        if not folder or folder.startswith("/proc"):
            return walk("", path.split("/")) or "/"
        try:
            found = stat_path(folder)
        except OSError:
            return walk("", path.split("/")) or "/"
        remembered = real_folders.get(folder)
        if remembered is not None and remembered[1:] == (found.st_dev, found.st_ino):
            real_folder = remembered[0]
        else:
            real_folder = walk("", folder.split("/"))
            if not real_folder.startswith("/proc"):
                if len(real_folders) >= MAX_REMEMBERED_FOLDERS:
                    real_folders.clear()
                real_folders[folder] = (real_folder, found.st_dev, found.st_ino)
        if name not in ("", ".", "..") and not real_folder.startswith(PSEUDO_FILE_SYSTEMS) and without_links(real_folder, found):
            return real_folder + "/" + name  # what walk would return: no entry of the folder is a link
        return walk(real_folder, [name]) or "/"

    def without_links(real_folder: str, found: os.stat_result) -> bool:
        """Whether no entry of ``real_folder`` (``found``: its ``stat``) is a symbolic link, known from a listing of
        the folder made while it was in the same state: device, inode and ctime. Adding, removing or renaming an
        entry, by this process or any other, changes the folder's ctime, and nothing can set it back, so a folder
        changed since its listing is looked at name by name again (``walk``), as is any folder until it has been
        listed: once ``LIST_AFTER_OPENS`` files were opened in it while it stayed unchanged, and at least
        ``SETTLED_NS`` after its last change.

        A notebook that reads thousands of images from one folder then pays one ``stat`` per file, not two.
        """
        state = (found.st_dev, found.st_ino, found.st_ctime_ns)
        known = listings.get(real_folder)
        if known is None or known[0] != state:
            if len(listings) >= MAX_REMEMBERED_FOLDERS:
                listings.clear()
            listings[real_folder] = [state, None, 1]
            return False
        if known[1] is not None:
            return known[1]
        known[2] += 1
        if known[2] < LIST_AFTER_OPENS or time_ns() - state[2] < SETTLED_NS:
            return False
        known[1] = lists_no_link(real_folder)
        return known[1]

    def lists_no_link(real_folder: str) -> bool:
        """List ``real_folder``; True when none of its entries is a symbolic link. The listing's own audit event is
        the hook's, not the notebook's: it is neither checked nor logged."""
        thread = get_ident()
        listing_threads.add(thread)
        try:
            with scandir(real_folder) as entries:
                return not any(entry.is_symlink() for entry in entries)
        except OSError:
            return False
        finally:
            listing_threads.discard(thread)

    def under(path: str, roots: tuple) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    readable_prefixes = tuple((root, root.rstrip("/") + "/", len(root)) for root in readable)
    denied_prefixes = tuple((root, root.rstrip("/") + "/", len(root)) for root in denied)

    all_prefixes = tuple(prefix for _, prefix, _ in readable_prefixes + denied_prefixes)
    verdicts: dict[str, bool | None] = {}  # folder -> the verdict for every file in it (None: it differs by file)
    undecided = object()

    def may_read(path: str) -> bool:
        """``decide(path)``, remembered for ``path``'s folder when no root lies in that folder, so that every file
        in it gets the same verdict."""
        folder = path.rpartition("/")[0]
        verdict = verdicts.get(folder, undecided)
        if verdict is undecided:
            inner = folder + "/"
            verdict = None if not folder or any(prefix.startswith(inner) for prefix in all_prefixes) else decide(path)
            if len(verdicts) >= MAX_REMEMBERED_FOLDERS:
                verdicts.clear()
            verdicts[folder] = verdict
        return decide(path) if verdict is None else verdict

    def decide(path: str) -> bool:
        """The most specific root containing ``path`` decides; a denied root wins a tie."""
        best, allowed = -1, False
        for root, prefix, length in readable_prefixes:
            if length > best and (path == root or path.startswith(prefix)):
                best, allowed = length, True
        for root, prefix, length in denied_prefixes:
            if length >= best and (path == root or path.startswith(prefix)):
                best, allowed = length, False
        return allowed

    def refuse(what: str) -> None:
        raise _log_refusal(log_fd, what, getframe(1))

    def check_path(path, writing: bool, action: str) -> None:
        if isinstance(path, int) or path is None:
            return
        real = resolve(path)
        if real.startswith("/proc/"):
            parts = real.split("/")
            if len(parts) > 3 and parts[2].isdigit() and parts[2] != my_pid_text and parts[3] in PRIVATE_PROC_ENTRIES:
                refuse(f"{action} {real}")
        if writing:
            if not (under(real, (scratch,)) or real == "/dev/null"):
                refuse(f"{action} {real}")
        elif not may_read(real):
            refuse(f"{action} {real}")

    def hook(event: str, args: tuple) -> None:
        if listing_threads and get_ident() in listing_threads:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (mode is None and bool(flags & WRITE_FLAGS))
            check_path(path, writing, "writing" if writing else "reading")
        elif event == "import":
            name = args[0] or ""
            if name == "autograder" or name.startswith("autograder."):
                refuse(f"import {name}")
        elif event in WRITE_EVENTS:
            for index in WRITE_EVENTS[event]:
                check_path(args[index], True, event)
        elif event in READ_EVENTS:
            for index in READ_EVENTS[event]:
                check_path(args[index], False, event)
        elif event == "sqlite3.connect":
            check_path(args[0], True, "opening a database")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill"):
            if event == "signal.pthread_kill":
                return
            if event == "os.killpg" or args[0] != my_pid:
                refuse(f"sending a signal to process {args[0]}")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            address = args[1] if len(args) > 1 else None
            loopback_bind = event == "socket.bind" and isinstance(address, tuple) and address[:1] in (("127.0.0.1",), ("::1",))
            if not (event == "socket.connect" and address == allowed_socket) and not loopback_bind:
                refuse(f"network access ({event} {address!r})")
        elif event in PROCESS_EVENTS:
            refuse(f"starting a process ({event})")
        elif event in NATIVE_EVENTS:
            refuse(f"native code access ({event})")
        elif event == "ctypes.dlopen":
            name = args[0]
            if name is None or not under(resolve(name), library_roots):
                refuse(f"loading the native library {name}")
        elif event in INTROSPECTION_EVENTS or event in PRIVILEGE_EVENTS:
            refuse(event)

    sys.addaudithook(hook)


def _without_debugger() -> None:
    """Make ``debugpy`` unimportable, so that ipykernel starts without its debugger.

    nbclient never debugs a notebook, and ipykernel's debugger module imports debugpy and pydevd at start-up:
    about 0.2 s of CPU per kernel. ipykernel treats the failed import as "debugpy is not installed".
    """
    sys.modules.setdefault("debugpy", None)  # type: ignore[assignment]


CONNECTION_COPY = ".connection.json"


def enter_sandbox(config: dict, kernel_argv: list[str], keep_fds: list[int]) -> tuple[list[str], int, types.ModuleType]:
    """Join the submission's namespace sandbox (``config["holder_pid"]``), as the kernel's first step.

    What the kernel needs from outside is taken first: the refusal log (opened; its folder is not in the
    sandbox), the channel's ``peer`` module (loaded; the ``autograder`` package is not in the sandbox) and the
    connection file (copied into the kernel's folder, readable by the kernel's user). Then this process joins the
    sandbox and forks (``joining.join_and_fork``): it stays outside as the waiter, and the child returns,
    under the operating system's limits: ``max_memory_bytes`` of writable memory per process (RLIMIT_DATA) and
    ``max_processes`` processes of its user (RLIMIT_NPROC: in the sandbox's user namespace for an ordinary
    grader, counted over the batch's kernels for a root grader), which hold even when the grader's watcher is
    slow. Call in a single-threaded process.

    Returns:
        IPKernelApp's arguments (naming the copied connection file), the refusal log's descriptor, the peer module.
    """
    joining = load_joining()
    log_fd = os.open(config["violations"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    peer_module = _load_peer(config["peer"])
    run_as = (int(config["uid"]), int(config["gid"])) if config.get("uid") is not None and os.geteuid() == 0 else None
    kernel_argv = list(kernel_argv)
    if "-f" in kernel_argv[:-1]:
        index = kernel_argv.index("-f") + 1
        with open(kernel_argv[index]) as handle:
            connection = handle.read()
        copy = os.path.join(config["scratch"], CONNECTION_COPY)
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(connection)
        if run_as is not None:
            os.chown(copy, *run_as, follow_symlinks=False)
        kernel_argv[index] = copy
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(config["scratch"], ".jupyter-runtime")
    joining.join_and_fork(int(config["holder_pid"]), run_as, [*keep_fds, log_fd])
    processes, memory = int(config["max_processes"]), config.get("max_memory_bytes")
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))  # the kernel's user cannot raise them again
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (int(memory), int(memory)))
    return kernel_argv, log_fd, peer_module


def boot(config: dict, kernel_argv: list[str], joined: tuple[int, types.ModuleType] | None = None) -> None:
    """Steps 1 to 6 of the module docstring in this process; ``kernel_argv`` are IPKernelApp's arguments.

    ``joined``: the refusal log's descriptor and the peer module, when ``enter_sandbox`` took them.
    """
    _limit_resources(config)
    os.chdir(config["scratch"])
    if joined is not None:
        log_fd, peer_module = joined
    else:
        log_fd = os.open(config["violations"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        peer_module = _load_peer(config["peer"])
    for name in config.get("preload", []):
        importlib.import_module(name)
    _install_shims(config["socket"], peer_module, log_fd)
    _without_debugger()
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(kernel_argv)
    _drop_privileges(config)
    _cap_output(int(config["max_output_bytes"]), log_fd)
    _install_audit_hook(config, log_fd)
    del config
    app.start()


def main() -> None:
    """Boot the kernel here, or, when the sandbox names a fork server, have it forked there and stand in for it."""
    config_path, kernel_argv = sys.argv[1], sys.argv[2:]
    with open(config_path) as handle:
        config = json.load(handle)
    if config.get("fork_server"):
        forks = _load_module(_sibling("kernel_forks.py"), "autograder_kernel_forks")
        if forks.run_forked(config, config_path, kernel_argv):
            return
    del sys.argv[1]
    joined = None
    if config.get("holder_pid"):
        kernel_argv, log_fd, peer_module = enter_sandbox(config, kernel_argv, [])
        joined = (log_fd, peer_module)
    boot(config, kernel_argv, joined)

if __name__ == "__main__":
    main()
