"""A blank whose visible test fails scores 0 everywhere, and every place still names its likely mistake.

Each test builds a graded test cell as hardened grading leaves it (``apply_reports``) or as plain
``nbgrader autograde`` leaves it (the kernel's ``check`` printed the report, then the visible assert raised),
reads it back as the pipeline does (``record._test_cell_outputs``, nbgrader's ``determine_grade``), and looks
at the CellResult, the exports, the summary and the feedback page.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import determine_grade
from rich.console import Console

from browser import TextOf

from autograder.checks import REPORT_MIME_TYPE
from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult
from autograder.gradescope.results import gradescope_results
from autograder.grading.exports import grade_rows
from autograder.grading.feedback import blank_view, render_page, page_view
from autograder.grading.record import _test_cell_outputs
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult
from autograder.grading.sandbox.trusted_outputs import apply_reports
from autograder.grading.summary import summary

ASSIGNMENT = "04_mnist_sgd"
VISIBLE_ERROR = "expected 0.690399, got 1.500000 on the lesson's example: did you apply sigmoid to the predictions?"
ERROR_LINE = f"AssertionError: {VISIBLE_ERROR}"
MISTAKE = "forgot sigmoid: your loss equals the reference's on raw predictions, not on probabilities"
REPORT = BlankReport("mnist_loss", 4.0, [
    CheckResult("gives the loss of the lesson's example", True, gate=True),
    CheckResult("matches the reference on random batches", False, MISTAKE),
    CheckResult("keeps dtype and device", True),
])


def _test_cell(outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell('check("mnist_loss", points=4, mnist_loss=mnist_loss)', execution_count=7)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "test_mnist_loss", "points": 4}
    cell.outputs = outputs
    return cell


def _error() -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=VISIBLE_ERROR, traceback=[ERROR_LINE])


def _kernel_outputs() -> list:
    """What the kernel's ``check`` leaves before the visible assert raises: its printed lines and its report."""
    return [
        nbformat.v4.new_output("stream", name="stdout", text=format_report(REPORT) + "\n"),
        nbformat.v4.new_output("display_data", data={REPORT_MIME_TYPE: REPORT.to_json()}),
        _error(),
    ]


def _read_back(path: Path) -> CellResult:
    """The cell as the pipeline records it: nbgrader's score, the extracted text and report."""
    nb = nbformat.read(path, as_version=4)
    score, max_score = determine_grade(nb.cells[0])
    text, report = _test_cell_outputs(path)["test_mnist_loss"]
    return CellResult("mnist_loss", float(score), max_score, text, report)


def _graded(tmp_path: Path, hardened: bool) -> CellResult:
    path = tmp_path / ("hardened.ipynb" if hardened else "plain.ipynb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [_test_cell(_kernel_outputs())]
    nbformat.write(nb, path)
    if hardened:
        apply_reports(path, {"mnist_loss": REPORT.to_json()})
    return _read_back(path)


@pytest.fixture(params=[True, False], ids=["hardened", "plain_nbgrader"])
def graded(request, tmp_path: Path) -> CellResult:
    return _graded(tmp_path, request.param)


def _submission(cell: CellResult) -> SubmissionResult:
    return SubmissionResult("erin", ASSIGNMENT, Status.GRADED, cells=[cell])


def test_the_cell_scores_zero_and_its_report_says_the_visible_test_failed(graded: CellResult):
    assert REPORT.score == pytest.approx(2.67), "without the error, the checks alone would earn points"
    assert graded.score == 0.0
    report = graded.blank_report()
    assert report is not None and report.score == 0.0
    assert report.visible_test_error == ERROR_LINE
    assert [r.message for r in report.results if not r.passed] == [MISTAKE]


def test_the_exports_show_zero_the_error_line_and_the_mistake(graded: CellResult):
    batch = BatchResult(ASSIGNMENT, [_submission(graded)])
    _, rows = grade_rows(batch)
    assert float(rows[0]["mnist_loss"]) == 0.0 and float(rows[0]["score"]) == 0.0
    [test] = gradescope_results(batch.submissions[0])["tests"]
    assert test["score"] == 0.0
    assert test["output"].splitlines() == [
        f"mnist_loss: 0/4 points: the visible test failed: {ERROR_LINE}",
        "  the hidden checks say what is likely wrong (2/3 passed):",
        f"  FAIL matches the reference on random batches: {MISTAKE}",
        "  PASS gives the loss of the lesson's example",
        "  PASS keeps dtype and device",
    ]


def test_the_summary_shows_zero_and_no_pass(graded: CellResult):
    batch = BatchResult(ASSIGNMENT, [_submission(graded)])
    console = Console(width=200, record=True)
    console.print(summary(batch))
    text = console.export_text()
    assert "0/4" in text and "2.67" not in text
    assert batch.pass_rates() == {"mnist_loss": 0.0}


def test_the_feedback_page_shows_the_error_line_then_the_named_mistake(graded: CellResult):
    text = TextOf.of(render_page(page_view(_submission(graded))))
    assert "Total: 0/4 points" in text and "0/4 points" in text
    failure = text.index(f"The visible test failed: {ERROR_LINE}")
    verdict = text.index("The hidden checks say what is likely wrong (2/3 passed):")
    mistake = text.index(f"FAIL matches the reference on random batches {MISTAKE}")
    assert failure < verdict < mistake < text.index("PASS keeps dtype and device")


def test_hardened_and_plain_nbgrader_give_the_same_page(tmp_path: Path):
    hardened, plain = _graded(tmp_path, True), _graded(tmp_path, False)
    assert blank_view(hardened, True) == blank_view(plain, True)
    assert render_page(page_view(_submission(hardened))) == render_page(page_view(_submission(plain)))


def test_a_gate_that_fails_without_an_error_is_not_called_a_failed_visible_test():
    report = BlankReport("mse", 2.0, [CheckResult("gives the right number on the lesson's small example", False, "forgot .mean()", gate=True)])
    cell = CellResult("mse", 0.0, 2.0, format_report(report) + "\n", report.to_json())
    assert cell.blank_report().visible_test_error == ""
    view = blank_view(cell, True)
    assert view.failure == "" and view.checks[0].gate
