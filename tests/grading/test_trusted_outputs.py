"""Test cells are scored from the trusted checker's reports, never from what the kernel printed or returned."""

from __future__ import annotations

import nbformat
import pytest
from nbgrader.utils import determine_grade

from autograder.checks import REPORT_MIME_TYPE
from autograder.checks.results import BlankReport, CheckResult
from autograder.grading.sandbox.trusted_outputs import apply_reports, blank_of


def _test_cell(blank: str, outputs: list, points: float = 2) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(f'check("{blank}", points={points}, {blank}={blank})')
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": f"test_{blank}", "points": points}
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


VISIBLE_ERROR = "expected 0.690399, got 1.500000 on the lesson's example: did you apply sigmoid to the predictions?"


def _failing_report() -> dict:
    """Two of three checks pass: without the visible test's error, this report would earn 2.67 of 4 points."""
    return BlankReport("mnist_loss", 4.0, [
        CheckResult("gives the loss of the lesson's example", True, gate=True),
        CheckResult("matches the reference on random batches", False, "forgot sigmoid: the loss of raw predictions"),
        CheckResult("keeps dtype and device", True),
    ]).to_json()


def _raised(ename: str = "AssertionError", evalue: str = VISIBLE_ERROR) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _graded(path) -> nbformat.NotebookNode:
    """The notebook's first cell as nbgrader scores it."""
    return nbformat.read(path, as_version=4).cells[0]


def test_a_cell_that_raised_shows_the_report_lines_the_report_and_the_error_last(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mnist_loss", points=4, outputs=[*_forged(), _raised()])])
    apply_reports(path, {"mnist_loss": _failing_report()})
    outputs = _graded(path).outputs
    assert [o["output_type"] for o in outputs] == ["stream", "display_data", "error"]
    assert outputs[0]["text"].splitlines() == [
        f"mnist_loss: 0/4 points: the visible test failed: AssertionError: {VISIBLE_ERROR}",
        "  the hidden checks say what is likely wrong (2/3 passed):",
        "  FAIL matches the reference on random batches: forgot sigmoid: the loss of raw predictions",
        "  PASS gives the loss of the lesson's example",
        "  PASS keeps dtype and device",
    ]
    report = outputs[1]["data"][REPORT_MIME_TYPE]
    assert report["score"] == 0.0 and report["visible_test_error"] == f"AssertionError: {VISIBLE_ERROR}"
    assert (outputs[2]["ename"], outputs[2]["evalue"]) == ("AssertionError", VISIBLE_ERROR)
    assert "All checks passed" not in outputs[0]["text"], "nothing the kernel printed is kept"


def test_a_cell_that_raised_scores_zero_in_nbgrader_although_its_checks_earn_points(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mnist_loss", points=4, outputs=[*_forged(), _raised()])])
    apply_reports(path, {"mnist_loss": _failing_report()})
    assert BlankReport.from_json(_failing_report()).score == pytest.approx(2.67)
    assert determine_grade(_graded(path)) == (0, 4.0)


def test_a_cell_that_timed_out_says_it_did_not_finish(tmp_path):
    error = _raised("CellTimeoutError", "A cell timed out while it was being executed, after 300 seconds.")
    path = _notebook(tmp_path, [_test_cell("mnist_loss", points=4, outputs=[error])])
    apply_reports(path, {"mnist_loss": _failing_report()})
    outputs = _graded(path).outputs
    assert outputs[0]["text"].startswith(
        "mnist_loss: 0/4 points: the cell did not finish: CellTimeoutError: A cell timed out while it was being executed"
    )
    assert outputs[-1]["ename"] == "CellTimeoutError" and determine_grade(_graded(path))[0] == 0


def test_an_interrupted_cell_says_it_did_not_finish(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mnist_loss", points=4, outputs=[_raised("KeyboardInterrupt", "")])])
    apply_reports(path, {"mnist_loss": _failing_report()})
    assert _graded(path).outputs[0]["text"].startswith("mnist_loss: 0/4 points: the cell did not finish: KeyboardInterrupt\n")


def test_a_cell_that_raised_without_a_report_keeps_only_its_error(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mse", [*_forged(), _raised()])])
    apply_reports(path, {"mae": BlankReport("mae", 2.0, [CheckResult("a", True)]).to_json()})
    outputs = _graded(path).outputs
    assert [o["output_type"] for o in outputs] == ["error"] and outputs[0]["evalue"] == VISIBLE_ERROR
    assert determine_grade(_graded(path))[0] == 0


def test_a_cell_that_passed_keeps_the_report_and_its_partial_score(tmp_path):
    path = _notebook(tmp_path, [_test_cell("mnist_loss", points=4, outputs=_forged())])
    apply_reports(path, {"mnist_loss": _failing_report()})
    outputs = _graded(path).outputs
    assert [o["output_type"] for o in outputs] == ["stream", "display_data", "execute_result"]
    assert outputs[0]["text"].startswith("mnist_loss: 2/3 checks passed (2.67/4 points)\n")
    assert outputs[1]["data"][REPORT_MIME_TYPE]["visible_test_error"] == ""
    assert determine_grade(_graded(path))[0] == pytest.approx(2.67)


def test_only_autograded_test_cells_are_touched(tmp_path):
    answer = nbformat.v4.new_code_cell("def mse(a, b): ...")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "mse", "locked": False}
    answer.outputs = _forged()
    path = _notebook(tmp_path, [answer])
    assert blank_of(answer) is None
    apply_reports(path, {})
    assert nbformat.read(path, as_version=4).cells[0].outputs == answer.outputs
