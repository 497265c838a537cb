"""Test cells are scored from the trusted checker's reports, never from what the kernel printed or returned."""

from __future__ import annotations

import nbformat

from autograder.checks import REPORT_MIME_TYPE
from autograder.checks.results import BlankReport, CheckResult
from autograder.grading.sandbox.trusted_outputs import apply_reports, blank_of


def _test_cell(blank: str, outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(f'check("{blank}", points=2, {blank}={blank})')
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": f"test_{blank}", "points": 2}
    cell.outputs = outputs
    return cell


def _forged() -> list:
    return [
        nbformat.v4.new_output("stream", name="stdout", text="All checks passed: 2/2\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "2.0"}, execution_count=3),
    ]


def _notebook(tmp_path, cells):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_forged_outputs_are_replaced_by_the_report(tmp_path):
    report = BlankReport("mse", 2.0, [CheckResult("a", True), CheckResult("b", False, "forgot .mean()")]).to_json()
    path = _notebook(tmp_path, [_test_cell("mse", _forged())])
    apply_reports(path, {"mse": report})
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert outputs[-1]["data"]["text/plain"] == "1.0"
    assert "forgot .mean()" in outputs[0]["text"] and "All checks passed" not in outputs[0]["text"]
    assert outputs[1]["data"][REPORT_MIME_TYPE]["score"] == 1.0


def test_a_test_cell_without_a_report_scores_zero(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mae", _forged())])
    apply_reports(path, {"mse": BlankReport("mse", 2.0, [CheckResult("a", True)]).to_json()})
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["error"]
    assert "did not run" in outputs[0]["evalue"]


def test_a_cell_that_raised_keeps_only_its_error(tmp_path):
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="visible test", traceback=[])
    path = _notebook(tmp_path, [_test_cell("mse", [*_forged(), error])])
    apply_reports(path, {"mse": BlankReport("mse", 2.0, [CheckResult("a", True)]).to_json()})
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["error"]


def test_only_autograded_test_cells_are_touched(tmp_path):
    answer = nbformat.v4.new_code_cell("def mse(a, b): ...")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "mse", "locked": False}
    answer.outputs = _forged()
    path = _notebook(tmp_path, [answer])
    assert blank_of(answer) is None
    apply_reports(path, {})
    assert nbformat.read(path, as_version=4).cells[0].outputs == answer.outputs
