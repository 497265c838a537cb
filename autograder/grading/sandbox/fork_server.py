"""One fork server: listen, read a request, fork, reap, report exits, freeze the heap, serve.

A fork server imports what its children need once, then forks one fresh child per request, which finds those
modules in memory instead of importing them again. Two servers run on this core, and each says only what it
preloads and what a child becomes (a ``Forking``):

- ``kernel_forks.py``: the batch's sandboxed kernels (loads this file by path: it imports nothing from
  ``autograder``);
- ``trusted_forks.py``: the batch's checkers and nbgrader workers.

The conversation, on a Unix socket that the grader binds and listens on before it starts the server
(``listening``; the server inherits the descriptor, so a request made while it still imports waits in the
backlog):

1. the requester connects and sends one JSON line with ``Forking.fds`` descriptors attached (``SCM_RIGHTS``):
   ``request_fork``;
2. the server forks; the child closes the server's sockets and becomes what ``Forking.become`` makes of it; the
   server answers ``pid N``;
3. when the child ends the server reaps it and, for a ``Forking`` that keeps the connection, answers
   ``exit CODE`` on it (a negative code: killed by that signal).

A request whose requester hung up meanwhile (it gave up waiting and started its process another way) is
refused, as is a malformed one; one bad request never stops the server. This file is standalone: it imports
only the standard library.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Protocol

MAX_REQUEST_BYTES = 1 << 20


class Forking(Protocol):
    """What one fork server makes of a request."""

    fds: int
    """How many descriptors come with each request."""
    keep_connection: bool
    """Whether the requester hears ``exit CODE`` on its connection when the child ends."""

    def refusal(self, request: dict) -> str | None:
        """Why the server will not fork for ``request``; None when it will."""

    def become(self, request: dict, fds: list[int]) -> int:
        """In the forked child: become the requested process; returns its exit code."""

    def forked(self, pid: int, request: dict) -> None:
        """In the server, once child ``pid`` exists and before the requester hears of it."""

    def ended(self, pid: int, exit_code: int, request: dict) -> None:
        """In the server, once child ``pid`` has ended and been reaped."""


@contextlib.contextmanager
def listening(path: os.PathLike | str) -> Iterator[socket.socket]:
    """A Unix socket listening at ``path`` (only this user may connect), to hand to a server process and close."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        yield listener
    finally:
        listener.close()


def freeze_heap() -> None:
    """Move every object the server has made so far out of the garbage collector's reach, for good.

    A forked child then never walks the preloaded libraries' hundreds of thousands of objects in a full
    collection (0.2 to 0.4 s each), nor copies the memory pages that walk would write to.
    """
    gc.collect()
    gc.freeze()


# --- the server ----------------------------------------------------------------------------------------


def serve(listener: socket.socket, forking: Forking, name: str) -> None:
    """Freeze the heap, then fork one child per request on ``listener``, forever; ``name`` prefixes the log lines.

    Call in the main thread, once the server has imported what its children need.
    """
    wakeup = _wake_on_child_exit()
    freeze_heap()
    print(f"{name}: ready", flush=True)
    running: dict[int, tuple[dict, socket.socket | None]] = {}
    while True:
        readable, _, _ = select.select([listener, wakeup[0]], [], [])
        if wakeup[0] in readable:
            os.read(wakeup[0], 4096)
        _report_exits(running, forking)
        if listener in readable:
            connection, _ = listener.accept()
            try:
                _fork_one(connection, listener, wakeup, forking, running)
            except Exception as error:  # noqa: BLE001 - one bad request never stops the server
                print(f"{name}: request refused: {error!r}", file=sys.stderr, flush=True)
                connection.close()


def _wake_on_child_exit() -> tuple[int, int]:
    """A pipe that becomes readable whenever a child ends (SIGCHLD), for ``select``."""
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    return wakeup_read, wakeup_write


def ended_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has ended, reaping it, without waiting for the others."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _report_exits(running: dict[int, tuple[dict, socket.socket | None]], forking: Forking) -> None:
    for pid, status in ended_children():
        if pid not in running:
            continue
        request, connection = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        forking.ended(pid, code, request)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(f"exit {code}\n".encode())
            connection.close()


def receive_request(connection: socket.socket, count: int) -> tuple[dict, list[int]]:
    """One JSON line and exactly ``count`` descriptors (passed with it) from ``connection``."""
    data, fds = b"", []
    while not data.endswith(b"\n"):
        chunk, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(count * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        if not chunk or len(data) + len(chunk) > MAX_REQUEST_BYTES:
            _close(fds)
            raise OSError("incomplete or oversized request")
        data += chunk
    if len(fds) != count:
        _close(fds)
        raise OSError(f"expected {count} descriptors, got {len(fds)}")
    return json.loads(data), fds


def hung_up(connection: socket.socket) -> bool:
    """Whether the requester closed its end (it gave up waiting, and started its process another way)."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


def _fork_one(
    connection: socket.socket, listener: socket.socket, wakeup: tuple[int, int], forking: Forking,
    running: dict[int, tuple[dict, socket.socket | None]],
) -> None:
    request, fds = receive_request(connection, forking.fds)
    try:
        refusal = forking.refusal(request)
        if refusal is not None:
            raise OSError(refusal)
        if hung_up(connection):
            raise OSError("the requester stopped waiting")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                listener.close()
                connection.close()
                signal.set_wakeup_fd(-1)
                _close(wakeup)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = forking.become(request, fds)
            finally:
                os._exit(code)
    finally:
        _close(fds)
    running[pid] = (request, connection if forking.keep_connection else None)
    forking.forked(pid, request)
    connection.sendall(f"pid {pid}\n".encode())
    if not forking.keep_connection:
        connection.close()


def _close(fds: list[int] | tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# --- the requester's side ------------------------------------------------------------------------------


def request_fork(path: str, request: dict, fds: list[int], timeout: float) -> tuple[int, socket.socket]:
    """Ask the fork server listening at ``path`` to fork for ``request``, passing ``fds`` (the caller keeps its
    copies and closes them).

    Returns:
        The child's pid, and the connection, on which a server that keeps it later answers ``exit CODE``
        (``read_line``); the caller closes it.

    Raises:
        OSError: the server cannot be reached, did not answer within ``timeout`` seconds, or refused.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(path)
        message = (json.dumps(request) + "\n").encode()
        connection.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        pid = answer_number(read_line(connection), "pid")
    except BaseException:
        connection.close()
        raise
    connection.settimeout(None)
    return pid, connection


def read_line(connection: socket.socket) -> str:
    """One line of the server's answer, without its newline.

    Raises:
        OSError: the server closed the connection first (it refused the request, or ended).
    """
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            raise OSError("the fork server closed the connection without answering")
        data += chunk
    return data.decode().strip()


def answer_number(line: str, word: str) -> int:
    """N of an answer ``WORD N``.

    Raises:
        OSError: the line is not such an answer.
    """
    parts = line.split()
    if len(parts) != 2 or parts[0] != word:
        raise OSError(f"the fork server answered {line[:100]!r}, not {word} N")
    try:
        return int(parts[1])
    except ValueError as error:
        raise OSError(f"the fork server answered {line[:100]!r}") from error


__all__ = [
    "Forking", "answer_number", "ended_children", "freeze_heap", "hung_up", "listening", "read_line", "receive_request",
    "request_fork", "serve",
]
