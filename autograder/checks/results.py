"""Check results as plain data; how they are shown lives in ``report.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

UNFINISHED_MARKERS = ("Timeout", "Interrupt", "DeadKernel", "UnresponsiveKernel")
"""Words in an error's name that mean the test cell did not finish (a timeout, an interrupted or dead kernel)."""

@dataclass(frozen=True)
class CheckResult:
    """One check of one blank.

    Attributes:
        name: what the check verifies, in words (the test function's docstring).
        passed: whether the student's objects passed it.
        message: empty when passed; otherwise the likely mistake, in one line.
        gate: whether the check repeats what the notebook's visible test asserts. A failed gate scores the
            whole blank 0, as the failing visible test would; the checker verifies it itself because the
            visible asserts run in the student's kernel, where they can be tampered with.
    """

    name: str
    passed: bool
    message: str = ""
    gate: bool = False


@dataclass(frozen=True)
class BlankReport:
    """Every check of one blank, and the points they earn.

    Attributes:
        blank: the blank's name, as in the notebook and the reference (e.g. ``"mnist_loss"``).
        points: the blank's maximum points.
        results: one entry per check, in the order they ran.
        error: set when the checks themselves could not run (the blank then scores 0).
        artifacts: JSON-ready data the checks recorded for feedback, e.g. ``{"curves": {...}}`` with the
            student's accuracy and loss per epoch from a training check.
        visible_test_error: set when the test cell raised after the checks ran: the error's one-line text, e.g.
            ``"AssertionError: expected 0.690399, got 1.500000 on the lesson's example"`` (a failed visible
            assert), or a timeout or interruption. The blank then scores 0, as nbgrader scores a cell that
            raised; the checks still say what is likely wrong.
    """

    blank: str
    points: float
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""
    artifacts: dict = field(default_factory=dict)
    visible_test_error: str = ""

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def failed_gates(self) -> list[CheckResult]:
        """The failed checks that repeat the visible test: any one of them scores the blank 0."""
        return [result for result in self.results if result.gate and not result.passed]

    @property
    def failed(self) -> list[CheckResult]:
        """The failed checks, those that repeat the visible test first, each group in the order they ran."""
        return self.failed_gates + [result for result in self.results if not result.gate and not result.passed]

    @property
    def cell_unfinished(self) -> bool:
        """Whether ``visible_test_error`` says the cell did not finish (a timeout or an interruption), not that it failed."""
        name = self.visible_test_error.split(":", 1)[0]
        return any(marker in name for marker in UNFINISHED_MARKERS)

    @property
    def score(self) -> float:
        """Points earned: ``points`` times the fraction of checks passed, rounded to 2 decimals; 0 if a gate failed,
        the cell raised (``visible_test_error``) or the checks could not run."""
        if self.error or self.visible_test_error or not self.results or self.failed_gates:
            return 0.0
        return round(self.points * self.passed / self.total, 2)

    def to_json(self) -> dict:
        """A JSON-ready form, as embedded in a graded notebook for exports and feedback."""
        return {
            "blank": self.blank,
            "points": self.points,
            "score": self.score,
            "error": self.error,
            "results": [{"name": r.name, "passed": r.passed, "message": r.message, "gate": r.gate} for r in self.results],
            "artifacts": self.artifacts,
            "visible_test_error": self.visible_test_error,
        }

    @classmethod
    def from_json(cls, data: dict) -> "BlankReport":
        """The report ``to_json`` wrote; a report saved before a field existed gets that field's default."""
        results = [
            CheckResult(r["name"], bool(r["passed"]), r.get("message", ""), bool(r.get("gate", False)))
            for r in data.get("results", [])
        ]
        return cls(data["blank"], float(data["points"]), results, data.get("error", ""), data.get("artifacts", {}),
                   str(data.get("visible_test_error") or ""))


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters with "..."."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def with_visible_test_error(report: dict, error: str) -> dict:
    """``report`` (``BlankReport.to_json()``) for a test cell that raised ``error``: it scores 0 and says why.

    Args:
        error: the cell's error, e.g. ``"AssertionError: expected 2, got 3"``; kept on one line.
    """
    parsed = BlankReport.from_json(report)
    updated = BlankReport(parsed.blank, parsed.points, parsed.results, parsed.error, parsed.artifacts, one_line(error))
    return updated.to_json()
