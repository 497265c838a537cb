"""`autograder feedback` (``commands.write_feedback``): the reference's curves are trained only when a report has curves,
and the page says what run the student's curves show."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import TextOf

from autograder.checks.results import BlankReport, CheckResult
from autograder.grading import feedback
from autograder.grading.commands import write_feedback
from autograder.grading.pipeline import results_folder
from autograder.grading.results import CellResult, Status, SubmissionResult

ASSIGNMENT = "04_mnist_sgd"
RUN = "Your train_model trained linear1 for 3 epochs at lr 1 with plain SGD (BasicOptim's step) and the reference mnist_loss"
REFERENCE_RUN = "the reference train_model with the reference mnist_loss: 20 epochs at lr 1.0 on the same data"


def _curves(run: str, loss_name: str, final: float) -> dict:
    return {"run": run, "epochs": 2, "lr": 1.0, "loss_name": loss_name, "train_loss": [0.3, 0.2],
            "valid_accuracy_returned": [0.9, final], "final_accuracy": final}


def _save(root: Path, student: str, artifacts: dict) -> None:
    data = BlankReport("train_model", 3, [CheckResult("trains linear1", True)], artifacts=artifacts).to_json()
    result = SubmissionResult(student, ASSIGNMENT, Status.GRADED, cells=[CellResult("train_model", 3.0, 3, "", data)])
    result.save(results_folder(root, ASSIGNMENT) / f"{student}.json")


@pytest.fixture
def reference_calls(monkeypatch) -> list:
    calls: list = []

    def fake(device=None):
        calls.append(device)
        return _curves(REFERENCE_RUN, "the reference mnist_loss", 0.972)

    monkeypatch.setattr(feedback, "reference_training_curves", fake)
    return calls


def test_the_page_says_what_run_the_curves_show_beside_the_reference(tmp_path: Path, reference_calls: list):
    _save(tmp_path, "hana", {"curves": _curves(RUN, "your mnist_loss", 0.961)})
    [page] = write_feedback(course_root=tmp_path, assignment=ASSIGNMENT, device="cpu")
    text = TextOf.of(page.read_text())
    assert reference_calls == ["cpu"]
    assert f"What this shows: {RUN}" in text
    assert "yours 0.9610, reference 0.9720" in text


def test_no_curves_no_reference_training(tmp_path: Path, reference_calls: list):
    _save(tmp_path, "ivan", {})
    [page] = write_feedback(course_root=tmp_path, assignment=ASSIGNMENT, device="cpu")
    assert reference_calls == [] and "What this shows" not in page.read_text()
