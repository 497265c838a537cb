"""The lines under a test cell: what the first line says in each case, one line per check, failures first."""

from __future__ import annotations

from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult, with_visible_test_error

ERROR = "AssertionError: expected 0.690399, got 1.500000 on the lesson's example: did you apply sigmoid to the predictions?"
CHECKS = [
    CheckResult("keeps dtype and device", True),
    CheckResult("gives the loss of the lesson's example", False, "got 1.500000, expected 0.690399: forgot sigmoid", gate=True),
    CheckResult("matches the reference on random batches", False, "forgot sigmoid: the loss of raw predictions"),
]


def test_a_failed_visible_test_comes_first_then_the_named_mistakes():
    report = BlankReport("mnist_loss", 4, CHECKS, visible_test_error=ERROR)
    assert report.score == 0.0
    assert format_report(report).splitlines() == [
        f"mnist_loss: 0/4 points: the visible test failed: {ERROR}",
        "  the hidden checks say what is likely wrong (1/3 passed; * repeats the visible test):",
        "  FAIL* gives the loss of the lesson's example: got 1.500000, expected 0.690399: forgot sigmoid",
        "  FAIL matches the reference on random batches: forgot sigmoid: the loss of raw predictions",
        "  PASS keeps dtype and device",
    ]


def test_a_failed_visible_test_whose_checks_all_pass_says_so():
    report = BlankReport("mse", 2, [CheckResult("a", True)], visible_test_error="AssertionError: tampered")
    assert format_report(report).splitlines() == [
        "mse: 0/2 points: the visible test failed: AssertionError: tampered",
        "  the hidden checks found no mistake (1/1 passed):",
        "  PASS a",
    ]


def test_a_failed_gate_without_a_visible_error_is_its_own_line():
    lines = format_report(BlankReport("mnist_loss", 4, CHECKS)).splitlines()
    assert lines[:2] == [
        "mnist_loss: 1/3 checks passed (0/4 points)",
        "  0 points: a hidden check that repeats the visible test exactly (marked *) failed; fix it first",
    ]
    assert "the visible test failed" not in "\n".join(lines)


def test_partial_credit_lines_are_unchanged_but_failures_come_first():
    report = BlankReport("mse", 2, [CheckResult("a", True), CheckResult("b", False, "forgot .mean()")])
    assert format_report(report).splitlines() == ["mse: 1/2 checks passed (1/2 points)", "  FAIL b: forgot .mean()", "  PASS a"]


def test_the_checks_could_not_run_line_is_unchanged():
    assert format_report(BlankReport("mse", 2, error="boom")) == "mse: the checks could not run: boom (0/2 points)"


def test_a_check_message_over_several_lines_is_shown_on_one():
    report = BlankReport("mse", 2, [CheckResult("b", False, "forgot .mean():\n  got 3.0\n  expected 1.5")])
    assert format_report(report).splitlines()[1] == "  FAIL b: forgot .mean(): got 3.0 expected 1.5"


def test_json_keeps_the_visible_test_error_and_old_json_still_loads():
    report = BlankReport("mnist_loss", 4, CHECKS, visible_test_error=ERROR)
    data = report.to_json()
    assert data["score"] == 0.0 and data["visible_test_error"] == ERROR
    assert BlankReport.from_json(data) == report
    old = {key: value for key, value in BlankReport("mse", 2, [CheckResult("a", True)]).to_json().items() if key != "visible_test_error"}
    loaded = BlankReport.from_json(old)
    assert loaded.visible_test_error == "" and loaded.score == 2.0


def test_with_visible_test_error_zeroes_the_score_and_keeps_one_line():
    data = with_visible_test_error(BlankReport("mse", 2, [CheckResult("a", True)]).to_json(), "AssertionError: a\n  b")
    assert data["score"] == 0.0 and data["visible_test_error"] == "AssertionError: a b"
