"""The trusted grading processes of a batch (checkers, nbgrader workers), forked from one server.

Each submission runs two trusted Python processes: the checker (``sandbox/checker.py``: torch and the hidden
checks) and the nbgrader worker (``nbgrader_worker.py``: nbgrader, nbconvert, jupyter_client). Started with
``python -m``, each pays its imports again: seconds of CPU per submission. The batch's *trusted fork server*
imports them once and runs the module's warm-up (``runner.warm_up``, ``nbgrader_worker.warm_up``); each process
is then a fork of one that runs its module as ``python -m MODULE ARGS`` would, in a session of its own, with
its working folder, environment, standard streams and CPU limit. Student code never runs in these processes
(the kernel is a separate, sandboxed process) and nothing passes from one child to another: each is a fresh
fork.

A batch has one server for its checkers and one for its nbgrader workers (which then carry no torch).
``TrustedForks.start`` runs one (``python -m autograder.grading.trusted_forks LISTENING_FD MODULE``, a socket
it inherits, bound before it starts, so that no request finds it missing);
``TrustedForks.spawn`` returns a ``ForkedProcess``, which answers ``pid``, ``poll``, ``wait``,
``returncode`` and ``stdin`` as ``subprocess.Popen`` does: the server reports each child's exit status on
the connection that asked for it. A child dies with the server, and the server with the thread that
started it (parent-death signal, Linux).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import resource
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from autograder.grading.sandbox.kernel_forks import ended_children, freeze_heap, hung_up, receive_request
from autograder.grading.sandbox.lifetime import die_with_parent

CHECKER = "autograder.grading.sandbox.checker"
NBGRADER_WORKER = "autograder.grading.nbgrader_worker"
PRELOAD = {
    CHECKER: ("torch", CHECKER, "autograder.checks.runner"),
    NBGRADER_WORKER: (NBGRADER_WORKER, "autograder.nbgrader_api", "autograder.nbgrader_ext"),
}
"""What a server imports for the one module its children run (an nbgrader worker carries no torch: the
memory limit counts what each process of a submission holds)."""
PASSED_FDS = 3  # stdin, stdout, stderr
SERVER_LOG = "trusted-forks.log"
SERVER_WAIT_SECONDS = 60
"""How long a request waits for the server (importing at the start of a batch) before the caller starts the
process itself."""


@contextlib.contextmanager
def listening(path: Path) -> Iterator[socket.socket]:
    """A Unix socket listening at ``path`` (only this user may connect), to hand to a server process and close."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        yield listener
    finally:
        listener.close()


# --- the server ------------------------------------------------------------------------------------------


def serve(listener_fd: int, module: str) -> None:
    """Import ``PRELOAD`` and warm the module up, then fork one child per request on the inherited listening
    socket (requests made meanwhile wait in its backlog); report each child's exit."""
    listener = socket.socket(fileno=listener_fd)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    warnings.filterwarnings("ignore")
    import importlib

    for name in PRELOAD[module]:
        importlib.import_module(name)
    if module == CHECKER:
        from autograder.checks.data import preload_real_sample
        from autograder.checks.runner import known_blanks, warm_up

        known_blanks()
        warm_up()
        preload_real_sample()
    else:
        from autograder.grading.nbgrader_worker import warm_up

        warm_up()
    freeze_heap()
    print(f"trusted fork server of {module}: ready", flush=True)
    waiting: dict[int, socket.socket] = {}
    while True:
        readable, _, _ = select.select([listener, wakeup_read], [], [])
        if wakeup_read in readable:
            os.read(wakeup_read, 4096)
        _report_exits(waiting)
        if listener in readable:
            connection, _ = listener.accept()
            try:
                pid = _fork_one(connection, listener, (wakeup_read, wakeup_write), module)
                waiting[pid] = connection
            except Exception as error:  # noqa: BLE001 - one bad request never stops the server
                print(f"trusted fork server: request refused: {error!r}", file=sys.stderr, flush=True)
                connection.close()


def _report_exits(waiting: dict[int, socket.socket]) -> None:
    for pid, status in ended_children():
        connection = waiting.pop(pid, None)
        if connection is not None:
            try:
                connection.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:
                pass
            connection.close()


def _receive(connection: socket.socket, module: str) -> tuple[dict, list[int]]:
    request, fds = receive_request(connection, PASSED_FDS)
    if request.get("module") != module:
        for fd in fds:
            os.close(fd)
        raise OSError(f"refused: module {request.get('module')!r} (this server forks {module})")
    return request, fds


def _fork_one(connection: socket.socket, listener: socket.socket, wakeup: tuple[int, int], module: str) -> int:
    request, fds = _receive(connection, module)
    server = os.getpid()
    try:
        if hung_up(connection):
            raise OSError("the requester stopped waiting")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                listener.close()
                connection.close()
                signal.set_wakeup_fd(-1)
                for fd in wakeup:
                    os.close(fd)
                code = _run_child(request, fds, server)
            finally:
                os._exit(code)
        connection.sendall(f"pid {pid}\n".encode())
        return pid
    finally:
        for fd in fds:
            os.close(fd)


def _name_process(name: str) -> None:
    """Show ``name`` (not the server's command line) in ``ps -o comm``, ``top`` and ``psutil.Process.name()``."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def _run_child(request: dict, fds: list[int], server: int) -> int:
    """In the forked child: become ``python -m MODULE ARGS`` in the requested folder, environment and streams."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    die_with_parent(server)
    _name_process(request["module"].rsplit(".", 1)[-1])
    os.setsid()
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    if request.get("cpu_seconds") is not None:
        seconds = int(request["cpu_seconds"])
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdin = open(0, "r", closefd=False)
    sys.argv = [request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback on stderr, exit code 1
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    return 0


# --- the grader's side -------------------------------------------------------------------------------------


@dataclass
class ForkedProcess:
    """A child of the trusted fork server, answering like ``subprocess.Popen``."""

    pid: int
    connection: socket.socket
    stdin: IO[bytes] | None = None
    returncode: int | None = None
    _pending: bytes = field(default=b"", repr=False)

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout)
            self._read(left)
        return self.returncode

    def _read(self, timeout: float | None) -> None:
        readable, _, _ = select.select([self.connection], [], [], timeout)
        if not readable:
            return
        try:
            chunk = self.connection.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:  # the server ended: its children die with it
            self.returncode = -signal.SIGKILL
            self.connection.close()
            return
        self._pending += chunk
        if b"\n" in self._pending:
            line = self._pending.split(b"\n", 1)[0].decode()
            self.returncode = int(line.split()[1])
            self.connection.close()


@dataclass
class TrustedForks:
    """The batch's trusted fork server (see the module docstring)."""

    socket_path: Path
    process: subprocess.Popen

    module: str

    @classmethod
    def start(cls, base: Path, module: str, env: dict[str, str], preexec_fn: Any = None) -> TrustedForks:
        """Start the server of ``module`` (``CHECKER`` or ``NBGRADER_WORKER``) with ``env``; its log is in ``base``."""
        from autograder.grading.sandbox import layout  # not in the server: it imports torch

        channel = layout.channel_folder()
        channel.chmod(0o700)
        socket_path = channel / "trusted.sock"
        with listening(socket_path) as listener, open(base / SERVER_LOG, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "autograder.grading.trusted_forks", str(listener.fileno()), module], cwd=base, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn, start_new_session=True,
                pass_fds=(listener.fileno(),),
            )
        return cls(socket_path, process, module)

    def spawn(
        self, args: list[str], cwd: Path, env: dict[str, str], stdout: IO, stdin: int | None = None,
        cpu_seconds: int | None = None,
    ) -> ForkedProcess | None:
        """Fork ``python -m MODULE args``; ``stdin`` is ``subprocess.PIPE`` or None (``/dev/null``).

        None when the server cannot be reached (the caller then starts the process itself).
        """
        if self.process.poll() is not None:
            return None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(SERVER_WAIT_SECONDS)
        pipe_read = pipe_write = null = -1
        try:
            connection.connect(str(self.socket_path))
            if stdin == subprocess.PIPE:
                pipe_read, pipe_write = os.pipe()
                child_stdin = pipe_read
            else:
                null = child_stdin = os.open(os.devnull, os.O_RDONLY)
            request = {"module": self.module, "args": args, "cwd": str(cwd), "env": env, "cpu_seconds": cpu_seconds}
            fds = array.array("i", [child_stdin, stdout.fileno(), stdout.fileno()])
            connection.sendmsg([(json.dumps(request) + "\n").encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            for fd in (pipe_read, null):
                if fd >= 0:
                    os.close(fd)
            pipe_read = null = -1
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    raise OSError("the trusted fork server refused the request")
                answer += chunk
            pid = int(answer.split()[1])
            connection.settimeout(None)
        except (OSError, ValueError, IndexError):
            for fd in (pipe_read, pipe_write, null):
                if fd >= 0:
                    os.close(fd)
            connection.close()
            return None
        return ForkedProcess(pid, connection, os.fdopen(pipe_write, "wb") if pipe_write >= 0 else None)

    def close(self) -> None:
        """Stop the server; its children die with it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)


def main(argv: list[str]) -> int:
    serve(int(argv[1]), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
