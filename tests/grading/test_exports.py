"""The gradebook CSV and Gradescope's results.json, from hand-built grading results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult
from autograder.gradescope.results import gradescope_results
from autograder.grading.exports import NBGRADER_COLUMNS, subfolder, write_grades_csv
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult

ASSIGNMENT = "04_mnist_sgd"


def report(blank: str, points: float, checks: list[tuple[str, bool, str]], artifacts: dict | None = None) -> dict:
    return BlankReport(blank, points, [CheckResult(*check) for check in checks], artifacts=artifacts or {}).to_json()


def cell(blank: str, points: float, checks: list[tuple[str, bool, str]], artifacts: dict | None = None) -> CellResult:
    data = report(blank, points, checks, artifacts)
    return CellResult(blank, data["score"], points, format_report(BlankReport.from_json(data)), data)


def sample_batch() -> BatchResult:
    curves = {"epochs": 3, "train_loss": [0.3, 0.2, 0.1], "valid_accuracy_returned": [0.9, 0.95, 0.97], "final_accuracy": 0.97}
    full = SubmissionResult("alice", ASSIGNMENT, Status.GRADED, cells=[
        cell("mnist_loss", 4, [("matches the reference", True, ""), ("has the reference's gradient", True, "")]),
        cell("train_model", 3, [("trains to the calibrated accuracy", True, "")], {"curves": curves}),
    ], seconds=12.5)
    partial = SubmissionResult("bob", ASSIGNMENT, Status.GRADED, cells=[
        cell("mnist_loss", 4, [
            ("matches the reference", False, "forgot .mean(): this returns the sum over the batch"),
            ("has the reference's gradient", True, ""),
            ("keeps dtype and device", True, ""),
        ]),
        cell("train_model", 3, [("trains to the calibrated accuracy", False, "accuracy 0.5 is below 0.96")]),
    ])
    corrupt = SubmissionResult("carol", ASSIGNMENT, Status.CORRUPT, "04_mnist_sgd.ipynb is not valid JSON (line 3)")
    return BatchResult(ASSIGNMENT, [full, partial, corrupt])


def read_csv(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        rows = {row["student_id"]: row for row in reader}
        return list(reader.fieldnames or []), rows


def test_csv_has_nbgrader_columns_then_status_then_one_per_blank(tmp_path: Path):
    path = write_grades_csv(sample_batch(), tmp_path / "out" / "grades.csv")
    header, rows = read_csv(path)
    assert header == [*NBGRADER_COLUMNS, "status", "reason", "mnist_loss", "train_model"]
    assert list(rows) == ["alice", "bob", "carol"]


def test_csv_values_for_graded_submissions(tmp_path: Path):
    _, rows = read_csv(write_grades_csv(sample_batch(), tmp_path / "grades.csv"))
    alice, bob = rows["alice"], rows["bob"]
    assert alice["assignment"] == ASSIGNMENT
    assert (alice["duedate"], alice["timestamp"], alice["email"]) == ("", "", "")
    assert float(alice["raw_score"]) == float(alice["score"]) == 7.0
    assert float(alice["max_score"]) == 7.0
    assert float(alice["late_submission_penalty"]) == 0.0
    assert (alice["status"], alice["reason"]) == ("graded", "")
    assert float(bob["mnist_loss"]) == pytest.approx(2.67)
    assert float(bob["train_model"]) == 0.0
    assert float(bob["score"]) == pytest.approx(2.67)


def test_csv_ungradable_submission_keeps_status_and_reason(tmp_path: Path):
    _, rows = read_csv(write_grades_csv(sample_batch(), tmp_path / "grades.csv"))
    carol = rows["carol"]
    assert carol["status"] == "corrupt_notebook"
    assert carol["reason"] == "04_mnist_sgd.ipynb is not valid JSON (line 3)"
    assert float(carol["score"]) == float(carol["raw_score"]) == 0.0
    assert float(carol["max_score"]) == 7.0, "an ungradable submission is out of the assignment's total"
    assert carol["mnist_loss"] == carol["train_model"] == "", "no per-blank score without a graded notebook"


def test_csv_refuses_a_blank_named_like_a_fixed_column(tmp_path: Path):
    batch = BatchResult(ASSIGNMENT, [SubmissionResult("dan", ASSIGNMENT, Status.GRADED, cells=[CellResult("score", 1, 1)])])
    with pytest.raises(ValueError, match="clash"):
        write_grades_csv(batch, tmp_path / "grades.csv")


def test_gradescope_schema_for_a_graded_submission():
    data = gradescope_results(sample_batch().submissions[1])
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"score", "output", "tests"}
    assert data["score"] == pytest.approx(2.67)
    assert "2.67/7" in data["output"]
    assert [test["name"] for test in data["tests"]] == ["mnist_loss", "train_model"]
    for test in data["tests"]:
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["visibility"] == "visible" and test["status"] == "failed"
        assert isinstance(test["score"], float) and isinstance(test["max_score"], (int, float))
    mnist_loss = data["tests"][0]
    assert (mnist_loss["score"], mnist_loss["max_score"]) == (pytest.approx(2.67), 4)
    assert "FAIL matches the reference: forgot .mean()" in mnist_loss["output"]
    assert "PASS keeps dtype and device" in mnist_loss["output"]


def test_gradescope_rebuilds_check_lines_from_the_report_when_nothing_was_printed():
    batch = sample_batch()
    result = batch.submissions[1]
    result.cells[0].output = ""
    assert "FAIL matches the reference: forgot .mean()" in gradescope_results(result)["tests"][0]["output"]


def test_gradescope_ungradable_submission_states_status_and_reason():
    data = gradescope_results(sample_batch().submissions[2])
    assert data["score"] == 0.0
    assert "corrupt_notebook" in data["output"]
    assert "not valid JSON (line 3)" in data["output"]
    assert data["tests"] == []


@pytest.mark.parametrize("name", ["", ".", "..", "../evil", "a/b", "a\\b"])
def test_student_ids_that_are_not_one_folder_name_are_refused(tmp_path: Path, name: str):
    with pytest.raises(ValueError):
        subfolder(tmp_path, name)


VISIBLE_ERROR = "AssertionError: expected 0.690399, got 1.500000 on the lesson's example: did you apply sigmoid to the predictions?"


def test_a_failed_visible_test_exports_zero_with_its_error_and_named_mistakes(tmp_path: Path):
    data = BlankReport("mnist_loss", 4, [
        CheckResult("matches the reference", False, "forgot sigmoid: the loss of raw predictions"),
        CheckResult("keeps dtype and device", True),
    ], visible_test_error=VISIBLE_ERROR).to_json()
    failed = CellResult("mnist_loss", 0.0, 4, format_report(BlankReport.from_json(data)) + "\n" + VISIBLE_ERROR + "\n", data)
    batch = BatchResult(ASSIGNMENT, [SubmissionResult("erin", ASSIGNMENT, Status.GRADED, cells=[failed])])
    _, rows = read_csv(write_grades_csv(batch, tmp_path / "grades.csv"))
    assert float(rows["erin"]["mnist_loss"]) == float(rows["erin"]["score"]) == 0.0
    [test] = gradescope_results(batch.submissions[0])["tests"]
    assert test["score"] == 0.0
    assert test["output"].splitlines() == [
        f"mnist_loss: 0/4 points: the visible test failed: {VISIBLE_ERROR}",
        "  the hidden checks say what is likely wrong (1/2 passed):",
        "  FAIL matches the reference: forgot sigmoid: the loss of raw predictions",
        "  PASS keeps dtype and device",
    ], "the error line once, then the checks"


def test_results_saved_before_the_visible_test_error_existed_still_load_and_export(tmp_path: Path):
    old_report = report("mnist_loss", 4, [("matches the reference", True, "")])
    del old_report["visible_test_error"]
    saved = {"student": "gus", "assignment": ASSIGNMENT, "status": "graded",
             "cells": [{"blank": "mnist_loss", "score": 4.0, "max_score": 4, "output": "mnist_loss: 1/1 checks passed\n", "report": old_report}]}
    result = SubmissionResult.from_json(saved)
    assert result.cells[0].blank_report().visible_test_error == ""
    assert gradescope_results(result)["tests"][0]["output"].startswith("mnist_loss: 1/1 checks passed (4/4 points)")
