"""Record one executed submission in the course's gradebook with nbgrader's own scoring steps.

The coordinator alone calls this, one submission at a time, so the SQLite gradebook has a single
writer however many workers execute notebooks. The executed notebook is staged under
``grading/staged/`` and passed through nbgrader's ``Autograde`` converter with execution left out:
the sanitize steps (restore locked cells and hidden tests from the gradebook) and ``SaveAutoGrades``
score it exactly as ``nbgrader autograde`` does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from autograder.checks import REPORT_MIME_TYPE
from autograder.grading.results import CellResult
from autograder.nbgrader_api import NbgraderError, in_course, make_api

STAGED = "grading/staged"

RECORD_CONFIG = {
    "Autograde": {
        "sanitize_preprocessors": [
            "autograder.nbgrader_ext.RestoreCellMetadata",
            "nbgrader.preprocessors.DeduplicateIds",
            "nbgrader.preprocessors.OverwriteKernelspec",
            "nbgrader.preprocessors.OverwriteCells",
            "nbgrader.preprocessors.CheckCellMetadata",
        ],
        # nbgrader checks the cells' metadata again after executing; nothing runs here between the sanitize
        # steps' check and these, which change no cell's metadata
        "autograde_preprocessors": [
            "nbgrader.preprocessors.SaveAutoGrades",
            "nbgrader.preprocessors.AssignLatePenalties",
        ],
    },
    "CourseDirectory": {"submitted_directory": STAGED},
}


def record_executed(course_root: Path, assignment: str, student: str, executed: Path, submitted: Path) -> None:
    """Score ``executed`` (an executed notebook) into the gradebook and ``autograded/`` of the course.

    Args:
        submitted: the student's submitted folder (its ``timestamp.txt``, if any, sets lateness).

    Raises:
        NbgraderError: nbgrader could not record it.
    """
    staged = course_root / STAGED / student / assignment
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    shutil.copy2(executed, staged / executed.name)
    if (submitted / "timestamp.txt").exists():
        shutil.copy2(submitted / "timestamp.txt", staged / "timestamp.txt")
    try:
        with in_course(course_root):
            result = make_api(course_root, RECORD_CONFIG).autograde(assignment, student, force=True, create=True)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if not result.get("success"):
        raise NbgraderError(f"recording {student}'s grades failed: {result.get('error') or result.get('log', '')[-500:]}")


def record_zero(course_root: Path, assignment: str, student: str) -> None:
    """Give every autograded cell of the submission 0 points (it could not be executed)."""
    from nbgrader.api import Gradebook

    with in_course(course_root), Gradebook(f"sqlite:///{course_root / 'gradebook.db'}") as gradebook:
        gradebook.update_or_create_student(student)
        submission = gradebook.update_or_create_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gradebook.db.commit()


def is_recorded(course_root: Path, assignment: str, student: str) -> bool:
    """Whether the course's gradebook holds this student's submission of ``assignment``."""
    from nbgrader.api import Gradebook, MissingEntry

    database = course_root / "gradebook.db"
    if not database.exists():
        return False
    with in_course(course_root), Gradebook(f"sqlite:///{database}") as gradebook:
        try:
            gradebook.find_submission(assignment, student)
        except MissingEntry:
            return False
        return True


def cell_results(course_root: Path, assignment: str, student: str, executed: Path | None) -> list[CellResult]:
    """The autograded cells' points from the gradebook, with the check lines and reports of ``executed``."""
    from autograder.nbgrader_api import cell_grades

    outputs = _test_cell_outputs(executed) if executed is not None else {}
    results = []
    for grade in cell_grades(course_root, assignment, student):
        text, report = outputs.get(grade.cell, ("", None))
        results.append(CellResult(grade.cell.removeprefix("test_"), grade.score, grade.max_score, text, report))
    return results


def _test_cell_outputs(executed: Path) -> dict[str, tuple[str, dict | None]]:
    nb = nbformat.read(executed, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade") or cell.cell_type != "code":
            continue
        text, report = [], None
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                text.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                text.append(f"{output.get('ename')}: {output.get('evalue')}\n")
            elif REPORT_MIME_TYPE in output.get("data", {}):
                report = dict(output["data"][REPORT_MIME_TYPE])
        found[meta["grade_id"]] = ("".join(text), report)
    return found
