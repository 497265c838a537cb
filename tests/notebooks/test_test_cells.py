"""The visible tests of all four notebooks look and behave alike.

- Each test cell runs its hidden checks first, so that at grading time their diagnoses are printed even when a
  visible assert fails, and ends with one short line saying its visible tests passed.
- Each notebook defines the same ``likely_mistake`` helper, which turns a failing visible test's wrong answer into
  the question that names the mistake behind it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO_ROOT / "source").glob("*/*.ipynb"))
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"


def _test_cells(path: Path) -> list[tuple[str, str]]:
    nb = nbformat.read(path, as_version=4)
    return [
        (cell.metadata["nbgrader"]["grade_id"], cell.source)
        for cell in nb.cells
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata["nbgrader"].get("solution")
    ]


def _likely_mistake_source(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef) and node.name == "likely_mistake":
                return ast.get_source_segment(cell.source, node)
    raise AssertionError(f"{path.name} does not define likely_mistake")


def test_there_are_four_notebooks():
    assert [p.parent.name for p in SOURCES] == [
        "01_gradient_descent", "02_linear_regression", "03_pixel_similarity", "04_mnist_sgd",
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.name)
def test_each_test_cell_runs_its_hidden_checks_first_and_ends_with_one_passed_line(path: Path):
    cells = _test_cells(path)
    assert cells, f"{path.name} has no test cell"
    for grade_id, source in cells:
        blank = grade_id.removeprefix("test_")
        lines = [line for line in source.strip().splitlines() if line.strip()]
        assert lines[0] == HIDDEN_BEGIN, f"{grade_id}: the hidden block must come first, got {lines[0]!r}"
        expected = f'print("{blank}: visible tests passed")'
        assert lines[-1] == expected, f"{grade_id}: the last line must be {expected}, got {lines[-1]!r}"
        assert sum("visible tests passed" in line for line in lines) == 1, f"{grade_id}: one passed line only"
        assert re.search(rf'check\("{re.escape(blank)}", points=', source), f"{grade_id}: the hidden block checks {blank}"


def test_every_notebook_defines_the_same_likely_mistake():
    sources = {path.parent.name: _likely_mistake_source(path) for path in SOURCES}
    first = next(iter(sources.values()))
    different = [name for name, source in sources.items() if source != first]
    assert not different, f"likely_mistake differs in {different}"


def test_likely_mistake_names_only_a_matching_known_wrong_answer():
    namespace = {"torch": torch}
    exec(_likely_mistake_source(SOURCES[0]), namespace)
    likely_mistake = namespace["likely_mistake"]
    known = [(1.5, "did you apply sigmoid to the predictions?"), ([0.95, 2.0], "did you step only the first parameter?")]
    assert likely_mistake(1.5, known) == ": did you apply sigmoid to the predictions?"
    assert likely_mistake(torch.tensor(1.50001), known) == ": did you apply sigmoid to the predictions?"
    assert likely_mistake(torch.tensor([0.95, 2.0]), known) == ": did you step only the first parameter?"
    assert likely_mistake(0.690399, known) == ""  # the right answer names no mistake
    assert likely_mistake(torch.tensor([1.5, 1.5]), known) == ""  # another shape matches nothing
    assert likely_mistake("not a number", known) == ""
    assert likely_mistake(None, known) == ""
