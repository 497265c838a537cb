"""The grading worker sanitizes and executes a submission in one pass of nbgrader's ``Autograde`` steps
(``nbgrader_ext.GradingAutograde``), and leaves the executed notebook nbgrader's own two passes leave."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbgrader.converters.base import BaseConverter

from autograder.course import scratch_course
from autograder.grading import nbgrader_worker
from autograder.nbgrader_api import generate_assignment

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "tiny"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
STUDENT = "ada"


def _nbgrader(cell: nbformat.NotebookNode, grade_id: str, **flags) -> nbformat.NotebookNode:
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": False, "solution": False, "locked": False,
                                 "schema_version": 3, **flags}
    return cell


def _source() -> nbformat.NotebookNode:
    """An assignment of four code cells: an answer, a locked cell that shows how it runs, a test with a hidden
    part, and a cell after the last graded one (grading leaves it out)."""
    v4 = nbformat.v4
    return v4.new_notebook(cells=[
        _nbgrader(v4.new_code_cell("### BEGIN SOLUTION\nanswer = 2\n### END SOLUTION"), "answer", solution=True),
        _nbgrader(v4.new_code_cell('import os\nprint("NBGRADER_EXECUTION =", os.environ.get("NBGRADER_EXECUTION"))'),
                  "shows_how_it_runs", locked=True),
        _nbgrader(v4.new_code_cell("assert answer > 0\n### BEGIN HIDDEN TESTS\nassert answer == 2, 'hidden test'\n"
                                   "### END HIDDEN TESTS"), "test_answer", grade=True, locked=True, points=2),
        v4.new_code_cell('print("a closing demonstration")'),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _submission(course: Path) -> nbformat.NotebookNode:
    """The release, answered wrongly (the hidden test fails), with the locked cell edited and the test rewritten."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    answer, locked, test, _ = nb.cells
    answer.source = "answer = 3"
    locked.source = 'print("NBGRADER_EXECUTION = edited")'
    test.source = "pass  # the student removed this test"
    return nb


def _executed(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, two_passes: bool) -> tuple[nbformat.NotebookNode, dict, int]:
    """The notebook ``nbgrader_worker.main`` executed in a fresh course (with nbgrader's own ``Autograde`` when
    ``two_passes``), its result file and how many conversion passes ran."""
    course = scratch_course(REPO_ROOT, tmp_path / name)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(_source(), course / "source" / ASSIGNMENT / NOTEBOOK)
    generate_assignment(course, ASSIGNMENT)
    submitted = course / "submitted" / STUDENT / ASSIGNMENT
    submitted.mkdir(parents=True)
    nbformat.write(_submission(course), submitted / NOTEBOOK)
    passes = []
    real = BaseConverter.convert_single_notebook
    monkeypatch.setattr(BaseConverter, "convert_single_notebook", lambda self, path: passes.append(path) or real(self, path))
    if two_passes:
        monkeypatch.setattr("autograder.nbgrader_api.autograde_with",
                            lambda api, converter, assignment, student: api.autograde(assignment, student, force=True, create=True))
    assert nbgrader_worker.main(course, ASSIGNMENT, STUDENT, cell_timeout=60, max_output_bytes=2**20) == 0
    monkeypatch.undo()
    executed = nbformat.read(course / "autograded" / STUDENT / ASSIGNMENT / NOTEBOOK, as_version=4)
    return executed, json.loads((course / nbgrader_worker.RESULT_NAME).read_text()), len(passes)


def _comparable(nb: nbformat.NotebookNode) -> list[tuple]:
    """Each cell's type, source, nbgrader metadata and outputs (execution counts and timings left out)."""
    return [(cell.cell_type, cell.source, cell.metadata.get("nbgrader"),
             [{key: value for key, value in output.items() if key != "execution_count"} for output in cell.get("outputs", [])])
            for cell in nb.cells]


def test_one_pass_executes_the_notebook_nbgraders_two_passes_execute(tmp_path, monkeypatch):
    ours, our_result, our_passes = _executed(tmp_path, "one", monkeypatch, two_passes=False)
    theirs, their_result, their_passes = _executed(tmp_path, "two", monkeypatch, two_passes=True)
    assert (our_passes, their_passes) == (1, 2)
    assert our_result["success"] and their_result["success"]
    assert _comparable(ours) == _comparable(theirs)
    answer, locked, test, closing = ours.cells
    assert locked.outputs[0].text == "NBGRADER_EXECUTION = autograde\n"  # restored, and run as nbgrader runs it
    assert "hidden test" in test.source and test.outputs[0].output_type == "error"  # restored, hidden part included
    assert closing.get("outputs") == []  # after the last graded cell: left out
