"""HTML feedback pages from hand-built grading results, checked as text and rendered in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser import TextOf, chromium, colour_pixels, require_chromium

from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult
from autograder.grading.feedback import (
    NEUTRAL_RUN,
    REFERENCE_COLOUR,
    STUDENT_COLOUR,
    blank_view,
    curves_figure,
    curves_png,
    reference_training_curves,
    without_hidden_tests,
    write_feedback_pages,
)
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult

ASSIGNMENT = "04_mnist_sgd"
HIDDEN_BLOCK = "### BEGIN HIDDEN TESTS\nfrom autograder.checks import check\ncheck('BasicOptim', points=4)\n### END HIDDEN TESTS\n"
SCRIPT_MESSAGE = "forgot .mean() <script>alert('x')</script>"


def curves(epochs: int, start_loss: float, end_accuracy: float) -> dict:
    loss = [start_loss * 0.85**epoch for epoch in range(epochs)]
    accuracy = [end_accuracy - 0.3 * 0.7**epoch for epoch in range(epochs)]
    return {"epochs": epochs, "train_loss": loss, "valid_accuracy_returned": accuracy, "final_accuracy": accuracy[-1]}


STUDENT_CURVES = curves(20, 0.45, 0.968)
REFERENCE_CURVES = curves(20, 0.30, 0.972)


def cell(blank: str, points: float, checks: list[tuple[str, bool, str]], artifacts: dict | None = None) -> CellResult:
    data = BlankReport(blank, points, [CheckResult(*check) for check in checks], artifacts=artifacts or {}).to_json()
    return CellResult(blank, data["score"], points, format_report(BlankReport.from_json(data)), data)


def sample_batch() -> BatchResult:
    graded = SubmissionResult("alice", ASSIGNMENT, Status.GRADED, cells=[
        cell("mnist_loss", 4, [("matches the reference", True, ""), ("has the reference's gradient", True, "")]),
        cell("train_model", 3, [
            ("returns one validation accuracy per epoch", True, ""),
            ("trains linear1 on the MNIST sample to the accuracy the reference reliably reaches", True, ""),
        ], {"curves": STUDENT_CURVES}),
    ])
    partial = SubmissionResult("bob", ASSIGNMENT, Status.TIMEOUT, "the cell test_train_model ran past 120 s", cells=[
        cell("mnist_loss", 4, [
            ("matches the reference on random batches", False, SCRIPT_MESSAGE),
            ("has the reference's gradient", True, ""),
            ("keeps dtype and device", True, ""),
        ]),
        CellResult("BasicOptim", 0.0, 4, "BasicOptim: 0/1 checks passed\n" + HIDDEN_BLOCK + "NameError: name 'BasicOptim' is not defined\n"),
        CellResult("train_model", 0.0, 3, "", None),
    ])
    corrupt = SubmissionResult("carol", ASSIGNMENT, Status.CORRUPT, "04_mnist_sgd.ipynb is not valid JSON <line 3>")
    return BatchResult(ASSIGNMENT, [graded, partial, corrupt])


@pytest.fixture
def pages(tmp_path: Path) -> dict[str, Path]:
    written = write_feedback_pages(sample_batch(), tmp_path / "feedback", REFERENCE_CURVES)
    return {path.parent.parent.name: path for path in written}


def test_one_page_per_student_in_nbgrader_like_layout(pages: dict[str, Path], tmp_path: Path):
    assert pages == {s: tmp_path / "feedback" / s / ASSIGNMENT / "feedback.html" for s in ("alice", "bob", "carol")}


def test_page_shows_assignment_student_total_status_and_checks(pages: dict[str, Path]):
    html = pages["bob"].read_text()
    assert ASSIGNMENT in html and "bob" in html
    assert "2.67/11" in html
    assert "timeout" in html and "the cell test_train_model ran past 120 s" in html
    assert re.search(r"FAIL</span>\s*matches the reference on random batches", html)
    assert re.search(r"PASS</span>\s*keeps dtype and device", html)
    assert "2.67/4 points" in html and "0/4 points" in html and "0/3 points" in html
    assert "NameError: name &#39;BasicOptim&#39; is not defined" in html, "falls back to the cell's output"


def test_graded_page_embeds_the_training_figure(pages: dict[str, Path]):
    html = pages["alice"].read_text()
    assert "7/7" in html
    found = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert found, "the figure is embedded as a base64 PNG"
    image = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    assert image.format == "PNG" and image.width > 400
    assert f"yours {STUDENT_CURVES['final_accuracy']:.4f}" in html
    assert f"reference {REFERENCE_CURVES['final_accuracy']:.4f}" in html


def test_student_text_is_escaped(pages: dict[str, Path]):
    html = pages["bob"].read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "not valid JSON &lt;line 3&gt;" in pages["carol"].read_text()


def test_pages_hold_no_hidden_tests_and_no_external_resources(pages: dict[str, Path]):
    for page in pages.values():
        html = page.read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "from autograder" not in html
        assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)
        assert "<link" not in html and "@import" not in html


def test_ungradable_page_states_status_and_reason(pages: dict[str, Path]):
    html = pages["carol"].read_text()
    assert "corrupt_notebook" in html and "not a readable notebook" in html
    assert "0/11" in html, "out of the assignment's total, taken from the batch"
    assert "<img" not in html


def test_figure_without_reference_draws_the_student_alone(tmp_path: Path):
    batch = sample_batch()
    batch.submissions = batch.submissions[:1]
    (page,) = write_feedback_pages(batch, tmp_path, None)
    html = page.read_text()
    assert "data:image/png;base64," in html and "reference 0." not in html


def test_a_failed_gate_is_explained_on_the_page(tmp_path: Path):
    report = BlankReport("mse", 2, [
        CheckResult("gives the right number on the lesson's small example", False, "forgot .mean()", gate=True),
        CheckResult("leaves its inputs unchanged", True, gate=False),
    ])
    data = report.to_json()
    assert report.score == 0.0 and BlankReport.from_json(data).failed_gates == report.failed_gates
    result = SubmissionResult("dan", ASSIGNMENT, Status.GRADED, cells=[CellResult("mse", 0.0, 2, format_report(report), data)])
    [page] = write_feedback_pages(BatchResult(ASSIGNMENT, [result]), tmp_path / "feedback", None)
    html = page.read_text()
    assert "repeats the notebook's visible test" in html and html.count("repeats the notebook's visible test") == 1


def test_without_hidden_tests_removes_the_block():
    assert without_hidden_tests("a\n" + HIDDEN_BLOCK + "b") == "a\nb"
    assert "check(" not in without_hidden_tests("a\n### BEGIN HIDDEN TESTS\ncheck('x')")


def test_template_ships_in_the_package():
    template = resources.files("autograder.grading").joinpath("templates", "feedback.html")
    assert template.is_file()


def test_figure_uses_the_documented_colours():
    image = Image.open(io.BytesIO(curves_png(STUDENT_CURVES, REFERENCE_CURVES)))
    assert colour_pixels(image, STUDENT_COLOUR) > 300
    assert colour_pixels(image, REFERENCE_COLOUR) > 300


@pytest.mark.real_data
@pytest.mark.mnist_sgd
def test_reference_training_curves_have_one_value_per_epoch(mnist_folder: Path):
    result = reference_training_curves("cpu")
    epochs = result["epochs"]
    assert len(result["train_loss"]) == len(result["valid_accuracy_returned"]) == epochs
    assert result["train_loss"][-1] < result["train_loss"][0]
    assert result["final_accuracy"] > 0.9


def test_page_renders_in_a_browser(pages: dict[str, Path], tmp_path: Path):
    require_chromium()
    page = pages["alice"]
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), f"chromium wrote no screenshot (rc {run.returncode}): {run.stderr[-2000:]}"

    dom = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-dom")
    text = TextOf.of(dom.stdout)
    assert "Total: 7/7 points" in text, text[:500]
    assert "alice" in text and ASSIGNMENT in text
    assert "BEGIN HIDDEN TESTS" not in dom.stdout and "from autograder" not in dom.stdout

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    pixels = np.asarray(image)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"
    assert colour_pixels(image, STUDENT_COLOUR) > 300, "the student's line is not on screen"
    assert colour_pixels(image, REFERENCE_COLOUR) > 300, "the reference's line is not on screen"


VISIBLE_ERROR = "AssertionError: expected 0.690399, got 1.500000 on the lesson's example: did you apply sigmoid to the predictions?"
NAMED_MISTAKE = "forgot sigmoid: your loss equals the reference's on raw predictions"
MISTAKE_BACKGROUND = "#fff4c2"  # the template's highlight behind a failed check's likely mistake


def failed_visible_test_page(tmp_path: Path) -> Path:
    report = BlankReport("mnist_loss", 4, [
        CheckResult("gives the loss of the lesson's example", False, "got 1.500000, expected 0.690399", gate=True),
        CheckResult("matches the reference on random batches", False, NAMED_MISTAKE),
        CheckResult("keeps dtype and device", True),
    ], visible_test_error=VISIBLE_ERROR)
    data = report.to_json()
    result = SubmissionResult("erin", ASSIGNMENT, Status.GRADED, cells=[CellResult("mnist_loss", 0.0, 4, format_report(report), data)])
    [page] = write_feedback_pages(BatchResult(ASSIGNMENT, [result]), tmp_path / "feedback", None)
    return page


def test_a_failed_visible_test_shows_its_error_then_the_checks_with_their_mistakes(tmp_path: Path):
    text = TextOf.of(failed_visible_test_page(tmp_path).read_text())
    assert "Total: 0/4 points" in text
    order = [
        f"The visible test failed: {VISIBLE_ERROR}",
        "The hidden checks say what is likely wrong (1/3 passed):",
        "FAIL gives the loss of the lesson's example got 1.500000, expected 0.690399",
        "This check repeats the notebook's visible test: while it fails, the blank scores 0.",
        f"FAIL matches the reference on random batches {NAMED_MISTAKE}",
        "PASS keeps dtype and device",
    ]
    positions = [text.find(part) for part in order]
    assert -1 not in positions and positions == sorted(positions), list(zip(order, positions))


def test_a_timed_out_cell_says_it_did_not_finish(tmp_path: Path):
    report = BlankReport("mse", 2, [CheckResult("a", False, "forgot .mean()")], visible_test_error="CellTimeoutError: after 300 s")
    view = blank_view(CellResult("mse", 0.0, 2, "", report.to_json()), True)
    assert view.failure == "The cell did not finish: CellTimeoutError: after 300 s"


def test_the_named_mistake_of_a_failed_visible_test_is_on_screen(tmp_path: Path):
    require_chromium()
    page = failed_visible_test_page(tmp_path)
    shot = tmp_path / "mistake.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1000,700", page.as_uri()], tmp_path / "profile-mistake")
    assert shot.is_file(), f"chromium wrote no screenshot (rc {run.returncode}): {run.stderr[-2000:]}"
    dom = TextOf.of(chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-mistake-dom").stdout)
    assert NAMED_MISTAKE in dom and f"The visible test failed: {VISIBLE_ERROR}" in dom
    image = Image.open(shot).convert("RGB")
    assert colour_pixels(image, MISTAKE_BACKGROUND, tolerance=6) > 2000, "no highlighted mistake line in the first screen"
    plain = Image.open(shot).convert("RGB").crop((0, 0, 1000, 120))
    assert colour_pixels(plain, MISTAKE_BACKGROUND, tolerance=6) == 0, "the highlight is the mistake line's, not the header's"


FEEDBACK_RUN = "Your train_model trained linear1 for 3 epochs at lr 1 with the reference mnist_loss; the loss panel scores its predictions with your mnist_loss and the reference's"


def test_the_figure_says_what_run_it_shows_and_labels_the_students_loss(tmp_path: Path):
    same_data = [value * 0.5 for value in STUDENT_CURVES["train_loss"]]
    student = {**STUDENT_CURVES, "run": FEEDBACK_RUN, "loss_name": "your mnist_loss", "lr": 1.0, "reference_loss": same_data}
    reference = {**REFERENCE_CURVES, "run": "the reference train_model with the reference mnist_loss", "loss_name": "the reference mnist_loss"}
    figure = curves_figure(student, reference)
    labels = [[text.get_text() for text in axes.get_legend().get_texts()] for axes in figure.axes]
    assert labels == [
        ["reference run", "reference mnist_loss on your run", "your mnist_loss on your run"],
        ["reference run", "your train_model"],
    ]
    dotted = [line for line in figure.axes[0].get_lines() if line.get_label() == "reference mnist_loss on your run"]
    assert list(dotted[0].get_ydata()) == same_data, "the reference loss on the student's predictions is drawn as recorded"
    batch = BatchResult(ASSIGNMENT, [SubmissionResult("fay", ASSIGNMENT, Status.GRADED, cells=[
        cell("train_model", 3, [("trains linear1", True, "")], {"curves": student}),
    ])])
    [page] = write_feedback_pages(batch, tmp_path, reference)
    assert f"What this shows: {FEEDBACK_RUN}" in TextOf.of(page.read_text())


def test_curves_recorded_without_a_run_still_render_with_a_neutral_sentence(tmp_path: Path):
    figure = curves_figure(STUDENT_CURVES, REFERENCE_CURVES)
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()][-1] == "your train_model"
    [page] = write_feedback_pages(sample_batch(), tmp_path, REFERENCE_CURVES)[:1]
    text = TextOf.of(page.read_text())
    assert f"What this shows: {NEUTRAL_RUN}" in text and "data:image/png;base64," in page.read_text()


def test_reference_curves_come_from_the_calibrated_run_of_the_reference(monkeypatch):
    from autograder.checks import data as check_data
    from autograder.checks import training_curves
    from autograder.reference import mnist_sgd as ref

    calls = []
    monkeypatch.setattr(check_data, "real_sample", lambda device: f"sample on {device}")
    monkeypatch.setattr(training_curves, "feedback_curves", lambda *args: calls.append(args) or {"run": "ran"})
    assert reference_training_curves("cpu") == {"run": "ran"}
    assert calls == [("sample on cpu", torch.device("cpu"), ref.train_model, ref.mnist_loss)]
