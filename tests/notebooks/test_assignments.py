"""The assignments: nbgrader gives the reference full points and the stubs zero; release/ matches source/."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder.course import assignments, notebook
from autograder.release import release_differences
from autograder.validate import validate_assignment

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = assignments(REPO_ROOT)
EXPECTED_TOTALS = {"01_gradient_descent": 10, "02_linear_regression": 10, "03_pixel_similarity": 10, "04_mnist_sgd": 20}
CHECK_CALL = re.compile(r'check\("(?P<blank>\w+)", points=(?P<points>[\d.]+)')

pytestmark = pytest.mark.notebooks


def _grade_cells(kind: str, assignment: str) -> list:
    nb = nbformat.read(notebook(REPO_ROOT, kind, assignment), as_version=4)
    return [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade")]


def test_the_course_has_the_four_assignments():
    assert ASSIGNMENTS == sorted(EXPECTED_TOTALS)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_points_sum_to_a_round_total_and_match_the_check_calls(assignment):
    cells = _grade_cells("source", assignment)
    assert sum(cell.metadata.nbgrader.points for cell in cells) == EXPECTED_TOTALS[assignment]
    for cell in cells:
        call = CHECK_CALL.search(cell.source)
        assert call, f"test cell {cell.metadata.nbgrader.grade_id} has no hidden check call"
        assert float(call["points"]) == cell.metadata.nbgrader.points, cell.metadata.nbgrader.grade_id
        assert cell.metadata.nbgrader.grade_id == f"test_{call['blank']}"
        assert cell.source.startswith("### BEGIN HIDDEN TESTS"), f"{cell.metadata.nbgrader.grade_id}: the hidden block comes first"
        assert cell.source.rstrip().splitlines()[-1] == f'print("{call["blank"]}: visible tests passed")', (
            f"{cell.metadata.nbgrader.grade_id} ends with one print of its blank's visible tests"
        )
    first = nbformat.read(notebook(REPO_ROOT, "source", assignment), as_version=4).cells[0]
    assert str(EXPECTED_TOTALS[assignment]) in first.source, "the first cell states the points"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_never_imports_autograder_and_stubs_name_their_task(assignment):
    text = notebook(REPO_ROOT, "release", assignment).read_text()
    assert "autograder" not in text and "HIDDEN TESTS" not in text
    nb = nbformat.read(notebook(REPO_ROOT, "release", assignment), as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            assert f'NotImplementedError("{meta["grade_id"]}: ' in cell.source


def test_release_is_in_sync_with_source():
    assert release_differences(REPO_ROOT) == []


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_gives_the_reference_full_points_and_the_stubs_zero(assignment, mnist_folder):
    result = validate_assignment(REPO_ROOT, assignment)
    assert result.reference and result.stubs
    assert [(c.cell, c.score) for c in result.reference] == [(c.cell, c.max_score) for c in result.reference]
    assert [(c.cell, c.score) for c in result.stubs] == [(c.cell, 0.0) for c in result.stubs]
    assert result.max_score == EXPECTED_TOTALS[assignment]
