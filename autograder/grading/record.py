"""The course's gradebook during grading: register the assignment, record each submission, read it back.

The coordinator alone calls this, one submission at a time, so the SQLite gradebook has a single
writer however many workers execute notebooks. The executed notebook is staged under
``grading/staged/`` and passed through nbgrader's ``Autograde`` converter with execution left out, in one pass
(``nbgrader_ext.RecordAutograde``): the sanitize steps (restore locked cells and hidden tests from the
gradebook) and ``SaveAutoGrades`` score it exactly as ``nbgrader autograde`` does.

nbgrader commits cell by cell, so a grader killed while registering or recording leaves part of the rows:
``needs_registration`` tells a complete registration from a part of one, and ``is_recorded`` a record made
against a complete one. (A record cut short is told by its missing result file: see ``pipeline.record``.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from autograder.checks import REPORT_MIME_TYPE
from autograder.course import notebook, scratch_course
from autograder.grading.results import CellResult
from autograder.nbgrader_api import GRADEBOOK, VALIDATE_ONCE, NbgraderError, autograde_with, gradebook_url, in_course, make_api, open_gradebook
from autograder.nbgrader_cells import blank_of, grade_id, is_grade, is_solution

STAGED = "grading/staged"

RECORD_CONFIG = {
    "Autograde": {
        "sanitize_preprocessors": [
            "autograder.nbgrader_ext.RestoreCellMetadata",
            "nbgrader.preprocessors.DeduplicateIds",
            "nbgrader.preprocessors.OverwriteKernelspec",
            "nbgrader.preprocessors.OverwriteCells",
            "autograder.nbgrader_ext.CheckCellMetadataOnce",
        ],
        # nbgrader checks the cells' metadata again after executing; nothing runs here between the sanitize
        # steps' check and these, which change no cell's metadata
        "autograde_preprocessors": [
            "nbgrader.preprocessors.SaveAutoGrades",
            "nbgrader.preprocessors.AssignLatePenalties",
        ],
    },
    "CourseDirectory": {"submitted_directory": STAGED},
    **VALIDATE_ONCE,
}


def record_executed(course_root: Path, assignment: str, student: str, executed: Path, submitted: Path) -> None:
    """Score ``executed`` (an executed notebook) into the gradebook and ``autograded/`` of the course.

    Args:
        submitted: the student's submitted folder (its ``timestamp.txt``, if any, sets lateness).

    Raises:
        NbgraderError: nbgrader could not record it.
    """
    from autograder.nbgrader_ext import RecordAutograde

    staged = course_root / STAGED / student / assignment
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    shutil.copy2(executed, staged / executed.name)
    if (submitted / "timestamp.txt").exists():
        shutil.copy2(submitted / "timestamp.txt", staged / "timestamp.txt")
    try:
        with in_course(course_root):
            result = autograde_with(make_api(course_root, RECORD_CONFIG), RecordAutograde, assignment, student)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if not result.get("success"):
        raise NbgraderError(f"recording {student}'s grades failed: {result.get('error') or result.get('log', '')[-500:]}")


def record_zero(course_root: Path, assignment: str, student: str) -> None:
    """Give every autograded cell of the submission 0 points (it could not be executed)."""
    with open_gradebook(course_root) as gradebook:
        gradebook.update_or_create_student(student)
        submission = gradebook.update_or_create_submission(assignment, student)
        for submitted in submission.notebooks:
            for grade in submitted.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gradebook.db.commit()


def release_test_cells(release_notebook: Path) -> set[str]:
    """The ``grade_id`` of every test cell of a release notebook (``test_mse``, ...)."""
    return {grade_id(cell) for cell in nbformat.read(release_notebook, as_version=4).cells if blank_of(cell) is not None}


def is_recorded(course_root: Path, assignment: str, student: str, test_cells: set[str]) -> bool:
    """Whether the gradebook holds a record of the student's submission of ``assignment`` with a grade for every one
    of ``test_cells`` (the release's test cells, ``release_test_cells``).

    A record made while the gradebook knew only part of the assignment (a registration cut short) lacks some
    grades. A test cell the student deleted keeps its grade, unscored (0 points).
    """
    from nbgrader.api import MissingEntry

    if not (course_root / GRADEBOOK).exists():
        return False
    with open_gradebook(course_root) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return False
        graded = {grade.name for submitted in submission.notebooks for grade in submitted.grades}
    return test_cells <= graded


def needs_registration(course_root: Path, assignment: str, release_notebook: Path) -> bool:
    """Whether ``register_assignment`` must (re)write ``release_notebook``'s cells into the gradebook: the gradebook
    lacks the notebook, or holds only part of its grade and answer cells (a registration cut short) and no submission.

    A notebook that already has submissions is left as it is: nbgrader refuses to change its cells.
    """
    from nbgrader.api import MissingEntry

    if not (course_root / GRADEBOOK).exists():
        return True
    cells = nbformat.read(release_notebook, as_version=4).cells
    graded = {grade_id(cell) for cell in cells if is_grade(cell)}
    answers = {grade_id(cell) for cell in cells if is_solution(cell)}
    with open_gradebook(course_root) as gradebook:
        try:
            registered = gradebook.find_notebook(Path(release_notebook).stem, assignment)
        except MissingEntry:
            return True
        if registered.submissions:
            return False
        sources = {cell.name for cell in registered.source_cells}
        return (graded != {cell.name for cell in registered.grade_cells} or answers != {cell.name for cell in registered.solution_cells}
                or not (graded | answers) <= sources)


def register_assignment(course_root: Path, assignment: str, work: Path) -> None:
    """Make the course's gradebook know ``assignment`` (its notebooks and grade cells), touching nothing else.

    ``nbgrader generate_assignment --force`` would also delete and rewrite ``release/<assignment>/``; a grader
    killed then would leave the course without its release. So it runs in a scratch copy of the course (in
    ``work``), but with its database set to the course's own ``gradebook.db``: the assignment, notebooks and
    cells are written in place, in SQLite transactions, and no write made meanwhile by another program (the
    formgrader, which keeps its connection open) is lost, as it would be by replacing the file. ``--force``
    only touches the scratch release; in the database, nbgrader creates or updates the assignment and cells
    and never deletes a notebook that has submissions (it refuses to change their cells instead). A
    registration cut short by a kill is completed (``needs_registration``).
    """
    if not needs_registration(course_root, assignment, notebook(course_root, "release", assignment)):
        return
    scratch = scratch_course(course_root, work / "register-course")
    in_place = {"CourseDirectory": {"db_url": gradebook_url(Path(course_root).resolve())}}
    try:
        with in_course(scratch):
            result = make_api(scratch, in_place).generate_assignment(assignment, force=True, create=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not result.get("success"):
        raise NbgraderError(f"generate_assignment {assignment} failed: {result.get('error') or ''}\n{result.get('log') or ''}".strip())


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
        if not is_grade(cell) or cell.cell_type != "code":
            continue
        text, report = [], None
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                text.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                text.append(f"{output.get('ename')}: {output.get('evalue')}\n")
            elif REPORT_MIME_TYPE in output.get("data", {}):
                report = dict(output["data"][REPORT_MIME_TYPE])
        found[grade_id(cell)] = ("".join(text), report)
    return found
