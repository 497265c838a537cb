"""``grade``: the grading pipeline as an ordered list of small steps.

1. preflight: the assignment exists, the output folders are writable, there is disk space;
2. collect: find the submissions (nbgrader layout, a flat folder or a zip) and give each problem a status;
3. stage: copy gradable notebooks into ``submitted/<student>/<assignment>/``;
4. register: make sure the course gradebook knows the assignment (updated in a scratch copy, swapped in atomically);
5. plan: skip submissions already graded (unless ``force``);
6. execute: run each submission in its own scratch course and process, under limits, with the executor
   (``jobs`` at a time on this machine, or as tasks on a Dask cluster: ``executors``);
7. record: as results arrive, score each one into the one gradebook (a single writer) and save its result;
8. report: return every submission's result (the caller prints, exports and writes feedback).
"""

from __future__ import annotations

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
from autograder.grading.executors import ExecutorError, make_executor
from autograder.grading.results import BatchResult, Status, SubmissionResult
from autograder.grading.submissions import Submission, collect, stage
from autograder.grading.worker import Execution, Limits, prepare_template
from autograder.nbgrader_api import generate_assignment, in_course

RESULTS_DIR = "grading"
MIN_FREE_BYTES = 200 * 2**20
REGISTER_SUFFIX = ".registering"
"""The gradebook updated in a scratch course is copied next to the course's under this suffix, then renamed."""


class GradingError(RuntimeError):
    """The batch cannot start (bad assignment, unwritable or full output folder, unreadable input)."""


@dataclass
class GradeOptions:
    """How to grade a batch.

    Attributes:
        jobs: submissions executed at once by the local executor (default: the number of cores).
        force: grade again submissions that already have a result.
        limits: per-submission limits.
        executor: ``"local"`` (threads on this machine), ``"dask"`` (a Dask cluster at ``scheduler``), a
            ``distributed.Client`` or a Dask cluster object (``LocalCluster``, ``KubeCluster``, a Dask Gateway
            cluster), or an executor object (``autograder.grading.executors``).
        scheduler: the Dask scheduler address for ``executor="dask"`` (default: ``$DASK_SCHEDULER_ADDRESS``).
    """

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    force: bool = False
    limits: Limits = field(default_factory=Limits)
    executor: Any = "local"
    scheduler: str | None = None


Listener = Callable[[str, SubmissionResult | int], None]
"""Called with ("start", number to grade) once, then ("done", result) for each submission."""


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
    """Refuse to start when the assignment is unknown or an output cannot be written.

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


def register_assignment(course_root: Path, assignment: str, work: Path) -> None:
    """Make the course's gradebook know ``assignment`` (its notebooks and grade cells), touching nothing else.

    ``nbgrader generate_assignment --force`` would also delete and rewrite ``release/<assignment>/``; a grader
    killed then would leave the course without its release. So it runs in a scratch copy of the course (in
    ``work``) that holds a copy of the gradebook, and the updated gradebook replaces the course's in one
    atomic rename.
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
    if database.exists():
        shutil.copy2(database, scratch / "gradebook.db")
    generate_assignment(scratch, assignment)
    staged = course_root / (database.name + REGISTER_SUFFIX)
    shutil.copy2(scratch / "gradebook.db", staged)
    os.replace(staged, database)
    shutil.rmtree(scratch, ignore_errors=True)


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
    """A sentence naming test cells deleted, edited, or re-labelled in ``submitted``; empty when none.

    nbgrader restores edited locked cells from the gradebook and scores deleted ones 0; the status makes
    both visible to the instructor.
    """
    try:
        theirs = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nbformat.read(submitted, as_version=4).cells}
    except Exception:  # noqa: BLE001 - unreadable notebooks were caught by collect
        return ""
    problems = []
    for cell in nbformat.read(release, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        grade_id = meta["grade_id"]
        mine = theirs.get(grade_id)
        if mine is None:
            problems.append(f"{grade_id} deleted (scores 0)")
        elif mine.source != cell.source or mine.metadata.get("nbgrader", {}).get("points") != meta.get("points"):
            problems.append(f"{grade_id} edited (the original was restored for grading)")
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
    """
    options = options or GradeOptions()
    notify = listener or (lambda kind, payload: None)
    preflight(course_root, assignment)
    try:
        executor = make_executor(options.executor, options.jobs, options.scheduler)
    except ExecutorError as error:
        raise GradingError(str(error)) from error
    expected = notebook(course_root, "source", assignment).name
    release_nb = notebook(course_root, "release", assignment)
    source = source or course_root / "submitted"
    with tempfile.TemporaryDirectory(prefix="autograder-grade-") as tmp:
        work = Path(tmp)
        try:
            submissions = collect(source, assignment, expected, work / "input", release_nb)
        except Exception as error:  # noqa: BLE001 - any unreadable input stops the batch before it starts
            raise GradingError(f"cannot read the submissions in {source}: {error}") from error
        stage([s for s in submissions if s.status is None or s.status.gradable], course_root, assignment, expected)
        register_assignment(course_root, assignment, work)
        results: dict[str, SubmissionResult] = {}
        duplicates = {s.student: s.reason for s in submissions if s.notebook is None and "duplicate student id" in s.reason}
        submissions = _first_of_each_student(submissions)
        todo = []
        for submission in submissions:
            earlier = None if options.force else _already_graded(course_root, assignment, submission.student)
            if earlier is not None:
                results[submission.student] = earlier
            else:
                todo.append(submission)
        notify("start", len(todo))
        template = prepare_template(course_root, assignment, work / "template")

        def finish(result: SubmissionResult) -> None:
            if result.student in duplicates:
                result.reason = "; ".join(filter(None, [result.reason, duplicates[result.student]]))
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
            for submission, execution in executor.execute(course_root, template, assignment, runnable, work / "run", options.limits):
                finish(_record(course_root, assignment, submission, execution, release_nb))
        except ExecutorError as error:
            raise GradingError(str(error)) from error
    return BatchResult(assignment, [results[student] for student in sorted(results)])
