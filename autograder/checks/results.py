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
    """

    name: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class BlankReport:
    """Every check of one blank, and the points they earn.

    Attributes:
        blank: the blank's name, as in the notebook and the reference (e.g. ``"mnist_loss"``).
        points: the blank's maximum points.
        results: one entry per check, in the order they ran.
        error: set when the checks themselves could not run (the blank then scores 0).
    """

    blank: str
    points: float
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def score(self) -> float:
        """Points earned: ``points`` times the fraction of checks passed, rounded to 2 decimals."""
        if self.error or not self.results:
            return 0.0
        return round(self.points * self.passed / self.total, 2)
