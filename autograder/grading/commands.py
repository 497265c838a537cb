"""What each grading command of ``autograder`` does, as functions with keyword-only arguments.

``autograder.cli`` parses the options and calls one of these; they return plain data and print nothing. Progress
reaches the caller through a ``Listener`` (``pipeline.Listener``'s events, plus ("graded", ``BatchResult``) when a
batch is graded, before its class report is written, and ("demo", ``DemoCourse``) when the demo course is ready).

- ``provision_offline``: the MNIST sample from a local copy, never downloaded, before a batch starts;
- ``grade_assignment``: ``autograder grade`` (grade, then write the class report);
- ``write_report``, ``write_exports``, ``write_feedback``: ``autograder report``, ``export``, ``feedback``;
- ``run_demo``: ``autograder demo``, the whole instructor cycle on demo submissions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from autograder.grading.results import BatchResult, load_results

if TYPE_CHECKING:
    from autograder.grading.class_report import ClassReport
    from autograder.grading.worker import Limits

Listener = Callable[[str, Any], None]

GRADES_FILE = "grades.csv"
DEMO_CELL_TIMEOUT = 60
"""Seconds per cell in the demo: the slowest honest cell (simple_net) takes about 10 s with two kernels
running, and the demo's endless loop should not hold a worker for long."""


def _quiet(kind: str, payload: Any) -> None:
    """A listener that ignores every event."""


def provision_offline(*, data: Path | None, assignments: Sequence[str]) -> None:
    """Provision the MNIST sample from a local copy only (``data``, when given), never downloading it.

    Raises:
        DataError: ``data`` cannot be provisioned, or one of ``assignments`` needs the sample and it is not
            provisioned.
    """
    from autograder.checks.data import require_sample
    from autograder.data import provision_mnist_sample

    if data is not None:
        provision_mnist_sample(data)
    for name in assignments:
        require_sample(name)


def grade_limits(*, cell_timeout: int | None = None, cpu_limit: int | None = None, memory_limit: int | None = None,
                 output_limit: int | None = None) -> Limits:
    """The default ``Limits`` with the limits given (seconds per cell, CPU seconds, MiB of memory, MiB of output)."""
    from autograder.grading.worker import Limits

    changes = {"cell_timeout": cell_timeout, "cpu_seconds": cpu_limit, "memory_mb": memory_limit, "output_mb": output_limit}
    return replace(Limits(), **{key: value for key, value in changes.items() if value is not None})


@dataclass(frozen=True)
class GradeOutcome:
    """A graded batch and the class report written from it."""

    batch: BatchResult
    report: ClassReport


def grade_assignment(
    *, course_root: Path, assignment: str, source: Path | None = None, jobs: int | None = None, force: bool = False,
    students: Sequence[str] = (), limits: Limits | None = None, executor: str = "local", scheduler: str | None = None,
    wait: bool = True, unsafe_no_sandbox: bool = False, listener: Listener | None = None,
) -> GradeOutcome:
    """Grade ``assignment`` (``pipeline.grade`` with these options), then write its class report.

    Raises:
        GradingError, CourseError, CourseLocked: as ``pipeline.grade``.
    """
    from autograder.grading.class_report import matplotlib_in_the_course, write_class_report
    from autograder.grading.pipeline import GradeOptions, grade

    matplotlib_in_the_course(course_root)  # the kernels' font cache and the report's are then built once per course
    notify = listener or _quiet
    options = GradeOptions(force=force, limits=limits or grade_limits(), executor=executor, scheduler=scheduler,
                           students=tuple(students), wait_for_lock=wait, unsafe_no_sandbox=unsafe_no_sandbox)
    if jobs:
        options.jobs = jobs
    batch = grade(course_root, assignment, source, options, notify)
    notify("graded", batch)
    return GradeOutcome(batch, write_class_report(batch, course_root))


def write_report(*, course_root: Path, assignment: str) -> ClassReport | None:
    """Write the class report of ``assignment`` (``reports/<assignment>/``) from its saved results.

    Returns:
        The report, or None (nothing written) when the assignment has no graded submissions.
    """
    from autograder.grading.class_report import write_class_report

    batch = load_results(course_root, assignment)
    return write_class_report(batch, course_root) if batch.submissions else None


@dataclass(frozen=True)
class Exports:
    """What ``write_exports`` wrote: the grades CSV, and how many submissions it holds."""

    grades_csv: Path
    submissions: int


def write_exports(*, course_root: Path, assignment: str) -> Exports:
    """Write ``exports/<assignment>/grades.csv`` from the saved results (a header alone when there are none)."""
    from autograder.grading.exports import write_grades_csv

    batch = load_results(course_root, assignment)
    path = write_grades_csv(batch, Path(course_root) / "exports" / assignment / GRADES_FILE)
    return Exports(path, len(batch.submissions))


def write_feedback(*, course_root: Path, assignment: str, device: str | None = None) -> list[Path]:
    """Write one feedback page per student of ``assignment`` under ``feedback/``; returns the pages.

    The reference's training curves (trained on ``device``) are drawn beside the students' only when a report
    carries curves.
    """
    from autograder.grading.feedback import cell_curves, reference_training_curves, write_feedback_pages

    batch = load_results(course_root, assignment)
    trains = any(cell_curves(cell) for result in batch.submissions for cell in result.cells)
    curves = reference_training_curves(device) if trains else None
    return write_feedback_pages(batch, Path(course_root) / "feedback", curves)


@dataclass(frozen=True)
class DemoCourse:
    """The demo course made for ``autograder demo``.

    Attributes:
        root: its folder.
        students: student -> what that student's submission shows.
        no_sandbox: why no namespace sandbox can be made here (the demo then grades its own submissions
            without one), or None.
    """

    root: Path
    students: dict[str, str]
    no_sandbox: str | None


@dataclass(frozen=True)
class DemoOutcome:
    """Everything the demo wrote: the graded batch, the grades CSV, the feedback pages and the class report."""

    course: DemoCourse
    batch: BatchResult
    grades_csv: Path
    pages: list[Path]
    report: ClassReport


def run_demo(*, course_root: Path, assignment: str, into: Path | None = None, jobs: int | None = None,
             listener: Listener | None = None) -> DemoOutcome:
    """Build a demo course (default ``.cache/demo-course`` of the course) and run the instructor's whole cycle on
    its demo submissions: grade (every one again), export, feedback pages, class report.

    The listener hears ("demo", ``DemoCourse``) before grading starts, then the grading events.

    Raises:
        ValueError: ``into`` is a non-empty folder that is not a demo course.
        CourseError: the course has no such assignment.
    """
    from autograder.grading.demo import run_demo_course
    from autograder.grading.pipeline import no_sandbox_reason

    notify = listener or _quiet
    root = into or Path(course_root) / ".cache" / "demo-course"
    described = run_demo_course(course_root, assignment, root)
    course = DemoCourse(root, described, no_sandbox_reason())
    notify("demo", course)
    graded = grade_assignment(course_root=root, assignment=assignment, source=root / "incoming", jobs=jobs, force=True,
                              limits=grade_limits(cell_timeout=DEMO_CELL_TIMEOUT), unsafe_no_sandbox=course.no_sandbox is not None,
                              listener=notify)
    exports = write_exports(course_root=root, assignment=assignment)
    pages = write_feedback(course_root=root, assignment=assignment)
    return DemoOutcome(course, graded.batch, exports.grades_csv, pages, graded.report)
