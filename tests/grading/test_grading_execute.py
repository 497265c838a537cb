"""Which cells grading executes: everything up to the notebook's last graded, solution or task cell."""

from __future__ import annotations

import nbformat
import pytest

from autograder.nbgrader_ext import last_tracked_cell


def _cell(**nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("1")
    if nbgrader:
        cell.metadata["nbgrader"] = {"grade_id": "x", **nbgrader}
    return cell


@pytest.mark.parametrize(("cells", "last"), [
    ([_cell(), _cell(solution=True), _cell(), _cell()], 1),
    ([_cell(grade=True, points=1), _cell(locked=True, grade=False, solution=False), _cell()], 0),
    ([_cell(), _cell(task=True, points=1), _cell(grade=False, solution=False, locked=True)], 1),
    ([_cell(solution=True), _cell(), _cell(grade=True, points=1)], 2),
    ([_cell(), _cell(locked=True)], 1),  # nothing nbgrader tracks: nothing is left out
    ([], -1),
])
def test_the_last_tracked_cell_is_the_last_graded_solution_or_task_cell(cells, last):
    assert last_tracked_cell(nbformat.v4.new_notebook(cells=cells)) == last
