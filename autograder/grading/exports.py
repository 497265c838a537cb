"""Grades for other tools: a gradebook CSV in nbgrader's export layout.

It is built from a ``BatchResult`` alone. A submission that could not be graded keeps its status and
reason in it, so a 0 there always comes with its explanation. (Gradescope reads only what an autograder it
runs itself writes: see ``autograder.gradescope``.)
"""

from __future__ import annotations

import csv
from pathlib import Path

from autograder.grading.results import BatchResult

NBGRADER_COLUMNS = (
    "assignment",
    "duedate",
    "timestamp",
    "student_id",
    "last_name",
    "first_name",
    "email",
    "raw_score",
    "late_submission_penalty",
    "score",
    "max_score",
)
STATUS_COLUMNS = ("status", "reason")


def subfolder(folder: Path, name: str) -> Path:
    """``folder / name``, refusing a name (a student id, an assignment) that is not one plain path component.

    Raises:
        ValueError: ``name`` is empty, ``.`` or ``..``, or holds a path separator or a NUL.
    """
    if name in ("", ".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
        raise ValueError(f"{name!r} cannot be used as a folder name")
    return Path(folder) / name


def blank_names(batch: BatchResult) -> list[str]:
    """Every blank met in the batch, in the order of first appearance."""
    names: dict[str, None] = {}
    for result in batch.submissions:
        for cell in result.cells:
            names.setdefault(cell.blank, None)
    return list(names)


def blank_max_scores(batch: BatchResult) -> dict[str, float]:
    """Per blank, its maximum points as recorded in any submission of the batch."""
    maxima: dict[str, float] = {}
    for result in batch.submissions:
        for cell in result.cells:
            maxima[cell.blank] = max(maxima.get(cell.blank, 0.0), cell.max_score)
    return maxima


def _number(value: float) -> str:
    return repr(round(float(value), 2))


def grade_rows(batch: BatchResult) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's header and one row per submission, as strings.

    A gradable submission has its score and one score per blank (empty for a blank it has no cell for).
    An ungradable one has score 0, empty blank scores, and the batch's total as ``max_score``.

    Raises:
        ValueError: a blank is named like one of the fixed columns.
    """
    blanks = blank_names(batch)
    clashes = set(blanks) & set(NBGRADER_COLUMNS + STATUS_COLUMNS)
    if clashes:
        raise ValueError(f"blank names clash with the CSV's fixed columns: {sorted(clashes)}")
    batch_max = sum(blank_max_scores(batch).values())
    header = [*NBGRADER_COLUMNS, *STATUS_COLUMNS, *blanks]
    rows = []
    for result in batch.submissions:
        gradable = result.status.gradable
        score = result.score if gradable else 0.0
        by_blank = {cell.blank: cell for cell in result.cells} if gradable else {}
        row = {
            "assignment": result.assignment,
            "duedate": "",
            "timestamp": "",
            "student_id": result.student,
            "last_name": "",
            "first_name": "",
            "email": "",
            "raw_score": _number(score),
            "late_submission_penalty": _number(0),
            "score": _number(score),
            "max_score": _number(result.max_score if result.cells else batch_max),
            "status": result.status.value,
            "reason": result.reason,
        }
        for blank in blanks:
            row[blank] = _number(by_blank[blank].score) if blank in by_blank else ""
        rows.append(row)
    return header, rows


def write_grades_csv(batch: BatchResult, path: Path) -> Path:
    """Write one row per submission: nbgrader's export columns, ``status``, ``reason``, then one per blank.

    Returns:
        ``path``, written (its folder is created if needed).
    """
    header, rows = grade_rows(batch)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=header, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    return path
