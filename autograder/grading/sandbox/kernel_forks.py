"""Sandboxed kernels forked from one process that imported the heavy libraries once per batch.

Every notebook of the course imports torch, numpy, pandas, matplotlib, ...: seconds of CPU per kernel, paid
again for every submission. The *fork server* pays them once. Run as
``python -I kernel_forks.py SERVER.json`` (the grader's ``warm.ForkServer`` does this, handing it a Unix socket
that already listens), it imports ``PRELOAD`` and waits for requests. This file is standalone, like ``kernel_boot.py``: it imports nothing
from ``autograder``.

A kernel spec still starts ``kernel_boot.py SANDBOX.json -f CONNECTION_FILE``. When the sandbox names a fork
server, that process becomes the kernel's *stand-in* (``run_forked``): it sends the server its standard
streams, its environment, its arguments and two pipe ends, and the server forks a child that becomes the
kernel (``kernel_boot.boot``: limits, shims, privilege drop, audit hook; all of them after the fork). The
stand-in is what Jupyter started and signals:

- an interrupt or termination sent to the stand-in is passed on to the kernel;
- the kernel ends when the stand-in ends, however it ends (the *lifeline* pipe reaches end of file);
- the stand-in ends when the kernel ends (the *deathwatch* pipe reaches end of file), so Jupyter sees a
  kernel that died;
- the server writes the kernel's pid to the sandbox's ``kernel_pid`` file, where the grader's watcher
  finds it to measure and kill it, and, once the kernel has ended, how it ended (exit code or signal) to its
  ``kernel_exit`` file, from which the grader says why a kernel died.

Only library modules whose import does not depend on the kernel are preloaded: none that looks for an
IPython shell when imported (fastai's progress bars, tqdm's notebook detection, pyplot's backend). Each
kernel is a fresh fork: nothing passes from one submission's kernel to another. When the server cannot be
reached, the kernel boots on its own, as without a server.
"""

from __future__ import annotations

import array
import gc
import importlib
import importlib.util
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import types
from collections.abc import Iterator

PRELOAD = (
    "torch", "torchvision", "numpy", "pandas", "scipy", "sklearn", "sklearn.model_selection", "matplotlib", "matplotlib.figure",
    "matplotlib.axes", "matplotlib.image", "matplotlib.backend_bases", "PIL", "plum", "beartype", "beartype.door", "requests",
    "ipykernel.kernelapp",
)
"""Imported once by the server; each forked kernel finds them in ``sys.modules``. With them, the rest of
``from fastai.vision.all import *`` takes about 0.17 s instead of 0.5 s; ``matplotlib.pyplot`` itself is left
out, since it chooses its backend when imported."""
PASSED_FDS = 5  # stdin, stdout, stderr, lifeline (read end), deathwatch (write end)
MAX_REQUEST_BYTES = 1 << 20
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
PARENT_POLL_SECONDS = 0.5
SERVER_WAIT_SECONDS = 30
"""How long a stand-in waits for the server (still importing at the start of a batch) before booting on its own."""


def _load_sibling(name: str) -> types.ModuleType:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"autograder_sandbox_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the stand-in: the process a kernel spec starts --------------------------------------------------


def run_forked(config: dict, config_path: str, kernel_argv: list[str]) -> bool:
    """Have the fork server start this kernel, then stand in for it until it ends.

    Returns False when the server cannot be reached or does not answer within ``SERVER_WAIT_SECONDS`` (the
    caller then boots the kernel itself; a kernel the server forks later ends at once, its lifeline
    closed); True once the forked kernel has ended.
    """
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.settimeout(SERVER_WAIT_SECONDS)
    lifeline_read, lifeline_write = os.pipe()
    deathwatch_read, deathwatch_write = os.pipe()
    try:
        server.connect(config["fork_server"])
        request = {
            "config": config_path,
            "argv": kernel_argv,
            "env": dict(os.environ),
            "cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
            "pid_file": config["kernel_pid"],
            "exit_file": config["kernel_exit"],
        }
        fds = array.array("i", [0, 1, 2, lifeline_read, deathwatch_write])
        server.sendmsg([(json.dumps(request) + "\n").encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        os.close(lifeline_read)
        os.close(deathwatch_write)
        lifeline_read = deathwatch_write = -1
        answer = _read_line(server)
        pid = int(answer)
    except (OSError, ValueError):
        for fd in (lifeline_read, lifeline_write, deathwatch_read, deathwatch_write):
            if fd >= 0:
                os.close(fd)  # closing the lifeline ends a kernel the server may have started
        return False
    finally:
        server.close()
    _stand_in(pid, deathwatch_read)
    return True


def _read_line(connection: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            raise OSError("the fork server closed the connection without starting a kernel")
        data += chunk
    return data.decode().strip()


def _stand_in(pid: int, deathwatch: int) -> None:
    """Pass signals on to the kernel ``pid`` until it ends; kill it if this process's parent ends first."""

    def forward(signum: int, _frame) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    parent = os.getppid()
    while True:
        try:
            readable, _, _ = select.select([deathwatch], [], [], PARENT_POLL_SECONDS)
        except InterruptedError:
            continue
        if readable and not os.read(deathwatch, 1):
            return
        if os.getppid() != parent:
            forward(signal.SIGKILL, None)
            return


# --- the server ----------------------------------------------------------------------------------------


def serve(config: dict) -> None:
    """Import ``PRELOAD``, then fork on request on the inherited listening socket ``listener_fd`` (a stand-in
    that connects meanwhile waits in its backlog)."""
    listener = socket.socket(fileno=int(config["listener_fd"]))
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kernel_boot = _load_sibling("kernel_boot")
    kernel_boot.load_joining()
    for name in config.get("preload", PRELOAD):
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a missing library is imported (or not) by the kernel itself
            print(f"fork server: not preloading {name}: {error}", file=sys.stderr, flush=True)
    freeze_heap()
    print("fork server: ready", flush=True)
    while True:
        connection, _ = listener.accept()
        try:
            _fork_one(connection, listener, kernel_boot)
        except Exception as error:  # noqa: BLE001 - one bad request never stops the server
            print(f"fork server: request refused: {error!r}", file=sys.stderr, flush=True)
        finally:
            connection.close()


def freeze_heap() -> None:
    """Move every object the server has made so far out of the garbage collector's reach, for good.

    A forked kernel then never walks the preloaded libraries' hundreds of thousands of objects in a full
    collection (0.2 to 0.4 s each), nor copies the memory pages that walk would write to.
    """
    gc.collect()
    gc.freeze()


_exit_files: dict[int, str] = {}
"""Each running kernel's ``kernel_exit`` file, by pid."""


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


def _reap(_signum: int, _frame) -> None:
    """Wait for every ended kernel (so that their CPU time counts in this server's, as for any child), and
    record how it ended."""
    for pid, status in ended_children():
        exit_file = _exit_files.pop(pid, None)
        if exit_file:
            _record_exit(exit_file, pid, status)


def _record_exit(path: str, pid: int, status: int) -> None:
    """Write ``{"pid", "exit_code"}`` or ``{"pid", "signal"}`` to ``path``, whole or not at all."""
    code = os.waitstatus_to_exitcode(status)
    ending = {"pid": pid, "signal": -code} if code < 0 else {"pid": pid, "exit_code": code}
    try:
        with open(path + ".partial", "w") as handle:
            handle.write(json.dumps(ending))
        os.replace(path + ".partial", path)
    except OSError:
        pass  # the sandbox was removed already: nobody asks any more


def receive_request(connection: socket.socket, count: int) -> tuple[dict, list[int]]:
    """One JSON line and exactly ``count`` descriptors (passed with it) from ``connection``."""
    data, fds = b"", []
    while not data.endswith(b"\n"):
        chunk, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(count * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        if not chunk or len(data) + len(chunk) > MAX_REQUEST_BYTES:
            for fd in fds:
                os.close(fd)
            raise OSError("incomplete or oversized request")
        data += chunk
    if len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise OSError(f"expected {count} descriptors, got {len(fds)}")
    return json.loads(data), fds


def hung_up(connection: socket.socket) -> bool:
    """Whether the requester closed its end (it gave up waiting, and started its process another way)."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


def _fork_one(connection: socket.socket, listener: socket.socket, kernel_boot: types.ModuleType) -> None:
    request, fds = receive_request(connection, PASSED_FDS)
    try:
        if hung_up(connection):
            raise OSError("the stand-in stopped waiting (its kernel booted on its own)")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # reaped only once its exit file is known
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                    connection.close()
                    listener.close()
                    _become_kernel(request, fds, kernel_boot)
                finally:
                    os._exit(1)
            _exit_files[pid] = request["exit_file"]
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        partial = request["pid_file"] + ".partial"
        with open(partial, "w") as handle:
            handle.write(str(pid))
        os.replace(partial, request["pid_file"])
        connection.sendall(f"{pid}\n".encode())
        print(f"fork server: kernel {pid} for {request['config']}", flush=True)
    finally:
        for fd in fds:
            os.close(fd)


def _become_kernel(request: dict, fds: list[int], kernel_boot: types.ModuleType) -> None:
    """In the forked child: take over the stand-in's streams and environment, then boot the sandboxed kernel."""
    stdin, stdout, stderr, lifeline, deathwatch = fds
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(fd, target)
    for fd in (stdin, stdout, stderr):
        os.close(fd)
    os.set_inheritable(lifeline, False)
    os.set_inheritable(deathwatch, False)  # kept open, never written: it closes when this process ends
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [kernel_boot.__file__, *request["argv"]]
    _forget_process_state()
    soft, hard = request["cpu"]
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    with open(request["config"]) as handle:
        config = json.load(handle)
    argv, joined = request["argv"], None
    if config.get("holder_pid"):  # before any thread starts: only a single-threaded process may join
        argv, log_fd, peer_module = kernel_boot.enter_sandbox(config, argv, [lifeline, deathwatch])
        joined = (log_fd, peer_module)
    threading.Thread(target=_exit_when_closed, args=(lifeline,), daemon=True).start()
    kernel_boot.boot(config, argv, joined)


def _forget_process_state() -> None:
    """What a fresh process would not share with its siblings: cached temp folder, random seeds."""
    import tempfile

    tempfile.tempdir = None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _exit_when_closed(fd: int) -> None:
    """End this kernel when the stand-in's end of the lifeline closes (the stand-in ended)."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os._exit(1)


def main() -> None:
    with open(sys.argv[1]) as handle:
        serve(json.load(handle))


if __name__ == "__main__":
    main()
