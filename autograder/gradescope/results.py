"""One graded submission as Gradescope's ``results.json``.

Gradescope reads ``/autograder/results/results.json`` after ``run_autograder`` ends (its "Autograder
Specifications"): a top-level ``score``, ``execution_time`` (seconds) and ``output``, and ``tests``, one per
blank here, each with ``name``, ``score``, ``max_score``, ``status`` (``passed`` / ``failed``), ``output`` and
``visibility``. Every test is ``visible``: its output is the check lines the student also reads on the feedback
page (what was checked and the likely mistake), never hidden test code or reference values. What only the
instructor should read goes to ``extra_data`` and to the script's stdout, which Gradescope shows to
instructors (``stdout_visibility: hidden``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autograder.checks.report import format_report
from autograder.grading.results import CellResult, Status, SubmissionResult

RESULTS_FILE = "results.json"
TEST_VISIBILITY = "visible"
STDOUT_VISIBILITY = "hidden"


def check_lines(cell: CellResult) -> str:
    """What the student sees for one blank: the lines of its report (``CellResult.blank_report``: when the cell
    raised, the visible test's error, then the checks and their likely mistakes), else what the cell printed."""
    report = cell.blank_report()
    return cell.output if report is None else format_report(report)


def status_line(result: SubmissionResult) -> str:
    """``"<status>: <reason>"`` (or just the status when there is no reason)."""
    return f"{result.status.value}: {result.reason}" if result.reason else result.status.value


def _test(cell: CellResult, gradable: bool, not_graded: str) -> dict:
    score = round(cell.score, 2) if gradable else 0.0
    return {
        "name": cell.blank,
        "score": score,
        "max_score": cell.max_score,
        "status": "passed" if gradable and score >= cell.max_score else "failed",
        "output": check_lines(cell) if gradable else not_graded,
        "visibility": TEST_VISIBILITY,
    }


def gradescope_results(
    result: SubmissionResult, execution_time: float | None = None, extra_data: dict | None = None
) -> dict:
    """One submission in Gradescope's ``results.json`` format.

    Args:
        result: the submission's result, as the grading pipeline returns it.
        execution_time: seconds the whole grading took (Gradescope's top-level ``execution_time``); None: left out.
        extra_data: stored by Gradescope with the result and shown to no student (e.g. how the kernel was
            isolated); None or empty: left out.

    Returns:
        ``{"score", "output", "tests": [{"name", "score", "max_score", "status", "output", "visibility"}]}`` plus
        ``execution_time``, ``stdout_visibility`` and ``extra_data`` when given. ``score`` is the total (0 when the
        submission could not be graded); ``output`` summarizes the points and, for any status other than
        ``graded``, states the status and reason; ``tests`` has one entry per blank (none when no blank could be
        scored), each saying why it scored 0 when the submission could not be graded.
    """
    gradable = result.status.gradable
    score = result.score if gradable else 0.0
    points = f"{score:g}/{result.max_score:g}" if result.cells else f"{score:g}"
    summary = f"{result.assignment}: {points} points"
    if result.status is not Status.GRADED or result.reason:
        summary = f"{summary}\n{status_line(result)}"
    not_graded = f"not graded: {status_line(result)}"
    data = {"score": round(score, 2), "output": summary, "tests": [_test(cell, gradable, not_graded) for cell in result.cells]}
    if execution_time is not None:
        data["execution_time"] = max(0, round(execution_time))
        data["stdout_visibility"] = STDOUT_VISIBILITY
    if extra_data:
        data["extra_data"] = extra_data
    return data


def failure_results(message: str, execution_time: float | None = None) -> dict:
    """``results.json`` for a submission that could not be graded at all: score 0, no tests, ``message`` as output."""
    data: dict = {"score": 0.0, "output": message, "tests": [], "stdout_visibility": STDOUT_VISIBILITY}
    if execution_time is not None:
        data["execution_time"] = max(0, round(execution_time))
    return data


def write_results(data: dict, results_dir: Path) -> Path:
    """Write ``data`` to ``results_dir/results.json`` atomically (the folder is created if needed); returns the file."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / RESULTS_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(partial, path)
    return path
