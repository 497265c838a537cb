"""The trusted grading processes of a batch (checkers, nbgrader workers), forked from one server.

Each submission runs two trusted Python processes: the checker (``sandbox/checker.py``: torch and the hidden
checks) and the nbgrader worker (``nbgrader_worker.py``: nbgrader, nbconvert, jupyter_client). Started with
``python -m``, each pays its imports again: seconds of CPU per submission. The batch's *trusted fork server*
imports them once and runs the module's warm-up (``runner.warm_up``, ``nbgrader_worker.warm_up``); each process
is then a fork of one that runs its module as ``python -m MODULE ARGS`` would, in a session of its own, with
its working folder, environment, standard streams and CPU limit. Student code never runs in these processes
(the kernel is a separate, sandboxed process) and nothing passes from one child to another: each is a fresh
fork.

A batch has one server for its checkers and one for its nbgrader workers (which then carry no torch), each
running the fork-server core (``sandbox/fork_server.py``) with ``TrustedForking``: what it preloads, and what a
child becomes. ``TrustedForks.start`` runs one (``python -m autograder.grading.trusted_forks LISTENING_FD
MODULE``, a socket it inherits, bound before it starts, so that no request finds it missing);
``TrustedForks.spawn`` returns a ``ForkedProcess``, which answers ``pid``, ``poll``, ``wait``, ``returncode``
and ``stdin`` as ``subprocess.Popen`` does: the server reports each child's exit status on the connection that
asked for it. A child dies with the server, and the server with the thread that started it
(``sandbox/lifetime.py``). ``start_module`` starts a module's process from its server when one answers, else
as a new interpreter.
"""

from __future__ import annotations

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
from typing import IO

from autograder.grading import processes
from autograder.grading.sandbox import fork_server
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


# --- the server ------------------------------------------------------------------------------------------


def serve(listener_fd: int, module: str) -> None:
    """Import ``PRELOAD`` and warm the module up, then fork one child per request on the inherited listening
    socket (requests made meanwhile wait in its backlog); report each child's exit."""
    listener = socket.socket(fileno=listener_fd)
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
    fork_server.serve(listener, TrustedForking(module), f"trusted fork server of {module}")


@dataclass
class TrustedForking:
    """What a trusted fork server makes of a request (``fork_server.Forking``): ``python -m MODULE ARGS``."""

    module: str
    server: int = field(default_factory=os.getpid)
    fds = PASSED_FDS
    keep_connection = True

    def refusal(self, request: dict) -> str | None:
        if request.get("module") != self.module:
            return f"refused: module {request.get('module')!r} (this server forks {self.module})"
        return None

    def become(self, request: dict, fds: list[int]) -> int:
        return _run_child(request, fds, self.server)

    def forked(self, pid: int, request: dict) -> None:
        pass

    def ended(self, pid: int, exit_code: int, request: dict) -> None:
        pass


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
            self.returncode = fork_server.answer_number(line, "exit")
            self.connection.close()


@dataclass
class TrustedForks:
    """The batch's trusted fork server (see the module docstring)."""

    socket_path: Path
    process: subprocess.Popen

    module: str

    @classmethod
    def start(cls, base: Path, module: str, env: dict[str, str]) -> TrustedForks:
        """Start the server of ``module`` (``CHECKER`` or ``NBGRADER_WORKER``) with ``env``, dying with the calling
        thread; its log is in ``base``."""
        socket_path = processes.channel_folder() / "trusted.sock"
        with fork_server.listening(socket_path) as listener, open(base / SERVER_LOG, "ab") as log:
            argv = [sys.executable, "-m", "autograder.grading.trusted_forks", str(listener.fileno()), module]
            process = processes.start(argv, base, env, log, pass_fds=[listener.fileno()])
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
        if stdin == subprocess.PIPE:
            child_stdin, pipe_write = os.pipe()
        else:
            child_stdin, pipe_write = os.open(os.devnull, os.O_RDONLY), -1
        request = {"module": self.module, "args": args, "cwd": str(cwd), "env": env, "cpu_seconds": cpu_seconds}
        try:
            pid, connection = fork_server.request_fork(
                str(self.socket_path), request, [child_stdin, stdout.fileno(), stdout.fileno()], SERVER_WAIT_SECONDS)
        except OSError:
            if pipe_write >= 0:
                os.close(pipe_write)
            return None
        finally:
            os.close(child_stdin)
        return ForkedProcess(pid, connection, os.fdopen(pipe_write, "wb") if pipe_write >= 0 else None)

    def close(self) -> None:
        """Stop the server; its children die with it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)


def start_module(
    module: str, args: list[str], cwd: Path, env: dict[str, str], log: IO[bytes], stdin: int = subprocess.DEVNULL,
    cpu_seconds: int | None = None, forks: TrustedForks | None = None,
) -> subprocess.Popen | ForkedProcess:
    """``python -m module args`` in a session of its own, output to ``log``, dying with the calling thread.

    Forked from the batch's trusted fork server of ``module`` (``forks``) when there is one that answers, which
    spares the process its imports; else started as a new interpreter. Either answers like ``subprocess.Popen``.
    """
    if forks is not None and forks.module == module:
        forked = forks.spawn(args, cwd, env, log, stdin if stdin == subprocess.PIPE else None, cpu_seconds)
        if forked is not None:
            return forked
    return processes.start([sys.executable, "-m", module, *args], cwd, env, log, stdin, cpu_seconds)


def main(argv: list[str]) -> int:
    serve(int(argv[1]), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
