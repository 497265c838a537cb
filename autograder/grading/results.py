"""Grading results as plain data, and where they are kept: ``grading/<assignment>/<student>.json`` of the course.

The terminal summary, CSV, Gradescope JSON and HTML live elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.checks.results import BlankReport

RESULTS_DIR = "grading"


class Status(str, Enum):
    """What happened to one submission. ``ungradable`` statuses make ``autograder grade`` exit non-zero."""

    GRADED = "graded"
    TIMEOUT = "timeout"                    # a cell ran past the per-cell timeout; it scores 0, the rest is graded
    CPU_LIMIT = "cpu_limit"                # the kernel used more CPU seconds than allowed
    MEMORY_LIMIT = "memory_limit"          # the kernel used more memory than allowed
    KERNEL_DIED = "kernel_died"            # the kernel exited during execution (sys.exit, os._exit, a crash)
    TESTS_MODIFIED = "tests_modified"      # test cells were deleted or their grading metadata changed
    CORRUPT = "corrupt_notebook"           # the file is not a readable notebook
    MISSING = "missing_notebook"           # no notebook for this assignment in the submission
    WRONG_ASSIGNMENT = "wrong_assignment"  # the notebook belongs to another assignment
    EMPTY = "empty_submission"             # the submission folder holds nothing to grade
    GRADER_ERROR = "grader_error"          # the grader itself failed on this submission
    SANDBOX_VIOLATION = "sandbox_violation"  # the notebook tried something the sandbox refuses (graded on what it did)
    OUTPUT_LIMIT = "output_limit"          # the notebook printed or wrote more than allowed

    @property
    def gradable(self) -> bool:
        """Whether a score was produced from executing the notebook (possibly with cells at 0)."""
        return self in GRADABLE


GRADABLE = {
    Status.GRADED, Status.TIMEOUT, Status.CPU_LIMIT, Status.MEMORY_LIMIT, Status.KERNEL_DIED, Status.TESTS_MODIFIED,
    Status.SANDBOX_VIOLATION, Status.OUTPUT_LIMIT,
}


@dataclass
class CellResult:
    """One autograded test cell (one blank) of one submission.

    Attributes:
        blank: the blank's name (the test cell's ``grade_id`` without ``test_``).
        score, max_score: points from the gradebook.
        output: what the cell printed (the check lines), then its error as ``"<ename>: <evalue>"`` when it raised.
        report: the hidden checks' full report (``BlankReport.to_json()``), when the checks ran.
    """

    blank: str
    score: float
    max_score: float
    output: str = ""
    report: dict | None = None

    def blank_report(self) -> BlankReport | None:
        """The hidden checks' report as the student should read it; None when the checks did not run.

        A cell that raised after its checks ran scores 0 and its report says why (``visible_test_error``).
        Hardened grading writes that into the report itself. Under plain ``nbgrader autograde`` the kernel's
        ``check`` printed the report before the visible assert raised, so the report does not know: when the
        cell scored 0 and its output goes on past the report's own lines (with the error line), that rest is
        the error.
        """
        from autograder.checks.report import format_report
        from autograder.checks.results import BlankReport, one_line

        if self.report is None:
            return None
        report = BlankReport.from_json(self.report)
        if report.visible_test_error or report.error or self.score > 0:
            return report
        printed = format_report(report)
        start = self.output.find(printed)
        rest = one_line(self.output[start + len(printed):]) if start >= 0 else ""
        return replace(report, visible_test_error=rest) if rest else report


@dataclass
class SubmissionResult:
    """The outcome for one student on one assignment.

    ``digest`` says what was graded: a digest of the submission's notebook and nbgrader timestamp (or of why it
    could not be graded), so that a later run regrades exactly the submissions that changed since.
    """

    student: str
    assignment: str
    status: Status
    reason: str = ""
    cells: list[CellResult] = field(default_factory=list)
    seconds: float = 0.0
    digest: str = ""

    @property
    def score(self) -> float:
        return round(sum(cell.score for cell in self.cells), 2)

    @property
    def max_score(self) -> float:
        return sum(cell.max_score for cell in self.cells)

    def to_json(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionResult":
        cells = [CellResult(**cell) for cell in data.get("cells", [])]
        return cls(data["student"], data["assignment"], Status(data["status"]), data.get("reason", ""), cells, data.get("seconds", 0.0),
                   data.get("digest", ""))

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "SubmissionResult":
        return cls.from_json(json.loads(path.read_text()))


@dataclass
class BatchResult:
    """Every submission of one grading run of one assignment."""

    assignment: str
    submissions: list[SubmissionResult]

    @property
    def all_gradable(self) -> bool:
        return all(result.status.gradable for result in self.submissions)

    def pass_rates(self) -> dict[str, float]:
        """Per blank, the fraction of gradable submissions with full points on it."""
        rates: dict[str, list[bool]] = {}
        for result in self.submissions:
            if result.status.gradable:
                for cell in result.cells:
                    rates.setdefault(cell.blank, []).append(cell.score >= cell.max_score)
        return {blank: sum(passed) / len(passed) for blank, passed in rates.items()}


def results_folder(course_root: Path, assignment: str) -> Path:
    """Where one JSON result per student is kept: ``grading/<assignment>/``."""
    return Path(course_root) / RESULTS_DIR / assignment


def result_path(course_root: Path, assignment: str, student: str) -> Path:
    """The saved result of one student: ``grading/<assignment>/<student>.json``."""
    return results_folder(course_root, assignment) / f"{student}.json"


def saved_result(course_root: Path, assignment: str, student: str) -> SubmissionResult | None:
    """The student's saved result, or None when there is none or it cannot be read."""
    path = result_path(course_root, assignment, student)
    if not path.exists():
        return None
    try:
        return SubmissionResult.load(path)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None


def load_results(course_root: Path, assignment: str) -> BatchResult:
    """Every saved result of ``assignment``, in student order."""
    folder = results_folder(course_root, assignment)
    results = [SubmissionResult.load(path) for path in sorted(folder.glob("*.json"))] if folder.exists() else []
    return BatchResult(assignment, results)
