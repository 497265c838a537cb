"""Restoring a submission's grading metadata from the release, and naming cells for students."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from autograder.grading.cell_restore import restore, tracked_cells, visible_source
from autograder.grading.outcome import cell_in_words, ordinal

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASE = REPO_ROOT / "release" / "04_mnist_sgd" / "04_mnist_sgd.ipynb"


@pytest.fixture(scope="module")
def release() -> nbformat.NotebookNode:
    return nbformat.read(RELEASE, as_version=4)


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def flags(c: nbformat.NotebookNode) -> tuple | None:
    meta = c.metadata.get("nbgrader")
    return None if meta is None else tuple(meta.get(key) for key in ("grade_id", "grade", "solution", "locked", "task", "points"))


def ids(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})]


def test_an_untouched_release_needs_no_change(release):
    nb = copy.deepcopy(release)
    assert restore(nb, tracked_cells(release)) == []
    assert nb == release


@pytest.mark.parametrize("edit, change", [
    (lambda nb: cell(nb, "mnist_loss").metadata.nbgrader.update(grade=True, points=10), "mnist_loss's grading metadata edited"),
    (lambda nb: cell(nb, "test_sigmoid").metadata.nbgrader.update(grade=False), "test_sigmoid's grading metadata edited"),
    (lambda nb: cell(nb, "test_sigmoid").metadata.nbgrader.update(points=200), "test_sigmoid's grading metadata edited"),
    (lambda nb: cell(nb, "test_BasicOptim").metadata.nbgrader.update(grade_id="test_mine"), "test_BasicOptim renamed to test_mine"),
    (lambda nb: cell(nb, "test_train_epoch").metadata.pop("nbgrader"), "test_train_epoch's grading metadata removed"),
])
def test_each_edit_is_put_back_and_named(release, edit, change):
    nb = copy.deepcopy(release)
    edit(nb)
    changes = restore(nb, tracked_cells(release))
    assert len(changes) == 1 and changes[0].startswith(change), changes
    assert [flags(c) for c in nb.cells] == [flags(c) for c in release.cells]


def test_a_copied_test_cell_is_not_graded_wherever_it_was_pasted(release):
    for where in (3, -1):
        nb = copy.deepcopy(release)
        nb.cells.insert(where if where >= 0 else len(nb.cells), copy.deepcopy(cell(nb, "test_calc_grad")))
        original = next(i for i, c in enumerate(release.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_calc_grad")
        changes = restore(nb, tracked_cells(release))
        assert changes == ["test_calc_grad duplicated (the copy is not graded)"]
        carriers = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_calc_grad"]
        assert carriers == [original + (1 if where == 3 else 0)], "the cell in the original place keeps the id"


def test_unknown_cells_become_plain_and_deleted_test_cells_are_named(release):
    nb = copy.deepcopy(release)
    nb.cells.append(nbformat.v4.new_code_cell("10.0", metadata={"nbgrader": {"grade": True, "grade_id": "bonus", "points": 50,
                                                                            "solution": False, "locked": False, "schema_version": 3}}))
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_train_model"]
    changes = restore(nb, tracked_cells(release))
    assert "cell 'bonus' is not part of the assignment (not graded)" in changes
    assert "test_train_model deleted (scores 0)" in changes
    assert "bonus" not in ids(nb) and "nbgrader" not in nb.cells[-1].metadata


def test_a_plain_cell_after_a_deleted_test_cell_is_left_alone(release):
    nb = copy.deepcopy(release)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sigmoid")
    nb.cells[index] = nbformat.v4.new_code_cell("print('my own experiment')")
    changes = restore(nb, tracked_cells(release))
    assert changes == ["test_sigmoid deleted (scores 0)"]
    assert nb.cells[index].source == "print('my own experiment')" and "nbgrader" not in nb.cells[index].metadata


def test_visible_source_drops_the_hidden_block():
    text = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\ncheck('f')\n### END HIDDEN TESTS\n"
    assert visible_source(text) == "assert f(1) == 2"


@pytest.mark.parametrize("number, word", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
                                          (21, "21st"), (22, "22nd"), (101, "101st")])
def test_ordinals(number, word):
    assert ordinal(number) == word


def test_cells_are_named_by_id_or_by_their_place(release):
    nb = copy.deepcopy(release)
    test_index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "test_sigmoid")
    assert cell_in_words(nb, test_index) == "test_sigmoid"
    code_after = [i for i in range(test_index + 1, len(nb.cells)) if nb.cells[i].cell_type == "code"]
    assert cell_in_words(nb, code_after[0]) == "the 1st code cell after test_sigmoid"
    nb.cells.insert(0, nbformat.v4.new_code_cell("while True: pass"))
    nb.cells.insert(0, nbformat.v4.new_code_cell("x = 1"))
    assert cell_in_words(nb, 1) == "the 2nd code cell of the notebook"
    assert "#" not in cell_in_words(nb, 1)
