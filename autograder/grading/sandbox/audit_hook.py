"""The kernel's PEP 578 audit hook: what a sandboxed notebook may open, import, start and reach.

Part of the kernel's start (``kernel_boot.py``, which loads this file by path and installs the hook last, just
before the first cell). Standalone: it imports nothing from ``autograder``. An audit hook cannot be removed.

The notebook's code can reach the hook's frames and read their variables: through a refusal's traceback
(``tb_frame``), or a signal handler that interrupts the hook (it is handed the frame). Nothing it reaches there
changes a decision:

- the decisions run in a generator (``_decisions``) whose state is its own local variables, which nothing outside
  it can write (before Python 3.13), and whose caches are read-only mappings, replaced whole when they grow;
- ``_decisions`` reads every module global and builtin it needs before its first ``yield``, so that rebinding
  them later changes nothing, and calls only functions that read no global (``_walk``, ``_decide``);
- the hook that Python calls (``install``'s ``hook``) first turns the event's arguments into plain values (exact
  ``str``, ``bytes``, ``int``, tuples of them) without running any code of the notebook: it never calls an
  ``__fspath__``, which could answer the hook another path than the one it gave the system call a moment before.
  Of a path object it reads an ``os.DirEntry``'s ``path``, and the text that ``pathlib`` stored in a ``PosixPath``
  or ``PurePosixPath`` as the call turned it into a string, as long as nothing of ``pathlib``'s that makes that
  text was replaced; any other object is refused where a path is expected;
- changing the code or defaults of a function the hook calls (``object.__setattr__``) is refused and logged.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import pathlib
import stat
import sys
import threading
import time
import types
from collections.abc import Callable, Generator

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
WRITE_EVENTS = {"os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.rename": ((0, 2), (1, 3)),
                "os.chmod": ((0, 2),), "os.truncate": ((0, None),), "os.utime": ((0, 3),), "shutil.rmtree": ((0, 1),),
                "os.setxattr": ((0, None),), "os.removexattr": ((0, None),), "os.chdir": ()}
READ_EVENTS = {"os.listdir": ((0, None),), "os.scandir": ((0, None),), "glob.glob": ((0, None),), "os.getxattr": ((0, None),),
               "os.listxattr": ((0, None),)}
"""Each event's paths: (the index of a path among the event's arguments, the index of the ``dir_fd`` a relative
path is taken from, or None). A path given as a descriptor is judged as the file it names."""
FD_FOLDER = "/proc/self/fd/"
"""Where the file a descriptor names is found (a link to it)."""
SIGNAL_EVENTS = frozenset({"os.kill", "os.killpg", "signal.pthread_kill"})
SOCKET_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
WATCHED_EVENTS = (PROCESS_EVENTS | NATIVE_EVENTS | INTROSPECTION_EVENTS | PRIVILEGE_EVENTS | SIGNAL_EVENTS | SOCKET_EVENTS
                  | frozenset(WRITE_EVENTS) | frozenset(READ_EVENTS)
                  | {"open", "import", "sqlite3.connect", "ctypes.dlopen", "fcntl.fcntl"})
"""Every event the decisions look at; any other passes at once."""
PRIVATE_PROC_ENTRIES = frozenset({"mem", "environ", "fd", "fdinfo", "map_files", "pagemap", "stack", "syscall", "io", "auxv"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MAX_REMEMBERED_FOLDERS = 4096
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")
"""Whose folders gain and lose entries without a change of their ctime: never listed by the audit hook."""
LIST_AFTER_OPENS = 64
"""Files opened in one unchanged, readable folder before the audit hook lists it for symbolic links (see
``_decisions``): a folder the notebook only writes to, or opens a few files of, is never listed."""
SETTLED_NS = 3_000_000_000
"""How long a folder must have stayed unchanged (its ctime) before a listing of it is trusted: a file system's
clock ticks coarser than a nanosecond (up to 2 s), and a change made within the same tick as the listing
would leave the ctime as it was."""
OPAQUE = object()
"""What the hook passes on for an argument that is not a plain value, a known path or a tuple of plain values."""

Refusal = Callable[[int, str, "types.FrameType | None"], PermissionError]
"""Logs a refused action (the log's descriptor, what, the frame that tried it) and returns the error to raise."""


def install(config: dict, log_fd: int, log_refusal: Refusal) -> None:
    """Install the hook for ``config`` (``scratch``, ``readable``, ``denied``, ``socket``, ``libraries``); a refusal
    is written to ``log_fd`` by ``log_refusal``, which returns the error to raise."""
    decisions = _decisions(config, log_fd, log_refusal)
    decide = decisions.send
    decide(None)  # the decisions read every global and builtin they need here, before any student code runs
    watched, protected, opaque, lock = WATCHED_EVENTS, (log_refusal, _walk, _decide), OPAQUE, threading.RLock()
    type_, issubclass_, getframe, tuple_, float_ = type, issubclass, sys._getframe, tuple, float
    str_, int_, bytes_, base_exception, attribute_error, as_str, as_int, as_bytes = (
        str, int, bytes, BaseException, AttributeError, str.__str__, int.__int__, bytes.__bytes__)
    dir_entry, posix_path, pure_posix_path, pure_path = os.DirEntry, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.PurePath
    fspath_of_paths, str_of_paths, stored_text = pure_path.__fspath__, pure_path.__str__, pure_path.__dict__["_str"]
    pathlib_globals, builtins_of_pathlib = fspath_of_paths.__globals__, builtins.__dict__

    def hook(event: str, args: tuple) -> None:
        if event not in watched:
            if event == "object.__setattr__" and (args[0] is protected[0] or args[0] is protected[1] or args[0] is protected[2]):
                raise log_refusal(log_fd, f"changing {args[1]} of a function of the sandbox", getframe(1))
            return
        plain = ()  # the arguments as plain values; a tuple, so that nothing can change it once made
        for item in args:
            kind = type_(item)
            if kind is str_ or kind is int_ or kind is bytes_ or item is None or kind is float_:
                plain += (item,)
            elif kind is tuple_:
                plain += (tuple_([part if type_(part) is str_ or type_(part) is int_ or type_(part) is bytes_ else opaque
                                  for part in item]),)
            elif issubclass_(kind, str_):
                plain += (as_str(item),)
            elif issubclass_(kind, bytes_):
                plain += (as_bytes(item),)
            elif issubclass_(kind, int_):
                plain += (as_int(item),)
            elif kind is dir_entry:
                plain += (item.path,)
            else:  # a pathlib path: the text pathlib stored when the system call turned it into a string (see above)
                text = opaque
                if (kind is posix_path or kind is pure_posix_path) and kind.__fspath__ is fspath_of_paths and (
                        kind.__str__ is str_of_paths and "str" not in pathlib_globals and builtins_of_pathlib["str"] is str_):
                    try:
                        text = stored_text.__get__(item, kind)
                    except attribute_error:
                        pass
                plain += (as_str(text) if issubclass_(type_(text), str_) else opaque,)
        with lock:
            if decisions.gi_running:  # an event raised while deciding: the decisions' own listing, or a signal handler
                listing = decisions.gi_frame.f_locals.get("listing")
                if event == "os.scandir" and listing is not None and plain[0] is listing:
                    return
                error = log_refusal(log_fd, f"{event} while the sandbox decides another action", getframe(1))
            else:
                try:
                    error = decide((event, plain))
                except base_exception:  # the decisions were closed from outside: refuse everything from now on
                    error = log_refusal(log_fd, f"{event} after the sandbox's decisions were stopped", getframe(1))
        if error is not None:
            raise error

    sys.addaudithook(hook)


def _walk(resolved: str, parts: list, lstat: Callable, is_link: Callable, readlink: Callable, os_error: type) -> str:
    """``resolved`` (a real path) joined with ``parts``, following symlinks as the system would. Reads no global."""
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "" or part == ".":
            continue
        if part == "..":
            resolved = resolved.rsplit("/", 1)[0]
            continue
        candidate = resolved + "/" + part
        try:
            is_symlink = is_link(lstat(candidate).st_mode)
        except os_error:
            is_symlink = False
        if is_symlink and hops < 40:
            hops += 1
            target = readlink(candidate)
            parts = target.split("/") + parts
            resolved = "" if target.startswith("/") else resolved
        else:
            resolved = candidate
    return resolved


def _decide(path: str, allowed_roots: tuple, denied: tuple) -> bool:
    """Whether ``path`` is allowed: the most specific root (``(root, root + "/", len(root))``) of ``allowed`` or
    ``denied`` containing it decides; a denied root wins a tie, and a path under no root is not allowed. Reads no
    global."""
    best, allowed = -1, False
    for root, prefix, length in allowed_roots:
        if length > best and (path == root or path.startswith(prefix)):
            best, allowed = length, True
    for root, prefix, length in denied:
        if length >= best and (path == root or path.startswith(prefix)):
            best, allowed = length, False
    return allowed


def _folders_held_open() -> tuple:
    """The real paths of the folders this process holds a descriptor of (outside ``/proc``), for ``_decisions``."""
    folders: tuple = ()
    for name in os.listdir(FD_FOLDER):
        try:
            if stat.S_ISDIR(os.stat(FD_FOLDER + name).st_mode):
                folder = os.path.realpath(FD_FOLDER + name)
                if not folder.startswith("/proc/") and folder not in folders:
                    folders += (folder,)
        except OSError:
            pass
    return folders


def _roots(paths) -> tuple:
    """``_decide``'s form of the real paths of ``paths``."""
    return tuple((root, root.rstrip("/") + "/", len(root)) for root in (os.path.realpath(p) for p in paths))


def _decisions(config: dict, log_fd: int, log_refusal: Refusal) -> Generator[PermissionError | None, tuple, None]:
    """Sent ``(event, plain arguments)``, yield None to let it pass, or the error to raise (the refusal logged).

    Paths are judged by their real path, links followed (``_walk``), with three remembered results, each valid only
    while what it was read from is unchanged:
    - the real path of a folder, as named, while it keeps its device and inode;
    - a folder with no link among its entries, listed once ``LIST_AFTER_OPENS`` files were opened in it and
      ``SETTLED_NS`` after its last change, while it keeps its device, inode and ctime (adding, removing or
      renaming an entry changes the ctime, and nothing can set it back): a file in it is its real folder plus
      its name, with no ``lstat`` of the name;
    - the verdict for every file of a folder with no readable or denied root inside it.
    """
    process_events, native_events, refused_events = PROCESS_EVENTS, NATIVE_EVENTS, INTROSPECTION_EVENTS | PRIVILEGE_EVENTS
    write_events, read_events = types.MappingProxyType(dict(WRITE_EVENTS)), types.MappingProxyType(dict(READ_EVENTS))
    signal_events, socket_events, private_proc_entries = SIGNAL_EVENTS, SOCKET_EVENTS, PRIVATE_PROC_ENTRIES
    write_flags, most, pseudo = WRITE_FLAGS, MAX_REMEMBERED_FOLDERS, PSEUDO_FILE_SYSTEMS
    list_after, settled_ns = LIST_AFTER_OPENS, SETTLED_NS
    walk, decide, mapping, opaque, os_error, exception = _walk, _decide, types.MappingProxyType, OPAQUE, OSError, Exception
    lstat, stat_path, readlink, getcwd, scandir, is_link = os.lstat, os.stat, os.readlink, os.getcwd, os.scandir, stat.S_ISLNK
    getframe, time_ns, type_, str_, int_, tuple_, len_ = sys._getframe, time.time_ns, type, str, int, tuple, len
    permission_error, undecided, dict_, is_dir, fd_folder = PermissionError, object(), dict, stat.S_ISDIR, FD_FOLDER
    fstat, set_flags = os.fstat, fcntl.F_SETFL
    log_stat = fstat(log_fd)
    log_file = (log_stat.st_dev, log_stat.st_ino)
    generator_exit, base_exception = GeneratorExit, BaseException
    scratch = os.path.realpath(config["scratch"])
    readable, denied = _roots([*config["readable"], scratch]), _roots(config["denied"])
    own_folder, libraries, allowed_socket = _roots([scratch]), _roots(config["libraries"]), config["socket"]
    root_prefixes = tuple(prefix for _, prefix, _ in readable + denied)
    my_pid = os.getpid()
    my_pid_text = str(my_pid)
    opened_folders = _folders_held_open()  # every folder a descriptor may name: os.open's dir_fd is not in its event
    del config
    real_folders = listings = verdicts = mapping({})  # read-only; each replaced whole when it grows
    listing = error = None
    while True:  # an interruption leaves the inner loop (below); the outer one goes on deciding
        try:
            while True:
                event, args = yield error
                error = what = listing = None
                try:
                    checks: tuple = ()  # (path, writing, action, dir_fd: None for the working folder, or undecided)
                    if event == "open":
                        path, mode, flags = args
                        writing = (type_(mode) is str_ and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                            mode is None and type_(flags) is int_ and flags & write_flags != 0)
                        # os.open (no mode) may have been given a dir_fd, which its event does not carry
                        checks = ((path, writing, "writing" if writing else "reading", undecided if mode is None else None),)
                    elif event == "import":
                        name = args[0] if type_(args[0]) is str_ else ""
                        if name == "autograder" or name.startswith("autograder."):
                            what = f"import {name}"
                    elif event in write_events or event in read_events:
                        writing = event in write_events
                        for index, fd_index in write_events[event] if writing else read_events[event]:
                            dir_fd = args[fd_index] if fd_index is not None and fd_index < len_(args) else None
                            checks += ((args[index], writing, event, dir_fd),)
                    elif event == "sqlite3.connect":
                        checks = ((args[0], True, "opening a database", None),)
                    elif event == "fcntl.fcntl":  # the log is appended to: its descriptors' flags stay as they are
                        if args[1] == set_flags and type_(args[0]) is int_:
                            try:
                                found = fstat(args[0])
                                if (found.st_dev, found.st_ino) == log_file:
                                    what = "changing the flags of the sandbox's log"
                            except os_error:
                                pass
                    elif event in signal_events:
                        if event == "os.killpg" or (event == "os.kill" and args[0] != my_pid):
                            what = f"sending a signal to process {args[0]}"
                    elif event in socket_events:
                        address = args[1] if len_(args) > 1 else None
                        loopback_bind = event == "socket.bind" and type_(address) is tuple_ and (
                            address[:1] in (("127.0.0.1",), ("::1",)))
                        if not (event == "socket.connect" and address == allowed_socket) and not loopback_bind:
                            what = f"network access ({event} {address!r})"
                    elif event in process_events:
                        what = f"starting a process ({event})"
                    elif event in native_events:
                        what = f"native code access ({event})"
                    elif event == "ctypes.dlopen":
                        checks = ((args[0], None, f"loading the native library {args[0]}", None),)
                    elif event in refused_events:
                        what = event
                    while checks:
                        (path, writing, action, dir_fd), checks = checks[0], checks[1:]
                        if path is None and writing is not None:
                            continue
                        if type_(path) is int_:  # a descriptor: judged as the file it names, unless merely wrapped
                            if event == "open":
                                continue
                            path = fd_folder + str_(path)
                        if path is opaque or path is None:
                            what = f"{action} (a path the sandbox cannot read)"
                            break
                        if type_(path) is not str_:
                            path = path.decode("utf-8", "surrogateescape")
                        if not path.startswith("/"):
                            if type_(dir_fd) is int_ and dir_fd >= 0:
                                path = fd_folder + str_(dir_fd) + "/" + path
                            else:
                                if dir_fd is undecided:  # judged in every folder a descriptor may name, too
                                    for folder in opened_folders:
                                        checks += ((folder + "/" + path, writing, action, None),)
                                path = getcwd().rstrip("/") + "/" + path
                        folder, _, name = path.rpartition("/")
                        found = None
                        if folder and not folder.startswith("/proc"):
                            try:
                                found = stat_path(folder)
                            except os_error:
                                pass
                        if found is None:
                            real = walk("", path.split("/"), lstat, is_link, readlink, os_error) or "/"
                        else:
                            remembered = real_folders.get(folder)
                            if remembered is not None and remembered[1] == found.st_dev and remembered[2] == found.st_ino:
                                real_folder = remembered[0]
                            else:
                                real_folder = walk("", folder.split("/"), lstat, is_link, readlink, os_error)
                                if not real_folder.startswith("/proc"):
                                    kept = {} if len_(real_folders) >= most else dict_(real_folders)
                                    kept[folder] = (real_folder, found.st_dev, found.st_ino)
                                    real_folders = mapping(kept)
                            state = (found.st_dev, found.st_ino, found.st_ctime_ns)
                            known = listings.get(real_folder)
                            without_links = False
                            if name in ("", ".", "..") or real_folder.startswith(pseudo):
                                pass
                            elif known is None or known[0] != state or (known[1] is None and known[2] + 1 < list_after):
                                kept = {} if len_(listings) >= most else dict_(listings)
                                kept[real_folder] = (state, None, 1 if known is None or known[0] != state else known[2] + 1)
                                listings = mapping(kept)
                            elif known[1] is not None:
                                without_links = known[1]
                            elif time_ns() - state[2] >= settled_ns:  # listed once; a folder it may not read, never
                                if decide(real_folder, readable, denied):
                                    listing = real_folder  # the hook lets this listing's own event pass (``install``)
                                    try:
                                        with scandir(listing) as entries:
                                            without_links = True
                                            for entry in entries:
                                                if entry.is_symlink():
                                                    without_links = False
                                                    break
                                    except os_error:
                                        without_links = False
                                    listing = None
                                kept = dict_(listings)
                                kept[real_folder] = (state, without_links, known[2])
                                listings = mapping(kept)
                            real = real_folder + "/" + name if without_links else (
                                walk(real_folder, [name], lstat, is_link, readlink, os_error) or "/")
                        if real.startswith("/proc/"):
                            parts = real.split("/")
                            if len_(parts) > 3 and parts[2].isdigit() and parts[2] != my_pid_text and (
                                    parts[3] in private_proc_entries):
                                what = f"{action} {real}"
                                break
                        if writing is None:
                            allowed = decide(real, libraries, ())
                        elif writing:
                            allowed = decide(real, own_folder, ()) or real == "/dev/null"
                        else:
                            real_folder = real.rpartition("/")[0]
                            allowed = verdicts.get(real_folder, undecided)  # None: the verdict differs from file to file
                            if allowed is undecided:
                                allowed, inner = decide(real, readable, denied), real_folder + "/"
                                shared = real_folder != ""
                                for prefix in root_prefixes:
                                    shared = shared and not prefix.startswith(inner)
                                kept = {} if len_(verdicts) >= most else dict_(verdicts)
                                kept[real_folder] = allowed if shared else None
                                verdicts = mapping(kept)
                            if allowed is None:
                                allowed = decide(real, readable, denied)
                        if not allowed:
                            what = f"{action} {real}"
                            break
                        if event == "open" and args[1] is None and real not in opened_folders:  # os.open: a folder?
                            try:
                                if is_dir(stat_path(real).st_mode):
                                    opened_folders += (real,)
                            except os_error:
                                pass
                except exception as failure:
                    what = f"{event} (the sandbox could not decide it: {type_(failure).__name__})"
                if what is not None:
                    try:
                        error = log_refusal(log_fd, what, getframe(2))
                    except exception:
                        error = None
                    if type_(error) is not permission_error:
                        error = permission_error(f"autograder sandbox: {what} is not allowed while grading")
        except generator_exit:  # closed from outside: the hook refuses everything from then on
            return
        except base_exception as interruption:  # a KeyboardInterrupt (a signal) while deciding: raised as it came
            error = interruption
