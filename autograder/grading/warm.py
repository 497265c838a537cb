"""Grading processes started ahead, so that the next submission's kernel boots while the current one is graded.

Before a notebook's first cell can run, its grading process imports nbgrader and starts the sandboxed kernel
(Python, torch, ipykernel): seconds of every submission that no cell of it depends on. ``WarmStarts`` keeps a
*spare* ready for the next submission of a batch: a sandbox built as for any submission
(``layout.build_sandbox``) with ``nbgrader_worker --ready`` running in it, which does that work at once and
then waits for its job on standard input. The next submission takes the spare; its notebook runs in the
kernel that booted meanwhile. Each spare grades exactly one submission, in a kernel of its own, so nothing
passes from one student to the next.

The batch's checkers and nbgrader workers are forked from a *trusted fork server* (``trusted_forks.py``)
that imported torch, the checks and nbgrader once, and its kernels from a *fork server* (``ForkServer``, running
``sandbox/kernel_forks.py``) that imported torch, numpy, pandas, matplotlib and IPython's kernel once:
each kernel then starts with those in memory instead of importing them again.

A spare is started by the thread that grades a submission (its parent-death signal is bound to that thread,
see ``worker._child_setup``), a few seconds into that submission (once its kernel has booted), and only
while more submissions wait than there are spares.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder.grading.nbgrader_worker import READY_FLAG
from autograder.grading.sandbox import kernel_forks, layout
from autograder.grading.trusted_forks import CHECKER, NBGRADER_WORKER, ForkedProcess, TrustedForks, listening
from autograder.grading.worker import Limits, _child_setup, _kill, _tree, blank_points, checker_env, kill_forked_kernel, start_module

SPARE_LOG = "worker.log"
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
        channel = layout.channel_folder()
        channel.chmod(0o700)
        config = channel / "server.json"
        with listening(channel / "forks.sock") as listener, open(shared / FORK_SERVER_LOG, "ab") as log:
            config.write_text(json.dumps({"listener_fd": listener.fileno(), "preload": list(kernel_forks.PRELOAD)}))
            process = subprocess.Popen(
                [sys.executable, "-I", kernel_forks.__file__, str(config)], cwd=env["HOME"], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_child_setup(), start_new_session=True,
                pass_fds=(listener.fileno(),),
            )
        return cls(channel / "forks.sock", process)

    def close(self) -> None:
        """Stop the server and whatever kernel it forked that still runs."""
        try:
            _kill(_tree(psutil.Process(self.process.pid)))
        except psutil.NoSuchProcess:
            pass
        self.process.wait()
        shutil.rmtree(self.socket.parent, ignore_errors=True)


@dataclass
class Spare:
    """A sandbox with a grading process ready in it (``work`` becomes the submission's work folder)."""

    work: Path
    sandbox: layout.Sandbox
    grader: subprocess.Popen | ForkedProcess

    def alive(self) -> bool:
        return self.grader.poll() is None

    def send(self, course: Path, assignment: str, student: str, limits: Limits) -> bool:
        """Hand the spare its job; False when it cannot take it (it has died)."""
        job = {"course": str(course), "assignment": assignment, "student": student,
               "cell_timeout": limits.cell_timeout, "max_output_bytes": limits.output_mb * 2**20}
        try:
            self.grader.stdin.write((json.dumps(job) + "\n").encode())
            self.grader.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def discard(self) -> None:
        """End the spare's processes and remove its folder."""
        try:
            self.grader.stdin.close()
        except OSError:
            pass
        try:
            _kill(_tree(psutil.Process(self.grader.pid)))
        except psutil.NoSuchProcess:
            pass
        self.grader.wait()
        kill_forked_kernel(self.sandbox)
        shutil.rmtree(self.sandbox.channel, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


class WarmStarts:
    """The spares of one batch of ``submissions`` submissions of ``assignment``, made in folders under ``base``.

    ``base`` must be the folder that holds the batch's per-submission work folders (their sandboxes share
    ``base/.sandbox-shared``). The batch's fork server starts here; sandboxes name ``fork_socket``. Call
    ``close`` when the batch ends.
    """

    def __init__(self, course_root: Path, assignment: str, limits: Limits, base: Path, submissions: int) -> None:
        self.course_root, self.assignment, self.limits, self.base = course_root, assignment, limits, base
        self.points = blank_points(course_root, assignment)
        self._lock = threading.Lock()
        self._spares: list[Spare] = []
        self._waiting = submissions
        self._starting = 0
        self._made = 0
        self._closed = False
        try:
            self.forks: ForkServer | None = ForkServer.start(base, limits.threads)
        except OSError:  # without a fork server each kernel boots on its own
            self.forks = None
        self.fork_socket = self.forks.socket if self.forks is not None else None
        self.checkers = self._trusted_server(CHECKER, checker_env(limits))
        self.graders = self._trusted_server(NBGRADER_WORKER, layout.fork_server_env(base / layout.SHARED, limits.threads))

    def _trusted_server(self, module: str, env: dict[str, str]) -> TrustedForks | None:
        try:
            return TrustedForks.start(self.base, module, env, _child_setup())
        except OSError:  # without it each such process starts as a new interpreter
            return None

    def take(self) -> Spare | None:
        """A live spare for the submission about to start, or None (it then starts cold)."""
        with self._lock:
            self._waiting = max(0, self._waiting - 1)
            while self._spares:
                spare = self._spares.pop(0)
                if spare.alive():
                    return spare
                threading.Thread(target=spare.discard, daemon=True).start()
        return None

    def refill(self) -> None:
        """Start one spare from the calling thread if more submissions wait than spares exist or start."""
        with self._lock:
            if self._closed or self._waiting <= len(self._spares) + self._starting:
                return
            self._starting += 1
            self._made += 1
            work = self.base / f"warm-{self._made:05d}"
        spare = None
        try:
            spare = self._start(work)
        except Exception:  # noqa: BLE001 - without a spare the next submission starts cold, as without this pool
            shutil.rmtree(work, ignore_errors=True)
        finally:
            with self._lock:
                self._starting -= 1
                if spare is not None and not self._closed:
                    self._spares.append(spare)
                    spare = None
            if spare is not None:
                spare.discard()

    def _start(self, work: Path) -> Spare | None:
        work.mkdir(parents=True)
        limits = self.limits
        sandbox = layout.build_sandbox(work, self.course_root, self.points, limits.threads, limits.output_mb * 2**20, self.fork_socket,
                                     limits.isolate, limits.memory_backstop_bytes)
        with open(work / SPARE_LOG, "wb") as log:
            grader = start_module("autograder.grading.nbgrader_worker", [READY_FLAG], work, sandbox.env, log, stdin=subprocess.PIPE,
                                  cpu_seconds=limits.cpu_seconds, forks=self.graders)
        return Spare(work, sandbox, grader)

    def close(self) -> None:
        """Discard the spares no submission took (the last ones of the batch, or after a failure)."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.discard()
        if self.forks is not None:
            self.forks.close()
        for server in (self.checkers, self.graders):
            if server is not None:
                server.close()
