"""``grade``: the grading pipeline as an ordered list of small steps.

1. preflight: the assignment exists, the output folders are writable, there is disk space;
2. collect: find the submissions (nbgrader layout, a flat folder or a zip) and give each problem a status;
3. plan: grade what is new or changed since its last grade (a digest of each submission is kept with its
   result), skip the rest (unless ``force``), or grade only ``students``;
4. stage: copy the gradable notebooks to grade into ``submitted/<student>/<assignment>/``;
5. register: make sure the course gradebook knows the assignment;
6. execute: run each submission in its own scratch course and process, under limits, with the executor
   (``jobs`` at a time on this machine, or as tasks on a Dask cluster: ``executors``);
7. record: as results arrive, score each one into the one gradebook (a single writer: one run per course
   at a time holds ``course_lock`` from the plan to the last record) and save its result;
8. report: return every submission's result (the caller prints, exports and writes feedback).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from autograder.course import check_assignment, notebook, scratch_course
from autograder.grading import record as recording
from autograder.grading.cell_restore import restored_copy, tracked_cells, visible_source
from autograder.grading.course_lock import course_lock
from autograder.grading.executors import ExecutorError, make_executor
from autograder.grading.results import BatchResult, Status, SubmissionResult
from autograder.grading.submissions import Submission, collect, stage
from autograder.grading.worker import Execution, Limits, prepare_template
from autograder.nbgrader_api import NbgraderError, in_course, make_api

RESULTS_DIR = "grading"
MIN_FREE_BYTES = 200 * 2**20


class GradingError(RuntimeError):
    """The batch cannot start (bad assignment, unwritable or full output folder, unreadable input)."""


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
class Plan:
    """Which submissions a run grades, and why: never graded, changed since their last grade, or asked for.

    Attributes:
        new: students never graded (or whose last run was interrupted before their grade was recorded).
        changed: students whose submission changed since their last grade (a resubmission, a late file).
        unchanged: students whose last grade stands (skipped).
        forced: students graded again although unchanged (``--force`` or ``--student``).
        not_selected: students left out by ``--student``.
    """

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    not_selected: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line, e.g. "12 graded, 188 unchanged (skipped), 1 changed since its last grade (regraded)"."""
        changed = "changed since its last grade" if len(self.changed) == 1 else "changed since their last grade"
        parts = [f"{len(self.new)} graded", f"{len(self.unchanged)} unchanged (skipped)", f"{len(self.changed)} {changed} (regraded)"]
        if self.forced:
            parts.append(f"{len(self.forced)} unchanged but regraded on request")
        if self.not_selected:
            parts.append(f"{len(self.not_selected)} not selected (--student)")
        return ", ".join(parts)


def submission_digest(submission: Submission) -> str:
    """What a grade of ``submission`` depends on: its notebook's bytes and nbgrader's ``timestamp.txt`` beside
    it, or, when there is no notebook, why it cannot be graded. Equal digests mean an equal grade."""
    digest = hashlib.sha256()
    if submission.notebook is not None:
        notebook = Path(submission.notebook)
        digest.update(b"notebook\0" + notebook.read_bytes())
        timestamp = notebook.parent / "timestamp.txt"
        if timestamp.is_file():
            digest.update(b"\0timestamp\0" + timestamp.read_bytes())
    if submission.status is not None:
        digest.update(f"\0status\0{submission.status.value}\0{submission.reason}".encode())
    return digest.hexdigest()


def results_folder(course_root: Path, assignment: str) -> Path:
    """Where one JSON result per student is kept: ``grading/<assignment>/``."""
    return course_root / RESULTS_DIR / assignment


def _check_free_space(folder: Path, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise GradingError(f"only {free // 2**20} MiB free on the disk of {what} {folder}; need at least {MIN_FREE_BYTES // 2**20} MiB")


def _check_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise GradingError(f"cannot write to {folder}: {error.strerror or error}") from error


def _check_writable_file(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as error:
        raise GradingError(f"cannot write to {path}: {error.strerror or error}") from error


def preflight(course_root: Path, assignment: str) -> None:
    """Refuse to start when the assignment is unknown, an output cannot be written, or the MNIST sample it needs is missing.

    Checked before anything is graded or staged: free space on the course's disk and on the disk of the
    scratch folders (``tempfile.gettempdir()``), and write access to the course, ``grading/<assignment>/``,
    the scratch folder, and, where they exist, ``submitted/``, ``autograded/`` and ``gradebook.db``.
    """
    check_assignment(course_root, assignment)
    scratch = Path(tempfile.gettempdir())
    _check_free_space(course_root, "the course")
    _check_free_space(scratch, "the scratch folder")
    for folder in (course_root, results_folder(course_root, assignment), scratch):
        _check_writable_folder(folder)
    for name in ("submitted", "autograded"):
        if (course_root / name).is_dir():
            _check_writable_folder(course_root / name)
    if (course_root / "gradebook.db").exists():
        _check_writable_file(course_root / "gradebook.db")
    _require_sample(assignment)


def _require_sample(assignment: str) -> None:
    """Refuse (never download) when the assignment's checks need the MNIST sample and it is not provisioned."""
    from autograder.checks.data import require_sample
    from autograder.data import DataError

    try:
        require_sample(assignment)
    except DataError as error:
        raise GradingError(str(error)) from error


NO_SANDBOX = ("no namespace sandbox can be made for the notebooks' kernels: {reason}. Without one, a notebook's native code "
              "(torch.from_file, numpy.fromfile, mmap) can read the reference solution and the gradebook and write into the course. "
              "Fix that, or grade a cohort you trust with --unsafe-no-sandbox")


def sandbox_support(options: GradeOptions) -> Limits:
    """The batch's limits: every kernel in a namespace sandbox, or none with ``options.unsafe_no_sandbox``.

    Raises:
        GradingError: no sandbox can be made here (the reason says why) and ``options.unsafe_no_sandbox`` is False.
    """
    from dataclasses import replace

    if options.unsafe_no_sandbox:
        return replace(options.limits, isolate=False)
    if options.executor == "local":  # each Dask worker builds its own sandboxes; one that cannot is a grader_error
        reason = no_sandbox_reason()
        if reason is not None:
            raise GradingError(NO_SANDBOX.format(reason=reason))
    return replace(options.limits, isolate=True)


def no_sandbox_reason() -> str | None:
    """Why no namespace sandbox can be made for a kernel here, or None when one can."""
    from autograder.grading.sandbox import namespaces

    support = namespaces.probe(read_only=namespaces.python_paths())
    return None if support.available else support.reason


def register_assignment(course_root: Path, assignment: str, work: Path) -> None:
    """Make the course's gradebook know ``assignment`` (its notebooks and grade cells), touching nothing else.

    ``nbgrader generate_assignment --force`` would also delete and rewrite ``release/<assignment>/``; a grader
    killed then would leave the course without its release. So it runs in a scratch copy of the course (in
    ``work``), but with its database set to the course's own ``gradebook.db``: the assignment, notebooks and
    cells are written in place, in SQLite transactions, and no write made meanwhile by another program (the
    formgrader, which keeps its connection open) is lost, as it would be by replacing the file. ``--force``
    only touches the scratch release; in the database, nbgrader creates or updates the assignment and cells
    and never deletes a notebook that has submissions (it refuses to change their cells instead).
    """
    from nbgrader.api import Gradebook, MissingEntry

    database = course_root / "gradebook.db"
    if database.exists():
        with in_course(course_root), Gradebook(f"sqlite:///{database}") as gradebook:
            try:
                if gradebook.find_assignment(assignment).notebooks:
                    return
            except MissingEntry:
                pass
    scratch = scratch_course(course_root, work / "register-course")
    in_place = {"CourseDirectory": {"db_url": f"sqlite:///{database.resolve()}"}}
    try:
        with in_course(scratch):
            result = make_api(scratch, in_place).generate_assignment(assignment, force=True, create=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not result.get("success"):
        raise NbgraderError(f"generate_assignment {assignment} failed: {result.get('error') or ''}\n{result.get('log') or ''}".strip())


def load_results(course_root: Path, assignment: str) -> BatchResult:
    """Every saved result of ``assignment``, in student order."""
    folder = results_folder(course_root, assignment)
    results = [SubmissionResult.load(path) for path in sorted(folder.glob("*.json"))] if folder.exists() else []
    return BatchResult(assignment, results)


def _result_path(course_root: Path, assignment: str, student: str) -> Path:
    return results_folder(course_root, assignment) / f"{student}.json"


def _already_graded(course_root: Path, assignment: str, student: str) -> SubmissionResult | None:
    path = _result_path(course_root, assignment, student)
    if not path.exists():
        return None
    try:
        result = SubmissionResult.load(path)
    except (ValueError, KeyError, json.JSONDecodeError):
        return None
    if result.status.gradable and not recording.is_recorded(course_root, assignment, student):
        return None
    return result


def test_cell_changes(submitted: Path, release: Path) -> str:
    """A sentence naming the test cells deleted, edited, renamed or re-labelled in ``submitted``; empty when none.

    Grading restores every cell's metadata from the release (``cell_restore``) and nbgrader restores the source
    of locked cells; the status makes each change visible to the instructor.
    """
    try:
        theirs = nbformat.read(submitted, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable notebooks were caught by collect
        return ""
    expected = tracked_cells(nbformat.read(release, as_version=4))
    restored, problems = restored_copy(theirs, expected)
    by_id = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell for cell in restored.cells}
    for wanted in expected:
        mine = by_id.get(wanted.grade_id)
        if wanted.grade and wanted.locked and mine is not None and visible_source(mine.source) != wanted.source:
            problems.append(f"{wanted.grade_id} edited (the original was restored for grading)")
    return "test cells changed: " + "; ".join(problems) if problems else ""


def _record(
    course_root: Path, assignment: str, submission: Submission, execution: Execution, release_notebook: Path
) -> SubmissionResult:
    submitted = course_root / "submitted" / submission.student / assignment
    status, reason = execution.status, execution.reason
    try:
        if execution.notebook is not None:
            recording.record_executed(course_root, assignment, submission.student, execution.notebook, submitted)
        else:
            recording.record_zero(course_root, assignment, submission.student)
        cells = recording.cell_results(course_root, assignment, submission.student, execution.notebook)
    except Exception as error:  # noqa: BLE001 - one submission's failure must not stop the batch
        status, reason, cells = Status.GRADER_ERROR, f"recording failed: {error}"[:300], []
    tampering = test_cell_changes(submitted / release_notebook.name, release_notebook)
    if tampering and status == Status.GRADED:
        status, reason = Status.TESTS_MODIFIED, tampering
    return SubmissionResult(submission.student, assignment, status, reason, cells, round(execution.seconds, 2))


def _record_ungradable(course_root: Path, assignment: str, submission: Submission) -> SubmissionResult:
    try:
        recording.record_zero(course_root, assignment, submission.student)
        cells = recording.cell_results(course_root, assignment, submission.student, None)
    except Exception:  # noqa: BLE001 - the status already says what is wrong
        cells = []
    return SubmissionResult(submission.student, assignment, submission.status, submission.reason, cells)


def plan_batch(
    course_root: Path, assignment: str, submissions: list[Submission], digests: dict[str, str], options: GradeOptions
) -> tuple[list[Submission], Plan, dict[str, SubmissionResult]]:
    """Decide which submissions to grade: those never graded, those whose digest changed since their last
    grade, and those asked for (``options.force``, ``options.students``); the others keep their result.

    Returns:
        The submissions to grade, the ``Plan`` in words, and the results that stand, by student.

    Raises:
        GradingError: ``options.students`` names a student with no submission.
    """
    found = {submission.student for submission in submissions}
    unknown = sorted(set(options.students) - found)
    if unknown:
        raise GradingError(f"no submission of {', '.join(unknown)} among the {len(found)} found; check the student id(s)")
    plan, todo, standing = Plan(), [], {}
    for submission in submissions:
        student = submission.student
        earlier = _already_graded(course_root, assignment, student)
        if options.students and student not in options.students:
            plan.not_selected.append(student)
            if earlier is not None:
                standing[student] = earlier
            continue
        if earlier is None:
            plan.new.append(student)
        elif earlier.digest != digests[student]:
            plan.changed.append(student)
        elif options.force or options.students:
            plan.forced.append(student)
        else:
            plan.unchanged.append(student)
            standing[student] = earlier
            continue
        todo.append(submission)
    return todo, plan, standing


def _first_of_each_student(submissions: list[Submission]) -> list[Submission]:
    seen: set[str] = set()
    first = []
    for submission in submissions:
        if submission.student not in seen:
            seen.add(submission.student)
            first.append(submission)
    return first


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
    expected = notebook(course_root, "source", assignment).name
    release_nb = notebook(course_root, "release", assignment)
    source = source or course_root / "submitted"
    # one writer per course, from the plan (which sees what a run that held the lock before recorded) to the last record
    locked = course_lock(course_root, options.wait_for_lock, lambda message: notify("waiting", message))
    with locked, tempfile.TemporaryDirectory(prefix="autograder-grade-") as tmp:
        work = Path(tmp)
        try:
            submissions = collect(source, assignment, expected, work / "input", release_nb)
        except Exception as error:  # noqa: BLE001 - any unreadable input stops the batch before it starts
            raise GradingError(f"cannot read the submissions in {source}: {error}") from error
        duplicates = {s.student: s.reason for s in submissions if s.notebook is None and "duplicate student id" in s.reason}
        submissions = _first_of_each_student(submissions)
        digests = {submission.student: submission_digest(submission) for submission in submissions}
        todo, plan, results = plan_batch(course_root, assignment, submissions, digests, options)
        notify("plan", plan)
        stage(todo, course_root, assignment, expected)  # stage leaves out what cannot be graded
        register_assignment(course_root, assignment, work)
        notify("start", len(todo))
        template = prepare_template(course_root, assignment, work / "template")

        def finish(result: SubmissionResult) -> None:
            if result.student in duplicates:
                result.reason = "; ".join(filter(None, [result.reason, duplicates[result.student]]))
            result.digest = digests[result.student]
            result.save(_result_path(course_root, assignment, result.student))
            results[result.student] = result
            notify("done", result)

        runnable = []
        for submission in todo:
            if submission.status is not None and not submission.status.gradable:
                finish(_record_ungradable(course_root, assignment, submission))
            else:
                runnable.append(submission)
        try:
            for submission, execution in executor.execute(course_root, template, assignment, runnable, work / "run", limits):
                finish(_record(course_root, assignment, submission, execution, release_nb))
        except ExecutorError as error:
            raise GradingError(str(error)) from error
    return BatchResult(assignment, [results[student] for student in sorted(results)])
