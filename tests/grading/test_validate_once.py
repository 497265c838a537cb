"""nbgrader's converters validate a notebook once per pass, not after each preprocessor, and still refuse one a
step made invalid (``nbgrader_api.VALIDATE_ONCE``): in the nbgrader worker and in the coordinator's record."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbconvert.exporters import NotebookExporter
from nbconvert.exporters import exporter as exporter_module
from nbconvert.preprocessors import Preprocessor
from traitlets.config import Config

from autograder.grading import nbgrader_worker, record
from autograder.nbgrader_api import VALIDATE_ONCE


class Unchanged(Preprocessor):
    def preprocess(self, nb, resources):
        return nb, resources


class BreaksTheNotebook(Preprocessor):
    def preprocess(self, nb, resources):
        nb.cells[0]["cell_type"] = "no such type"
        return nb, resources


def _notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])


def _exporter(*preprocessors) -> NotebookExporter:
    exporter = NotebookExporter(config=Config(VALIDATE_ONCE))
    for preprocessor in preprocessors:
        exporter.register_preprocessor(preprocessor, enabled=True)
    return exporter


def test_three_steps_validate_the_notebook_once(monkeypatch):
    validated = []
    real = exporter_module.Exporter._validate_preprocessor
    monkeypatch.setattr(exporter_module.Exporter, "_validate_preprocessor", lambda *args: validated.append(1) or real(*args))
    _exporter(Unchanged(), Unchanged(), Unchanged()).from_notebook_node(_notebook())
    assert len(validated) == 1


def test_a_step_that_breaks_the_notebook_is_still_refused():
    with pytest.raises(nbformat.ValidationError):
        _exporter(BreaksTheNotebook(), Unchanged()).from_notebook_node(_notebook())


def test_the_record_and_the_worker_validate_once(monkeypatch, tmp_path: Path):
    assert record.RECORD_CONFIG["NotebookExporter"] == VALIDATE_ONCE["NotebookExporter"]
    seen = {}

    def make_api(root, overrides=None):
        seen.update(overrides or {})
        return object()

    monkeypatch.setattr("autograder.nbgrader_api.make_api", make_api)
    monkeypatch.setattr("autograder.nbgrader_api.autograde_with", lambda api, converter, assignment, student: {"success": True})
    nbgrader_worker.main(tmp_path, "a1", "student", 60, 10_000)
    assert seen["NotebookExporter"] == VALIDATE_ONCE["NotebookExporter"]
