"""``grade``: the grading pipeline as an ordered list of small steps.

1. preflight: the assignment exists, the output folders are writable, there is disk space, a sandbox can be
   made (``preflight``, ``sandbox_support``);
2. collect: find the submissions (nbgrader layout, a flat folder or a zip), give each problem a status, keep one
   submission per student and a digest of each (``collect``);
3. plan: grade what is new or changed since its last grade (a digest of each submission is kept with its
   result), skip the rest (unless ``force``), or grade only ``students`` (``plan``);
4. stage: copy the gradable notebooks to grade into ``submitted/<student>/<assignment>/`` (``submissions.stage``);
5. register: make sure the course gradebook knows the assignment (``record.register_assignment``);
6. execute: run each submission in its own scratch course and process, under limits, with the executor
   (``jobs`` at a time on this machine, or as tasks on a Dask cluster: ``executors``; ``execute``);
7. record: as results arrive, score each one into the one gradebook (a single writer: one run per course
   at a time holds ``course_lock`` from the plan to the last record) and save its result (``record``, ``save``);
8. report: return every submission's result (the caller prints, exports and writes feedback).

Each step takes and returns plain data; ``grade`` only calls them in order.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import nbformat

from autograder.course import notebook
from autograder.grading import processes
from autograder.grading import record as recording
from autograder.grading import submissions as inputs
from autograder.grading.cell_restore import changed_test_cells
from autograder.grading.course_lock import course_lock
from autograder.grading.executors import ExecutorError, make_executor
from autograder.grading.preflight import GradingError, NO_SANDBOX, no_sandbox_reason, preflight
from autograder.grading.record import register_assignment
from autograder.grading.results import BatchResult, Status, SubmissionResult, load_results, result_path, results_folder, saved_result
from autograder.grading.submissions import Submission, stage
from autograder.grading.worker import Execution, Limits, prepare_template

__all__ = [
    "Collected", "GradeOptions", "GradingError", "Listener", "Plan", "Target", "already_graded", "collect", "execute", "grade",
    "load_results", "no_sandbox_reason", "partition", "plan", "preflight", "record", "record_ungradable", "register_assignment",
    "results_folder", "sandbox_support", "save", "submission_digest",
]


@dataclass
class GradeOptions:
    """How to grade a batch.

    Attributes:
        jobs: submissions executed at once by the local executor (default: the number of cores).
        force: grade again every submission, changed or not.
        students: grade (or grade again, changed or not) only these students' submissions; the others keep
            their results. Empty: every student.
        limits: per-submission limits.
        executor: ``"local"`` (threads on this machine), ``"dask"`` (a Dask cluster at ``scheduler``), a
            ``distributed.Client`` or a Dask cluster object (``LocalCluster``, ``KubeCluster``, a Dask Gateway
            cluster), or an executor object (``autograder.grading.executors``).
        scheduler: the Dask scheduler address for ``executor="dask"`` (default: ``$DASK_SCHEDULER_ADDRESS``).
        wait_for_lock: when another `autograder grade` is writing to the course, wait for it to finish (the
            listener gets ("waiting", message) once); False: raise ``course_lock.CourseLocked`` at once.
        unsafe_no_sandbox: grade without the namespace sandbox, with the audit hook alone (a notebook's native
            code can then read and write what the kernel's user may). Without it, ``grade`` refuses to start where
            no sandbox can be made, and says why.
    """

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    force: bool = False
    students: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    executor: Any = "local"
    scheduler: str | None = None
    wait_for_lock: bool = True
    unsafe_no_sandbox: bool = False


Listener = Callable[[str, Any], None]
"""Called with ("waiting", message) once if another run holds the course's lock, ("plan", ``Plan``) and ("start",
number to grade) once, then ("done", result) for each submission."""


@dataclass(frozen=True)
class Target:
    """What a batch grades: the course, the assignment, and its notebooks as nbgrader names them.

    Attributes:
        notebook_name: the file name nbgrader expects a submission to have (``04_mnist_sgd.ipynb``).
        release_notebook: ``release/<assignment>/<notebook>``, what the students received.
    """

    course_root: Path
    assignment: str
    notebook_name: str
    release_notebook: Path

    @classmethod
    def of(cls, course_root: Path, assignment: str) -> "Target":
        """The target of ``assignment`` in the course at ``course_root``.

        Raises:
            CourseError: the course has no such assignment.
        """
        return cls(course_root, assignment, notebook(course_root, "source", assignment).name, notebook(course_root, "release", assignment))

    @functools.cached_property
    def test_cells(self) -> frozenset[str]:
        """The ``grade_id`` of each test cell of the release; a complete record has a grade for every one."""
        return frozenset(recording.release_test_cells(self.release_notebook))


def sandbox_support(options: GradeOptions) -> Limits:
    """The batch's limits: every kernel in a namespace sandbox, or none with ``options.unsafe_no_sandbox``.

    Raises:
        GradingError: no sandbox can be made here (the reason says why) and ``options.unsafe_no_sandbox`` is False.
    """
    if options.unsafe_no_sandbox:
        return replace(options.limits, isolate=False)
    if options.executor == "local":  # each Dask worker builds its own sandboxes; one that cannot is a grader_error
        reason = no_sandbox_reason()
        if reason is not None:
            raise GradingError(NO_SANDBOX.format(reason=reason))
    return replace(options.limits, isolate=True)


def submission_digest(submission: Submission) -> str:
    """What a grade of ``submission`` depends on: its notebook's bytes and nbgrader's ``timestamp.txt`` beside
    it, or, when there is no notebook, why it cannot be graded. Equal digests mean an equal grade."""
    digest = hashlib.sha256()
    if submission.notebook is not None:
        submitted = Path(submission.notebook)
        digest.update(b"notebook\0" + submitted.read_bytes())
        timestamp = submitted.parent / "timestamp.txt"
        if timestamp.is_file():
            digest.update(b"\0timestamp\0" + timestamp.read_bytes())
    if submission.status is not None:
        digest.update(f"\0status\0{submission.status.value}\0{submission.reason}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Collected:
    """The submissions found, one per student, in student order.

    Attributes:
        digests: student -> ``submission_digest`` of their submission.
        duplicates: student -> why a later submission naming the same student was left out.
    """

    submissions: list[Submission]
    digests: dict[str, str]
    duplicates: dict[str, str]


def collect(source: Path, target: Target, work: Path) -> Collected:
    """Find the submissions of ``target`` in ``source`` (a ``.zip`` is unpacked in ``work``); keep each student's first.

    Raises:
        GradingError: the input cannot be read at all.
    """
    try:
        found = inputs.collect(source, target.assignment, target.notebook_name, work, target.release_notebook)
    except Exception as error:  # noqa: BLE001 - any unreadable input stops the batch before it starts
        raise GradingError(f"cannot read the submissions in {source}: {error}") from error
    duplicates = {s.student: s.reason for s in found if s.notebook is None and "duplicate student id" in s.reason}
    first: dict[str, Submission] = {}
    for submission in found:
        first.setdefault(submission.student, submission)
    kept = list(first.values())
    return Collected(kept, {submission.student: submission_digest(submission) for submission in kept}, duplicates)


@dataclass(frozen=True)
class Plan:
    """Which submissions a run grades, and why: never graded, changed since their last grade, or asked for.

    Attributes:
        new: students never graded (or whose last run was interrupted before their grade was recorded).
        changed: students whose submission changed since their last grade (a resubmission, a late file).
        unchanged: students whose last grade stands (skipped).
        forced: students graded again although unchanged (``--force`` or ``--student``).
        not_selected: students left out by ``--student``.
        todo: the submissions to grade, in student order.
        standing: the saved results that stand, by student.
    """

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    not_selected: list[str] = field(default_factory=list)
    todo: list[Submission] = field(default_factory=list, repr=False)
    standing: dict[str, SubmissionResult] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """One line, e.g. "12 graded, 188 unchanged (skipped), 1 changed since its last grade (regraded)"."""
        changed = "changed since its last grade" if len(self.changed) == 1 else "changed since their last grade"
        parts = [f"{len(self.new)} graded", f"{len(self.unchanged)} unchanged (skipped)", f"{len(self.changed)} {changed} (regraded)"]
        if self.forced:
            parts.append(f"{len(self.forced)} unchanged but regraded on request")
        if self.not_selected:
            parts.append(f"{len(self.not_selected)} not selected (--student)")
        return ", ".join(parts)


def already_graded(target: Target, student: str) -> SubmissionResult | None:
    """The student's saved result, when it stands: it can be read and, for a gradable submission, the gradebook
    holds a complete record of it, with a grade for every test cell of the release.

    A result file is saved only once its record is complete, and removed before the student is recorded again
    (``record``): a run killed while recording leaves none.
    """
    result = saved_result(target.course_root, target.assignment, student)
    if result is None:
        return None
    if result.status.gradable and not recording.is_recorded(target.course_root, target.assignment, student, set(target.test_cells)):
        return None
    return result


def plan(target: Target, collected: Collected, options: GradeOptions) -> Plan:
    """Decide which submissions to grade: those never graded, those whose digest changed since their last
    grade, and those asked for (``options.force``, ``options.students``); the others keep their result.

    Raises:
        GradingError: ``options.students`` names a student with no submission.
    """
    found = {submission.student for submission in collected.submissions}
    unknown = sorted(set(options.students) - found)
    if unknown:
        raise GradingError(f"no submission of {', '.join(unknown)} among the {len(found)} found; check the student id(s)")
    decided = Plan()
    for submission in collected.submissions:
        student = submission.student
        earlier = already_graded(target, student)
        if options.students and student not in options.students:
            decided.not_selected.append(student)
            if earlier is not None:
                decided.standing[student] = earlier
            continue
        if earlier is None:
            decided.new.append(student)
        elif earlier.digest != collected.digests[student]:
            decided.changed.append(student)
        elif options.force or options.students:
            decided.forced.append(student)
        else:
            decided.unchanged.append(student)
            decided.standing[student] = earlier
            continue
        decided.todo.append(submission)
    return decided


def execute(executor: Any, target: Target, template: Path, runnable: list[Submission], work: Path,
            limits: Limits) -> Iterator[tuple[Submission, Execution]]:
    """Each submission of ``runnable`` with its execution, as they complete.

    Raises:
        GradingError: the executor was lost (a Dask cluster gone); what was recorded is kept.
    """
    try:
        yield from executor.execute(target.course_root, template, target.assignment, runnable, work, limits)
    except ExecutorError as error:
        raise GradingError(str(error)) from error


def test_cell_changes(submitted: Path, release: Path) -> str:
    """A sentence naming the test cells deleted, edited, renamed or re-labelled in ``submitted``; empty when none.

    Grading restores every cell's metadata from the release (``cell_restore``) and nbgrader restores the source
    of locked cells; the status makes each change visible to the instructor.
    """
    try:
        theirs = nbformat.read(submitted, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable notebooks were caught by collect
        return ""
    problems = changed_test_cells(theirs, nbformat.read(release, as_version=4))
    return "test cells changed: " + "; ".join(problems) if problems else ""


def record(target: Target, submission: Submission, execution: Execution) -> SubmissionResult:
    """Score one execution into the gradebook (0 for every cell when it left no notebook) and read its result.

    The student's earlier result file is removed first: a run killed before ``save`` leaves no result, so the
    next run grades the student again rather than trust a record cut short.
    """
    course_root, assignment, student = target.course_root, target.assignment, submission.student
    submitted = course_root / "submitted" / student / assignment
    status, reason = execution.status, execution.reason
    result_path(course_root, assignment, student).unlink(missing_ok=True)  # saved again once the record is complete
    try:
        if execution.notebook is not None:
            recording.record_executed(course_root, assignment, student, execution.notebook, submitted)
        else:
            recording.record_zero(course_root, assignment, student)
        cells = recording.cell_results(course_root, assignment, student, execution.notebook)
    except Exception as error:  # noqa: BLE001 - one submission's failure must not stop the batch
        status, reason, cells = Status.GRADER_ERROR, f"recording failed: {error}"[:300], []
    tampering = test_cell_changes(submitted / target.release_notebook.name, target.release_notebook)
    if tampering and status == Status.GRADED:
        status, reason = Status.TESTS_MODIFIED, tampering
    return SubmissionResult(student, assignment, status, reason, cells, round(execution.seconds, 2))


def record_ungradable(target: Target, submission: Submission) -> SubmissionResult:
    """Record 0 for every cell of a submission that cannot be executed; its status and reason say why."""
    result_path(target.course_root, target.assignment, submission.student).unlink(missing_ok=True)
    try:
        recording.record_zero(target.course_root, target.assignment, submission.student)
        cells = recording.cell_results(target.course_root, target.assignment, submission.student, None)
    except Exception:  # noqa: BLE001 - the status already says what is wrong
        cells = []
    return SubmissionResult(submission.student, target.assignment, submission.status, submission.reason, cells)


def save(target: Target, result: SubmissionResult, collected: Collected) -> SubmissionResult:
    """Save ``result`` with the digest of what was graded and, for a student found twice, why the other was left out."""
    if result.student in collected.duplicates:
        result.reason = "; ".join(filter(None, [result.reason, collected.duplicates[result.student]]))
    result.digest = collected.digests[result.student]
    result.save(result_path(target.course_root, target.assignment, result.student))
    return result


def partition(todo: list[Submission]) -> tuple[list[Submission], list[Submission]]:
    """The submissions of ``todo`` that cannot be executed (their status says why), and those to execute."""
    ungradable = [submission for submission in todo if submission.status is not None and not submission.status.gradable]
    return ungradable, [submission for submission in todo if submission not in ungradable]


def grade(
    course_root: Path, assignment: str, source: Path | None = None, options: GradeOptions | None = None, listener: Listener | None = None
) -> BatchResult:
    """Grade every submission of ``assignment`` found in ``source`` (default: the course's ``submitted/``).

    Returns:
        A ``BatchResult`` with one entry per submission found, graded now or earlier.

    Raises:
        GradingError: the batch cannot start (nothing was graded), or its Dask cluster was lost (what was
            recorded is kept; a rerun grades the rest).
        CourseLocked: another run is writing to the course and ``options.wait_for_lock`` is False.
    """
    options = options or GradeOptions()
    notify = listener or (lambda kind, payload: None)
    preflight(course_root, assignment)
    limits = sandbox_support(options)
    try:
        executor = make_executor(options.executor, options.jobs, options.scheduler)
    except ExecutorError as error:
        raise GradingError(str(error)) from error
    target = Target.of(course_root, assignment)
    # one writer per course, from the plan (which sees what a run that held the lock before recorded) to the last record
    locked = course_lock(course_root, options.wait_for_lock, lambda message: notify("waiting", message))
    processes.remove_abandoned_folders()  # what graders and Dask workers killed before could not remove
    with locked, processes.temporary_owned_folder(processes.GRADE_PREFIX) as work:
        collected = collect(source or course_root / "submitted", target, work / "input")
        decided = plan(target, collected, options)
        notify("plan", decided)
        stage(decided.todo, course_root, assignment, target.notebook_name)  # stage leaves out what cannot be graded
        register_assignment(course_root, assignment, work)
        notify("start", len(decided.todo))
        template = prepare_template(course_root, assignment, work / "template")
        ungradable, runnable = partition(decided.todo)
        executions = execute(executor, target, template, runnable, work / "run", limits)  # runs as it is iterated
        recorded = itertools.chain((record_ungradable(target, s) for s in ungradable), (record(target, s, e) for s, e in executions))
        results = dict(decided.standing)
        for result in recorded:
            results[result.student] = save(target, result, collected)
            notify("done", result)
    return BatchResult(assignment, [results[student] for student in sorted(results)])
