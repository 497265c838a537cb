"""Sandboxed kernels forked from one process that imported the heavy libraries once per batch.

Every notebook of the course imports torch, numpy, pandas, matplotlib, ...: seconds of CPU per kernel, paid
again for every submission. The *fork server* pays them once. Run as
``python -I kernel_forks.py SERVER.json`` (the grader's ``warm.ForkServer`` does this, handing it a Unix socket
that already listens), it imports ``PRELOAD`` and serves requests on the fork-server core (``fork_server.py``).
This file is standalone, like ``kernel_boot.py``: it imports nothing from ``autograder``, and loads its siblings
``fork_server.py`` and ``lifetime.py`` by path.

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

Libraries that look for an IPython shell when imported (fastcore's ``IN_NOTEBOOK``, fastprogress's choice of
progress bar) are imported last, ``PRELOAD_AS_IN_A_NOTEBOOK``, while ``get_ipython()`` answers with a stand-in
of the shell every forked child becomes (``_as_in_a_notebook``); what they read of the process's folder at
import is read again in the child (``_as_if_imported_here``). Each kernel is a fresh fork: nothing passes from
one submission's kernel to another. When the server cannot be reached, the kernel boots on its own, as
without a server.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.util
import json
import os
import resource
import signal
import socket
import sys
import threading
import types
import warnings
from collections.abc import Iterator

PRELOAD = (
    "torch", "torchvision", "numpy", "pandas", "scipy", "sklearn", "sklearn.model_selection", "matplotlib", "matplotlib.figure",
    "matplotlib.axes", "matplotlib.image", "matplotlib.backend_bases", "PIL", "plum", "beartype", "beartype.door", "requests",
    "ipykernel.kernelapp",
    # what a kernel imports on its first cell, its first image or its first traceback
    "IPython.core.logger", "sqlite3", "PIL.BmpImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin", "PIL.PngImagePlugin",
    "PIL.PpmImagePlugin",
    # what fastprogress's HTML bars (fasthtml) and fastai's imports pull in without fastcore
    "yaml", "anyio", "itsdangerous", "python_multipart", "pdb", "configparser", "xml.sax.saxutils", "starlette.applications",
    "starlette.authentication", "starlette.background", "starlette.config", "starlette.endpoints", "starlette.formparsers",
    "starlette.middleware.authentication", "starlette.middleware.cors", "starlette.middleware.httpsredirect",
    "starlette.middleware.sessions", "starlette.middleware.trustedhost", "starlette.requests", "starlette.responses",
    "starlette.routing", "starlette.staticfiles", "starlette.websockets",
)
"""Imported once by the server, first; each forked kernel finds them in ``sys.modules``. None of them looks for
a notebook when imported."""
PRELOAD_AS_IN_A_NOTEBOOK = ("fastai.vision.all", "matplotlib.pyplot")
"""Imported by the server after ``PRELOAD``, as in a notebook's kernel (``_as_in_a_notebook``): a cell's
``from fastai.vision.all import *`` then costs a sandboxed kernel about 0.01 CPU s instead of 0.13 to 0.23.
pyplot picks no backend when imported: the kernel's first figure does, from
``MPLBACKEND`` (the inline backend, as in the server's environment)."""
PASSED_FDS = 5  # stdin, stdout, stderr, lifeline (read end), deathwatch (write end)
SERVER_WAIT_SECONDS = 30
"""How long a stand-in waits for the server (still importing at the start of a batch) before booting on its own."""


def _load_sibling(name: str) -> types.ModuleType:
    """A standalone file of this folder, loaded by path once per process."""
    module_name = f"autograder_sandbox_{name}"
    if module_name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return sys.modules[module_name]


fork_server = _load_sibling("fork_server")
lifetime = _load_sibling("lifetime")
SOURCE_FILES = (os.path.abspath(__file__), fork_server.__file__, lifetime.__file__)
"""This file and the siblings it loads: a forked kernel runs their code, and may read them (its tracebacks show
their lines)."""


# --- the stand-in: the process a kernel spec starts --------------------------------------------------


def run_forked(config: dict, config_path: str, kernel_argv: list[str]) -> bool:
    """Have the fork server start this kernel, then stand in for it until it ends.

    Returns False when the server cannot be reached or does not answer within ``SERVER_WAIT_SECONDS`` (the
    caller then boots the kernel itself; a kernel the server forks later ends at once, its lifeline
    closed); True once the forked kernel has ended.
    """
    lifeline_read, lifeline_write = os.pipe()
    deathwatch_read, deathwatch_write = os.pipe()
    request = {
        "config": config_path,
        "argv": kernel_argv,
        "env": dict(os.environ),
        "cpu": list(resource.getrlimit(resource.RLIMIT_CPU)),
        "pid_file": config["kernel_pid"],
        "exit_file": config["kernel_exit"],
    }
    try:
        pid, connection = fork_server.request_fork(config["fork_server"], request, [0, 1, 2, lifeline_read, deathwatch_write],
                                                   SERVER_WAIT_SECONDS)
        connection.close()
    except OSError:
        for fd in (lifeline_read, lifeline_write, deathwatch_read, deathwatch_write):
            os.close(fd)  # closing the lifeline ends a kernel the server may have started
        return False
    os.close(lifeline_read)
    os.close(deathwatch_write)
    _stand_in(pid, deathwatch_read)
    return True


def _stand_in(pid: int, deathwatch: int) -> None:
    """Pass signals on to the kernel ``pid`` until it ends; kill it if this process's parent ends first.

    Jupyter starts this process from a thread of its choosing, so the parent is watched (``lifetime.watch_parent``)
    rather than bound to that thread's life.
    """
    forward = lifetime.forward_signals(pid)
    lifetime.watch_parent(on_death=lambda: forward(signal.SIGKILL, None))
    while os.read(deathwatch, 1):
        pass


# --- the server ----------------------------------------------------------------------------------------


class KernelForking:
    """What the kernel fork server makes of a request (``fork_server.Forking``): a sandboxed kernel."""

    fds = PASSED_FDS
    keep_connection = False

    def __init__(self, kernel_boot: types.ModuleType) -> None:
        self.kernel_boot = kernel_boot

    def refusal(self, request: dict) -> str | None:
        return None

    def become(self, request: dict, fds: list[int]) -> int:
        _become_kernel(request, fds, self.kernel_boot)
        return 1

    def forked(self, pid: int, request: dict) -> None:
        """Write the kernel's pid where the grader's watcher looks for it, whole or not at all."""
        _write_whole(request["pid_file"], str(pid))
        print(f"fork server: kernel {pid} for {request['config']}", flush=True)

    def ended(self, pid: int, exit_code: int, request: dict) -> None:
        """Record how the kernel ended: ``{"pid", "exit_code"}`` or ``{"pid", "signal"}``."""
        ending = {"pid": pid, "signal": -exit_code} if exit_code < 0 else {"pid": pid, "exit_code": exit_code}
        try:
            _write_whole(request["exit_file"], json.dumps(ending))
        except OSError:
            pass  # the sandbox was removed already: nobody asks any more


def _write_whole(path: str, text: str) -> None:
    with open(path + ".partial", "w") as handle:
        handle.write(text)
    os.replace(path + ".partial", path)


def serve(config: dict) -> None:
    """Import ``PRELOAD``, then fork a kernel per request on the inherited listening socket ``listener_fd`` (a
    stand-in that connects meanwhile waits in its backlog)."""
    listener = socket.socket(fileno=int(config["listener_fd"]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kernel_boot = _load_sibling("kernel_boot")
    kernel_boot.load_joining()
    _preload(config.get("preload", PRELOAD))
    with _as_in_a_notebook():
        _preload(config.get("preload_as_in_a_notebook", PRELOAD_AS_IN_A_NOTEBOOK))
    _warm_up_tracebacks()
    fork_server.serve(listener, KernelForking(kernel_boot), "fork server")


def _preload(names: list[str]) -> None:
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a library's import-time notice is the kernel's to show, not the server's
                importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a missing library is imported (or not) by the kernel itself
            print(f"fork server: not preloading {name}: {error}", file=sys.stderr, flush=True)


def _warm_up_tracebacks() -> None:
    """Pay once per batch what the first traceback of every kernel would (a failing test cell shows one): IPython's
    formatter imports ``stack_data`` and compiles pygments' Python lexer, and ``inspect.getmodule`` maps every
    loaded module to its file (with fastai loaded, about 0.05 CPU s in all). Each forked kernel inherits the
    results; what it imports later is mapped when its first traceback needs it."""
    try:
        from IPython.core.ultratb import AutoFormattedTB

        formatter = AutoFormattedTB(mode="Context", theme_name="linux")
        try:
            raise AssertionError("a traceback formatted once by the fork server")
        except AssertionError:
            formatter.structured_traceback(*sys.exc_info())
    except Exception as error:  # noqa: BLE001 - without the warm-up, a kernel's first traceback pays it, as before
        print(f"fork server: tracebacks not warmed up: {error}", file=sys.stderr, flush=True)


class ZMQInteractiveShell:
    """Stands in for ipykernel's shell while the server imports ``PRELOAD_AS_IN_A_NOTEBOOK``: those libraries
    decide whether they run in a notebook from the name of ``get_ipython()``'s class (and its bases' names)."""


@contextlib.contextmanager
def _as_in_a_notebook() -> Iterator[None]:
    """``get_ipython()`` answers with a ``ZMQInteractiveShell`` stand-in meanwhile, as it will in every kernel
    forked from this process; afterwards the name is gone again (a kernel's shell defines its own)."""
    shell = ZMQInteractiveShell()
    builtins.get_ipython = lambda: shell
    try:
        yield
    finally:
        del builtins.get_ipython


def _as_if_imported_here() -> None:
    """In a forked kernel, once in its own folder: what a preloaded library read of the server's folder when
    imported, read again (fastai's ``URLs.LOCAL_PATH``, where ``URLs.path`` looks for a dataset first)."""
    external = sys.modules.get("fastai.data.external")
    if external is not None:
        external.URLs.LOCAL_PATH = type(external.URLs.LOCAL_PATH).cwd()


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
    os.chdir(config["scratch"])  # where boot puts the kernel too
    _as_if_imported_here()
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
