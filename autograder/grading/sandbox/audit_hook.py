"""The kernel's PEP 578 audit hook: what a sandboxed notebook may open, import, start and reach.

Part of the kernel's start (``kernel_boot.py``, which loads this file by path and installs the hook last, just
before the first cell). Standalone: it imports nothing from ``autograder``. ``install`` captures every function
it needs before any student code runs; an audit hook cannot be removed once added.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
import types
from collections.abc import Callable

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
in ``install``): a folder the notebook only writes to, or opens a few files of, is never listed."""
SETTLED_NS = 3_000_000_000
"""How long a folder must have stayed unchanged (its ctime) before a listing of it is trusted: a file system's
clock ticks coarser than a nanosecond (up to 2 s), and a change made within the same tick as the listing
would leave the ctime as it was."""


def install(config: dict, log_fd: int, log_refusal: Callable[[int, str, types.FrameType | None], PermissionError]) -> None:
    """Install the hook; nothing outside this function keeps a reference to it or to its rules. A refusal is
    written to ``log_fd`` by ``log_refusal``, which returns the error to raise."""
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
        raise log_refusal(log_fd, what, getframe(1))

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
