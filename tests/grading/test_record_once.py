"""The coordinator records an executed notebook in one pass of nbgrader's ``Autograde`` steps
(``nbgrader_ext.RecordAutograde``), and records what nbgrader's own two passes record."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.converters.base import BaseConverter

from autograder.course import scratch_course
from autograder.grading import record
from autograder.nbgrader_api import cell_grades, generate_assignment, open_gradebook

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "01_gradient_descent"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
STUDENT = "ada"


def _executed(course: Path) -> nbformat.NotebookNode:
    """The release notebook as a kernel could have left it: one test cell raised, one printed, one gave 0.5 (a
    float as its result: that many points), a test cell was rewritten and a locked cell edited."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    tests = [cell for cell in nb.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade")]
    tests[0].outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="mse is wrong", traceback=["mse is wrong"])]
    tests[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="mae: 2/2\n")]
    tests[2].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "0.5"}, execution_count=3)]
    tests[3].source = "# the student removed this test"
    locked = next(cell for cell in nb.cells if cell.get("metadata", {}).get("nbgrader", {}).get("locked")
                  and not cell["metadata"]["nbgrader"].get("grade"))
    locked.source += "\n# edited"
    return nb


def _recorded(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, two_passes: bool) -> tuple[Path, int]:
    """A course whose gradebook recorded ``_executed`` (with nbgrader's own ``Autograde`` when ``two_passes``);
    returns it and how many conversion passes ran."""
    course = scratch_course(REPO_ROOT, tmp_path / name)
    shutil.copytree(REPO_ROOT / "release" / ASSIGNMENT, course / "release" / ASSIGNMENT)
    generate_assignment(course, ASSIGNMENT)
    executed = tmp_path / f"{name}-executed" / NOTEBOOK
    executed.parent.mkdir()
    nbformat.write(_executed(course), executed)
    submitted = tmp_path / f"{name}-submitted"
    submitted.mkdir()
    (submitted / "timestamp.txt").write_text("2024-01-01 12:00:00")
    passes = []
    real = BaseConverter.convert_single_notebook
    monkeypatch.setattr(BaseConverter, "convert_single_notebook", lambda self, path: passes.append(path) or real(self, path))
    if two_passes:
        monkeypatch.setattr(record, "autograde_with", lambda api, converter, assignment, student: api.autograde(assignment, student, force=True, create=True))
    record.record_executed(course, ASSIGNMENT, STUDENT, executed, submitted)
    monkeypatch.undo()
    return course, len(passes)


def test_one_pass_records_the_grades_and_the_notebook_of_nbgraders_two(tmp_path, monkeypatch):
    ours, our_passes = _recorded(tmp_path, "one", monkeypatch, two_passes=False)
    theirs, their_passes = _recorded(tmp_path, "two", monkeypatch, two_passes=True)
    assert (our_passes, their_passes) == (1, 2)
    grades = cell_grades(ours, ASSIGNMENT, STUDENT)
    assert [(g.cell, g.score, g.max_score) for g in grades] == [(g.cell, g.score, g.max_score) for g in cell_grades(theirs, ASSIGNMENT, STUDENT)]
    assert [g.score for g in grades][:4] == [0, 2, 0.5, 2]  # raised, passed, 0.5 as its result, restored from the gradebook
    written = [nbformat.read(course / "autograded" / STUDENT / ASSIGNMENT / NOTEBOOK, as_version=4) for course in (ours, theirs)]
    assert written[0] == written[1]
    assert "# the student removed this test" not in str(written[0]) and "# edited" not in str(written[0])
    stamps = []
    for course in (ours, theirs):
        with open_gradebook(course) as gradebook:
            submission = gradebook.find_submission(ASSIGNMENT, STUDENT)
            stamps.append((str(submission.timestamp), submission.late_submission_penalty))
    assert stamps[0] == stamps[1] and stamps[0][0].startswith("2024-01-01 12:00:00")
