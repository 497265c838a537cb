"""nbgrader's check of the cells' grading metadata with its schema compiled once per process
(``nbgrader_ext.CheckCellMetadataOnce``): nbgrader's verdicts and errors, one meta-schema check per process."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from jsonschema import Draft4Validator
from jsonschema.validators import validator_for
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import CheckCellMetadata

from autograder import nbgrader_schema
from autograder.grading import record
from autograder.nbgrader_cells import grade_id, is_grade, is_solution
from autograder.nbgrader_ext import CheckCellMetadataOnce

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "source" / "04_mnist_sgd" / "04_mnist_sgd.ipynb"


def _source() -> nbformat.NotebookNode:
    return nbformat.read(SOURCE, as_version=4)


def _first(nb, test) -> dict:
    return next(cell for cell in nb.cells if test(cell))


def _corrupt(change: str) -> nbformat.NotebookNode:
    nb = _source()
    grade = _first(nb, is_grade)["metadata"]["nbgrader"]
    if change == "points are text":
        grade["points"] = "two"
    elif change == "no points":
        del grade["points"]
    elif change == "empty grade_id":
        grade["grade_id"] = ""
    elif change == "older schema":
        grade["schema_version"] = 2
    elif change == "newer schema":
        grade["schema_version"] = 4
    elif change == "duplicate grade_id":
        _first(nb, lambda cell: is_solution(cell) and not is_grade(cell))["metadata"]["nbgrader"]["grade_id"] = grade_id(_first(nb, is_grade))
    elif change == "a key of the wrong type":
        grade["locked"] = "yes"
    elif change == "a markdown grade cell that is no answer":
        cell = _first(nb, lambda cell: cell.cell_type == "markdown")
        cell["metadata"]["nbgrader"] = {**copy.deepcopy(grade), "grade_id": "prose", "solution": False}
    return nb


def _verdict(validate, nb) -> tuple[str, str] | None:
    try:
        validate(nb)
    except Exception as error:  # noqa: BLE001 - the verdict is the error itself
        return type(error).__name__, str(error)
    return None


CHANGES = ["none", "points are text", "no points", "empty grade_id", "older schema", "newer schema", "duplicate grade_id",
           "a key of the wrong type", "a markdown grade cell that is no answer"]


@pytest.mark.parametrize("change", CHANGES)
def test_the_verdict_and_the_error_are_nbgraders(change):
    nb = _corrupt(change)
    ours = _verdict(nbgrader_schema.metadata_validator().validate_nb, copy.deepcopy(nb))
    assert ours == _verdict(MetadataValidator().validate_nb, copy.deepcopy(nb))
    assert (ours is None) == (change == "none")
    preprocessors = [_verdict(lambda notebook: kind().preprocess(notebook, {}), copy.deepcopy(nb)) for kind in (CheckCellMetadataOnce, CheckCellMetadata)]
    assert preprocessors[0] == preprocessors[1]


def test_the_schema_itself_is_checked_once_per_process(monkeypatch):
    checked = []
    schema_class = validator_for(MetadataValidator().schema)
    assert schema_class is Draft4Validator
    original = schema_class.check_schema.__func__
    monkeypatch.setattr(schema_class, "check_schema", classmethod(lambda cls, schema, **kw: checked.append(1) or original(cls, schema, **kw)))
    nbgrader_schema.metadata_validator.cache_clear()
    for _ in range(3):
        CheckCellMetadataOnce().preprocess(_source(), {})
    ours = len(checked)
    CheckCellMetadata().preprocess(_source(), {})
    assert ours == 1
    assert len(checked) - ours == sum("nbgrader" in cell.metadata for cell in _source().cells)


def test_executing_and_recording_check_the_metadata_once_per_process():
    nbgrader_config = (REPO / "nbgrader_config.py").read_text()
    sanitize = nbgrader_config[nbgrader_config.index("c.Autograde.sanitize_preprocessors"):]
    sanitize = sanitize[: sanitize.index("]")]
    assert '"autograder.nbgrader_ext.CheckCellMetadataOnce"' in sanitize and "preprocessors.CheckCellMetadata" not in sanitize
    assert record.RECORD_CONFIG["Autograde"]["sanitize_preprocessors"][-1] == "autograder.nbgrader_ext.CheckCellMetadataOnce"
