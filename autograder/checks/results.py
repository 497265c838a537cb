"""Check results as plain data; how they are shown lives in ``report.py``."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    blank: str
    points: float
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""
    artifacts: dict = field(default_factory=dict)

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
    def score(self) -> float:
        """Points earned: ``points`` times the fraction of checks passed, rounded to 2 decimals; 0 if a gate failed."""
        if self.error or not self.results or self.failed_gates:
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
        }

    @classmethod
    def from_json(cls, data: dict) -> "BlankReport":
        results = [
            CheckResult(r["name"], bool(r["passed"]), r.get("message", ""), bool(r.get("gate", False)))
            for r in data.get("results", [])
        ]
        return cls(data["blank"], float(data["points"]), results, data.get("error", ""), data.get("artifacts", {}))
