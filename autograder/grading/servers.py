"""The fork servers of one batch, started and closed together.

Before a notebook's first cell runs, three Python processes import heavy libraries: the kernel (torch, numpy,
pandas, matplotlib, IPython's kernel), the checker (torch and the hidden checks) and the nbgrader worker
(nbgrader, nbconvert, jupyter_client). A batch pays those imports once, in three fork servers built on one core
(``sandbox/fork_server.py``), and each submission's processes are fresh forks of them:

- ``ForkServer``: the kernels' server (``sandbox/kernel_forks.py``); a sandbox that names its socket has its
  kernel forked there (``forked_kernel`` finds it, ``kill_forked_kernel`` ends it);
- two ``trusted_forks.TrustedForks``: one for checkers, one for nbgrader workers.

A server that cannot start is left out: its processes then start as new interpreters. All of them die with
the thread that started them (``processes.start``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder.grading import processes
from autograder.grading.limits import Limits, checker_env
from autograder.grading.sandbox import fork_server, kernel_forks, layout
from autograder.grading.trusted_forks import CHECKER, NBGRADER_WORKER, TrustedForks

FORK_SERVER_LOG = "fork-server.log"


@dataclass
class ForkServer:
    """The batch's ``kernel_forks`` server: kernels whose sandbox names ``socket`` are forked from it."""

    socket: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, base: Path, threads: int) -> ForkServer:
        """Start it for kernels with ``threads`` math threads; it listens at once and imports in the background.

        Its environment is a kernel's (``layout.fork_server_env``): the libraries it imports read theirs on import.
        """
        shared = base / layout.SHARED
        env = layout.fork_server_env(shared, threads)
        channel = processes.channel_folder()
        config = channel / "server.json"
        with fork_server.listening(channel / "forks.sock") as listener, open(shared / FORK_SERVER_LOG, "ab") as log:
            config.write_text(json.dumps({"listener_fd": listener.fileno(), "preload": list(kernel_forks.PRELOAD),
                                          "preload_as_in_a_notebook": list(kernel_forks.PRELOAD_AS_IN_A_NOTEBOOK)}))
            argv = [sys.executable, "-I", kernel_forks.__file__, str(config)]
            process = processes.start(argv, Path(env["HOME"]), env, log, pass_fds=[listener.fileno()])
        return cls(channel / "forks.sock", process)

    def close(self) -> None:
        """Stop the server and whatever kernel it forked that still runs."""
        processes.kill(processes.tree_of(self.process.pid))
        self.process.wait()
        shutil.rmtree(self.socket.parent, ignore_errors=True)


@dataclass
class BatchServers:
    """The batch's kernel fork server and trusted fork servers (None: that one could not start)."""

    kernels: ForkServer | None = None
    checkers: TrustedForks | None = None
    graders: TrustedForks | None = None

    @classmethod
    def start(cls, base: Path, limits: Limits) -> BatchServers:
        """Start all three for a batch whose work folders lie in ``base``."""
        servers = cls()
        try:
            servers.kernels = ForkServer.start(base, limits.threads)
        except OSError:  # without it each kernel boots on its own
            pass
        servers.checkers = _trusted(base, CHECKER, checker_env(limits))
        servers.graders = _trusted(base, NBGRADER_WORKER, layout.fork_server_env(base / layout.SHARED, limits.threads))
        return servers

    @property
    def kernel_socket(self) -> Path | None:
        """The socket a sandbox names to have its kernel forked; None without a kernel fork server."""
        return self.kernels.socket if self.kernels is not None else None

    def close(self) -> None:
        """Stop every server; their children die with them."""
        for server in (self.kernels, self.checkers, self.graders):
            if server is not None:
                server.close()


def _trusted(base: Path, module: str, env: dict[str, str]) -> TrustedForks | None:
    try:
        return TrustedForks.start(base, module, env)
    except OSError:  # without it each such process starts as a new interpreter
        return None


def forked_kernel(sandbox: layout.Sandbox) -> psutil.Process | None:
    """The sandbox's kernel when the fork server started it (not a child of the grading process), else None.

    The server writes the pid file just after the fork: a process created later reuses the pid, and is not it.
    """
    try:
        kernel = psutil.Process(int(sandbox.kernel_pid.read_text()))
        if kernel.create_time() > sandbox.kernel_pid.stat().st_mtime + 1:
            return None
        return kernel
    except (OSError, ValueError, psutil.Error):
        return None


def kill_forked_kernel(sandbox: layout.Sandbox) -> None:
    """Kill the sandbox's forked kernel, if any, and whatever is left in its session and its namespace sandbox."""
    kernel = forked_kernel(sandbox)
    if kernel is not None:
        processes.kill(processes.tree(kernel))
        processes.kill_session(kernel.pid)
    if sandbox.holder is not None:
        sandbox.holder.close()
