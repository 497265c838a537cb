"""Spares: a sandbox with its grading process started, so that a submission's kernel can boot before its turn.

Before a notebook's first cell can run, its grading process imports nbgrader and starts the sandboxed kernel:
seconds of every submission that no cell of it depends on. Every submission therefore runs in a *spare*
(``start_spare``): a sandbox built as for any submission (``layout.build_sandbox``) with ``nbgrader_worker
--ready`` running in it, which does that work at once and then waits for its job on standard input
(``Spare.send``). Each spare grades exactly one submission, in a kernel of its own, so nothing passes from one
student to the next.

``WarmStarts`` keeps spares ready for the next submissions of a local batch, and owns the batch's fork servers
(``servers.BatchServers``). A spare is started by the thread that grades a submission (its processes die with
that thread, see ``processes.child_setup``), a few seconds into that submission (once its kernel has booted),
and only while more submissions wait than there are spares. A submission that finds no spare ready makes one
on demand, in its own work folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import notebook as course_notebook
from autograder.grading import processes
from autograder.grading.limits import Limits
from autograder.grading.nbgrader_worker import READY_FLAG
from autograder.grading.sandbox import layout
from autograder.grading.servers import BatchServers, ForkServer, kill_forked_kernel
from autograder.grading.trusted_forks import NBGRADER_WORKER, ForkedProcess, TrustedForks, start_module
from autograder.nbgrader_cells import blank_of, points

SPARE_LOG = "worker.log"
SPARE_PREFIX = "warm-"
"""How the work folder of a spare made ahead is named in the batch's folder."""


def blank_points(course_root: Path, assignment: str) -> dict[str, float]:
    """Each blank's points, from the test cells of the released notebook."""
    nb = nbformat.read(course_notebook(course_root, "release", assignment), as_version=4)
    return {blank: points(cell) for cell in nb.cells if (blank := blank_of(cell))}


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
               "cell_timeout": limits.cell_timeout, "max_output_bytes": limits.output_bytes}
        try:
            self.grader.stdin.write((json.dumps(job) + "\n").encode())
            self.grader.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def stop(self, *others: processes.Child | None) -> None:
        """End the grading process, then ``others`` (the checker), the forked kernel and the namespace sandbox, and
        remove the sandbox's channel folder; the work folder stays."""
        for child in (self.grader, *others):
            if child is not None:
                processes.end(child)
        kill_forked_kernel(self.sandbox)
        shutil.rmtree(self.sandbox.channel, ignore_errors=True)

    def discard(self) -> None:
        """End the spare's processes and remove its folder."""
        try:
            self.grader.stdin.close()
        except OSError:
            pass
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def start_spare(work: Path, course_root: Path, points: dict[str, float], limits: Limits, servers: BatchServers | None = None) -> Spare:
    """Build a sandbox in ``work`` (an empty folder, or one holding only ``course/``) and start a ready grading
    process in it, forked from ``servers`` where they answer.

    Raises:
        OSError: the sandbox could not be built, or the process not started (nothing is left running).
    """
    servers = servers or BatchServers()
    sandbox = layout.build_sandbox(work, course_root, points, limits.threads, limits.output_bytes, servers.kernel_socket,
                                   limits.isolate, limits.memory_backstop_bytes)
    try:
        with open(work / SPARE_LOG, "wb") as log:
            grader = start_module(NBGRADER_WORKER, [READY_FLAG], work, sandbox.env, log, stdin=subprocess.PIPE,
                                  cpu_seconds=limits.cpu_seconds, forks=servers.graders)
    except BaseException:
        kill_forked_kernel(sandbox)
        shutil.rmtree(sandbox.channel, ignore_errors=True)
        raise
    return Spare(work, sandbox, grader)


class WarmStarts:
    """The spares of one batch of ``submissions`` submissions of ``assignment``, made in folders under ``base``.

    ``base`` must be the folder that holds the batch's per-submission work folders (their sandboxes share
    ``base/.sandbox-shared``). The batch's fork servers start here, unless ``servers`` are given: those of
    another process grading the same course in the same ``base`` (``host_share``), which ``close`` leaves
    running. Call ``close`` when the batch ends.
    """

    def __init__(self, course_root: Path, assignment: str, limits: Limits, base: Path, submissions: int,
                 servers: BatchServers | None = None) -> None:
        self.course_root, self.assignment, self.limits, self.base = course_root, assignment, limits, base
        self.points = blank_points(course_root, assignment)
        self._lock = threading.Lock()
        self._spares: list[Spare] = []
        self._waiting = submissions
        self._starting = 0
        self._closed = False
        self.servers = servers if servers is not None else BatchServers.start(base, limits)

    @property
    def forks(self) -> ForkServer | None:
        """The batch's kernel fork server."""
        return self.servers.kernels

    @property
    def checkers(self) -> TrustedForks | None:
        return self.servers.checkers

    @property
    def graders(self) -> TrustedForks | None:
        return self.servers.graders

    def take(self) -> Spare | None:
        """A live spare for the submission about to start, or None (it then makes one on demand)."""
        with self._lock:
            self._waiting = max(0, self._waiting - 1)
            while self._spares:
                spare = self._spares.pop(0)
                if spare.alive():
                    return spare
                threading.Thread(target=spare.discard, daemon=True).start()
        return None

    def make(self, work: Path) -> Spare:
        """A spare made on demand in ``work``, for the submission about to start, with the batch's fork servers."""
        return start_spare(work, self.course_root, self.points, self.limits, self.servers)

    def expect(self, waiting: int) -> None:
        """Set how many submissions still want a spare (counted down by ``take``)."""
        with self._lock:
            self._waiting = max(0, waiting)

    def refill(self) -> None:
        """Start one spare from the calling thread if more submissions wait than spares exist or start."""
        with self._lock:
            if self._closed or self._waiting <= len(self._spares) + self._starting:
                return
            self._starting += 1
        spare = work = None
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=SPARE_PREFIX, dir=self.base))  # unique among every process using base
            spare = self._start(work)
        except Exception:  # noqa: BLE001 - without a spare the next submission makes one on demand
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        finally:
            with self._lock:
                self._starting -= 1
                if spare is not None and not self._closed:
                    self._spares.append(spare)
                    spare = None
            if spare is not None:
                spare.discard()

    def _start(self, work: Path) -> Spare:
        """A spare made ahead in ``work``, an empty folder made for it."""
        return self.make(work)

    def close(self) -> None:
        """Discard the spares no submission took (the last ones of the batch, or after a failure), and stop the
        batch's fork servers."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.discard()
        self.servers.close()
