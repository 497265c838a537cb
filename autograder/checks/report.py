"""Display of a ``BlankReport``: one short line per check, for a notebook cell's stdout."""

from __future__ import annotations

from autograder.checks.results import BlankReport

PASS_MARK, FAIL_MARK = "PASS", "FAIL"


def format_report(report: BlankReport) -> str:
    """The lines a student sees under a test cell, e.g. ``mnist_loss: 5/6 checks passed (3.33/4 points)``."""
    if report.error:
        return f"{report.blank}: the checks could not run: {report.error} (0/{report.points:g} points)"
    lines = [f"{report.blank}: {report.passed}/{report.total} checks passed ({report.score:g}/{report.points:g} points)"]
    if report.failed_gates:
        lines.append("  0 points: a check that repeats the visible test failed (marked *); fix it first")
    for result in report.results:
        star = "*" if result.gate and not result.passed else ""
        if result.passed:
            lines.append(f"  {PASS_MARK} {result.name}")
        else:
            lines.append(f"  {FAIL_MARK}{star} {result.name}: {result.message}")
    return "\n".join(lines)
