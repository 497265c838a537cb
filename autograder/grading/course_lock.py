"""One writer per course: an advisory lock that `autograder grade` holds while it writes to a course.

The lock is ``flock(2)`` on ``<course>/.autograder.lock``; the file is created on first use (any user who may
write to the course may create it) and never deleted, since deleting a lock file lets two processes lock two
different files. Who holds the lock (pid, host, command, start time) is written into the file, so that a
run that has to wait, or refuses to, can say for whom.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

LOCK_NAME = ".autograder.lock"


class CourseLocked(RuntimeError):
    """Another process holds the course's lock and the caller asked not to wait (``wait=False``)."""

    def __init__(self, message: str, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def lock_path(course_root: Path) -> Path:
    """The lock file of the course at ``course_root``."""
    return Path(course_root) / LOCK_NAME


def _open(path: Path) -> tuple[int, bool]:
    """The lock file opened for writing (created if missing), or read-only when only that is allowed."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666), True
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False


def _read_holder(fd: int) -> dict:
    """What the holder wrote into the lock file; empty when it has not written it yet (or could not)."""
    for _ in range(20):  # the holder writes right after locking: give it a moment
        try:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            if text:
                return json.loads(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return {}


def _command() -> str:
    """This process's command line, shortly: ``autograder grade 02_linear_regression --course c``."""
    argv = list(sys.argv) or [""]
    name = Path(argv[0]).name
    if name in ("", "-c"):
        return "python -c ..."
    if name in ("__main__.py", "cli.py"):
        name = "autograder"
    return " ".join([name, *argv[1:]])


def _write_holder(fd: int) -> dict:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": _command()[:300],
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return holder


def describe_holder(holder: dict) -> str:
    """``pid 123 on host, `autograder grade 02_linear_regression`, started 2026-01-01 10:00:00 UTC``."""
    if not holder.get("pid"):
        return "holder unknown"
    where = f"pid {holder['pid']}"
    if holder.get("host") and holder["host"] != socket.gethostname():
        where += f" on {holder['host']}"
    parts = [where]
    if holder.get("command"):
        parts.append(f"`{holder['command']}`")
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    return ", ".join(parts)


@contextlib.contextmanager
def course_lock(course_root: Path, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Hold the course's write lock for the ``with`` block; yields what was written about this holder.

    Contract:
        * At most one holder per course at a time, across processes (and across threads that each enter
          their own ``course_lock``), on this machine or on others sharing the course over NFS (Linux maps
          ``flock`` to NFS byte-range locks). It is advisory: it keeps out other `autograder grade` runs, not
          programs that never ask for it (nbgrader's own commands and formgrader write through SQLite's
          locking, and every gradebook write of the grader is made in place so as not to lose theirs).
        * Free: taken at once. Held by another: with ``wait`` (the default), ``on_wait`` is called once with
          a sentence naming the holder, then the call blocks until the holder lets go; without ``wait``,
          ``CourseLocked`` is raised at once, its message naming the holder.
        * Released when the block exits, normally or by an exception, and by the kernel when the holder's
          process ends in any way (``kill -9`` included): a crashed run never leaves the course locked.
        * Not re-entrant: entering it again in the same process for the same course while held waits forever
          (or raises with ``wait=False``).

    Raises:
        CourseLocked: ``wait`` is False and another process holds the lock.
        OSError: the lock file can neither be created nor opened (e.g. the course folder is unreadable).
    """
    path = lock_path(course_root)
    fd, writable = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = _read_holder(fd)
            who = describe_holder(holder)
            if not wait:
                raise CourseLocked(
                    f"another `autograder grade` is writing to the course {Path(course_root)} ({who}); "
                    "run again when it has finished, or let this run wait for it",
                    holder,
                ) from None
            if on_wait is not None:
                on_wait(f"another `autograder grade` is writing to this course ({who}); waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        mine = _write_holder(fd) if writable else {}
        try:
            yield mine
        finally:
            if writable:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
