"""Display of a ``BlankReport``: one short line per check, for a notebook cell's stdout.

The first line gives the blank's points and why; then one line per check, the failed ones (each naming the
likely mistake) before the passed ones. A check that repeats the visible test is starred when it fails.
"""

from __future__ import annotations

from autograder.checks.results import BlankReport, CheckResult, one_line

PASS_MARK, FAIL_MARK, GATE_STAR = "PASS", "FAIL", "*"
VISIBLE_TEST_FAILED = "the visible test failed"
CELL_UNFINISHED = "the cell did not finish"
GATE_FAILED = "  0 points: a hidden check that repeats the visible test exactly (marked *) failed; fix it first"


def format_report(report: BlankReport) -> str:
    """The lines a student sees under a test cell.

    - the checks could not run: ``mse: the checks could not run: <why> (0/2 points)``;
    - the cell raised (``visible_test_error``): ``mnist_loss: 0/4 points: the visible test failed: <error>``
      (or ``the cell did not finish: <error>`` for a timeout), then what the hidden checks say;
    - otherwise ``mnist_loss: 5/6 checks passed (3.33/4 points)``, with a line saying so when a check that
      repeats the visible test failed (the blank then scores 0).
    """
    if report.error:
        return f"{report.blank}: the checks could not run: {report.error} (0/{report.points:g} points)"
    if report.visible_test_error:
        lines = _cell_raised_lines(report)
    else:
        lines = [f"{report.blank}: {report.passed}/{report.total} checks passed ({report.score:g}/{report.points:g} points)"]
        if report.failed_gates:
            lines.append(GATE_FAILED)
    lines += [check_line(result) for result in report.failed]
    lines += [check_line(result) for result in report.results if result.passed]
    return "\n".join(lines)


def _cell_raised_lines(report: BlankReport) -> list[str]:
    what = CELL_UNFINISHED if report.cell_unfinished else VISIBLE_TEST_FAILED
    lines = [f"{report.blank}: 0/{report.points:g} points: {what}: {report.visible_test_error}"]
    if report.results:
        lines.append(f"  {hidden_checks_verdict(report)}:")
    return lines


def hidden_checks_verdict(report: BlankReport, star_note: bool = True) -> str:
    """What the hidden checks add when the cell raised, e.g. ``the hidden checks say what is likely wrong (3/5 passed)``.

    Args:
        star_note: say what the star marks (``; * repeats the visible test``) when a starred check is listed.
    """
    verdict = "the hidden checks say what is likely wrong" if report.failed else "the hidden checks found no mistake"
    star = f"; {GATE_STAR} repeats the visible test" if star_note and report.failed_gates else ""
    return f"{verdict} ({report.passed}/{report.total} passed{star})"


def check_line(result: CheckResult) -> str:
    """One check on one line: ``  PASS <name>``, or ``  FAIL <name>: <likely mistake>`` (``FAIL*`` for a gate)."""
    if result.passed:
        return f"  {PASS_MARK} {one_line(result.name)}"
    star = GATE_STAR if result.gate else ""
    return f"  {FAIL_MARK}{star} {one_line(result.name)}: {one_line(result.message)}"
