"""Execute one submission with nbgrader in a scratch course, sandboxed, under limits, watched from outside.

The scratch course holds only the configuration, a gradebook that knows the assignment (no other
student), and the one submission. The notebook's kernel runs in the sandbox of ``sandbox/``: its own
folder, a scrubbed environment, an unprivileged user when grading runs as root, and an audit hook;
the hidden checks run in a separate trusted checker process that reaches the student's functions only
through a data-only channel, and the test cells' outputs are rebuilt from the checker's reports before
scoring. The processes are watched: past the memory, CPU, wall-clock, process or disk limit, they are
killed and the submission gets a status saying which limit it crossed.

``execute_submission`` reads as its four steps: *prepare* (a spare, ``warm.py``: the batch's, or one made
now, with the submission's scratch course), *start* (hand the spare its job, start the checker), *watch*
(until the grading process ends or a limit is crossed) and *outcome* (``outcome.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from autograder.course import CONFIG_NAME, scratch_course
from autograder.grading import processes
from autograder.grading.limits import Limits, checker_env
from autograder.grading.outcome import Ending, Execution, Usage, outcome
from autograder.grading.results import Status
from autograder.grading.sandbox import layout
from autograder.grading.servers import forked_kernel
from autograder.grading.trusted_forks import CHECKER, TrustedForks, start_module
from autograder.grading.warm import Spare, WarmStarts, blank_points, start_spare
from autograder.nbgrader_api import generate_assignment

__all__ = ["Execution", "Limits", "checker_env", "execute_submission", "forked_kernel", "prepare_template"]

POLL_SECONDS = 0.2
LATER_SECONDS = 5.0
"""When a submission's watcher starts the spare for the next one: once this submission's kernel has booted."""
DISK_POLL_EVERY = 5
TREE_POLL_EVERY = 5
"""Every how many polls the watched process trees are listed again (a listing reads every process's
``/proc`` entry); in between, the memory and CPU of the processes last listed are read."""


TEMPLATE_CACHE = Path("grading") / ".cache"
"""Where built gradebook templates are kept, relative to the course, one per assignment and inputs."""


def _template_key(course_root: Path, assignment: str) -> str:
    """A digest of what the template depends on: the assignment's source files, the configuration, nbgrader."""
    import nbgrader

    digest = hashlib.sha256(nbgrader.__version__.encode())
    digest.update((course_root / CONFIG_NAME).read_bytes())
    folder = course_root / "source" / assignment
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_template(course_root: Path, assignment: str, into: Path) -> Path:
    """A gradebook that knows ``assignment`` (and no student), built from the course's ``source/``.

    Building one runs ``nbgrader generate_assignment`` in a scratch course (its database set-up and
    preprocessors); the result is kept in ``grading/.cache/`` under a digest of the assignment's
    source files, the configuration and nbgrader's version, and reused while they stay the same.

    Returns:
        The path of that ``gradebook.db`` in ``into``, to be copied into every scratch course.
    """
    template = into / "gradebook.db"
    into.mkdir(parents=True, exist_ok=True)
    cache = course_root / TEMPLATE_CACHE
    cached = cache / f"{assignment}-{_template_key(course_root, assignment)}.db"
    if cached.is_file():
        shutil.copy2(cached, template)
        return template
    course = scratch_course(course_root, into / "template-course")
    generate_assignment(course, assignment)
    shutil.copy2(course / "gradebook.db", template)
    shutil.rmtree(course)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for stale in [*cache.glob(f"{assignment}-*.db"), *cache.glob(f".{assignment}-*.partial")]:
            stale.unlink()
        staged = cache / f".{cached.name}.{os.getpid()}.partial"
        shutil.copy2(template, staged)
        os.replace(staged, cached)
    except OSError:
        pass  # the cache only saves time
    return template


def _scratch(template_db: Path, course_root: Path, assignment: str, student: str, submitted: Path, into: Path) -> Path:
    course = into / "course"
    (course / "source" / assignment).mkdir(parents=True)
    course.chmod(0o700)
    shutil.copy2(course_root / CONFIG_NAME, course / CONFIG_NAME)
    shutil.copy2(template_db, course / "gradebook.db")
    target = course / "submitted" / student / assignment
    shutil.copytree(submitted, target)
    return course


def _start_checker(sandbox: layout.Sandbox, limits: Limits, forks: TrustedForks | None = None) -> processes.Child:
    with open(sandbox.private / "checker.log", "wb") as log:
        return start_module(CHECKER, [str(sandbox.checker_config)], sandbox.private, checker_env(limits), log, forks=forks)


def _checker_failure(sandbox: layout.Sandbox, checker: processes.Child) -> str | None:
    """Why the checker is not serving, or None while it is (it serves until it is killed)."""
    if checker.poll() is None:
        return None
    log = (sandbox.private / "checker.log").read_text(errors="replace").strip()
    return f"the checker process ended (exit code {checker.returncode}) before the notebook was graded: {log[-300:] or 'no log'}"


@dataclass
class _Watch:
    """What the watcher has seen so far of one submission's processes."""

    started: float
    polls: int = 0
    cpu: float = 0.0
    peak_memory: float = 0.0
    kernel: psutil.Process | None = None
    tree: tuple[psutil.Process, ...] = ()


def _verdict(watch: _Watch, memory: float, helpers: list[processes.Child], sandbox: layout.Sandbox, limits: Limits
             ) -> tuple[Status, str] | None:
    """The limit the processes crossed, or the helper (checker) that stopped, at this poll; None while all is well."""
    elapsed = time.perf_counter() - watch.started
    stopped_helper = next((p for p in helpers if p.poll() is not None), None)
    if stopped_helper is not None:
        return Status.GRADER_ERROR, _checker_failure(sandbox, stopped_helper)
    if memory > limits.memory_mb:
        return Status.MEMORY_LIMIT, f"used {memory:.0f} MiB of memory, over the limit of {limits.memory_mb} MiB"
    if watch.cpu > limits.cpu_seconds:
        return Status.CPU_LIMIT, f"used {watch.cpu:.0f} s of CPU, over the limit of {limits.cpu_seconds} s"
    if elapsed > limits.wall_seconds:
        return Status.TIMEOUT, f"ran {elapsed:.0f} s, over the limit of {limits.wall_seconds} s for a submission"
    if len(watch.tree) > limits.processes:
        return Status.SANDBOX_VIOLATION, f"ran {len(watch.tree)} processes at once, over the limit of {limits.processes}"
    if watch.polls % DISK_POLL_EVERY == 0 and layout.disk_usage(sandbox.kernel) > limits.output_bytes:
        return Status.OUTPUT_LIMIT, f"wrote more than {limits.output_mb} MiB of files"
    return None


def _watch(
    children: list[processes.Child], sandbox: layout.Sandbox, limits: Limits, later: Callable[[], None] | None = None
) -> tuple[tuple[Status, str] | None, _Watch]:
    """Poll until the first of ``children`` ends, another one (the checker serves until killed) ends, or a limit
    is crossed; returns the verdict and what was seen. ``later`` is called once, ``LATER_SECONDS`` in."""
    roots = [psutil.Process(child.pid) for child in children]
    watch = _Watch(time.perf_counter())
    while children[0].poll() is None:
        if later is not None and time.perf_counter() - watch.started > LATER_SECONDS:
            later()
            later = None
        found = None if watch.kernel else forked_kernel(sandbox)
        watch.kernel = watch.kernel or found
        if found is not None or watch.polls % TREE_POLL_EVERY == 0:
            watch.tree = tuple(proc for root in [*roots, *filter(None, [watch.kernel])] for proc in processes.tree(root))
        memory, tree_cpu = processes.usage(list(watch.tree))
        watch.peak_memory, watch.cpu = max(watch.peak_memory, memory), max(watch.cpu, tree_cpu)
        watch.polls += 1
        verdict = _verdict(watch, memory, children[1:], sandbox, limits)
        if verdict:
            return verdict, watch
        time.sleep(POLL_SECONDS)
    return None, watch


def _once(action: Callable[[], None] | None) -> Callable[[], None] | None:
    """``action``, to be called at most once however often it is asked (None stays None)."""
    if action is None:
        return None
    done: list[bool] = []

    def call() -> None:
        if not done:
            done.append(True)
            action()

    return call


def _prepare(
    course_root: Path, template_db: Path, assignment: str, student: str, submitted: Path, work: Path, limits: Limits,
    warm: WarmStarts | None,
) -> tuple[Spare, Path]:
    """The spare the submission runs in (the batch's, or one made now in ``work``) and its scratch course there."""
    spare = warm.take() if warm is not None else None
    if spare is not None:
        course = _scratch(template_db, course_root, assignment, student, submitted, spare.work)
        if spare.send(course, assignment, student, limits):
            return spare, course
        spare.discard()
    course = _scratch(template_db, course_root, assignment, student, submitted, work)
    spare = warm.make(work) if warm is not None else start_spare(work, course_root, blank_points(course_root, assignment), limits)
    spare.send(course, assignment, student, limits)  # a spare that died already ends without a result: a grader error
    return spare, course


def execute_submission(
    course_root: Path, template_db: Path, assignment: str, student: str, submitted: Path, work: Path, limits: Limits,
    warm: WarmStarts | None = None,
) -> Execution:
    """Run ``nbgrader autograde`` for one submission, sandboxed, in a scratch course, watched.

    Args:
        course_root: the real course (only its configuration and released notebook are read).
        template_db: a gradebook from ``prepare_template``.
        submitted: the folder with the student's files for this assignment.
        work: an empty folder for this submission's scratch course and sandbox; the caller removes it.
        limits: the limits to enforce.
        warm: the batch's spares and fork servers: the submission runs in a spare if one is ready
            (``Execution.folder`` is then where), and starts the spare of a later submission.

    Returns:
        An ``Execution`` whose notebook's test cells carry the trusted checker's results.
    """
    spare, course = _prepare(course_root, template_db, assignment, student, submitted, work, limits, warm)
    ready_the_next = _once(warm.refill if warm is not None else None)
    started = time.perf_counter()
    checker, verdict, watch, kernel_ending = None, None, _Watch(started), None
    try:
        # The kernel boots (or has booted) while the checker imports torch and the checks; its first check waits
        # for the checker's socket (see kernel_boot's ``check``).
        checker = _start_checker(spare.sandbox, limits, warm.checkers if warm is not None else None)
        verdict, watch = _watch([spare.grader, checker], spare.sandbox, limits, later=ready_the_next)
        failure = _checker_failure(spare.sandbox, checker)
        verdict = verdict or ((Status.GRADER_ERROR, failure) if failure else None)
        kernel_ending = layout.kernel_ending(spare.sandbox)  # read before the kernel, if it runs still, is killed below
    finally:
        spare.stop(checker)
        if ready_the_next is not None:
            ready_the_next()  # a submission shorter than LATER_SECONDS readies the next one now
    usage = Usage(time.perf_counter() - started, watch.cpu, watch.peak_memory)
    execution = outcome(Ending(verdict, spare.grader.returncode, kernel_ending), course, assignment, student, spare.sandbox,
                        limits, usage)
    return replace(execution, folder=spare.work) if spare.work != work else execution
