"""The class report (``autograder report``): which mistakes the class made, blank by blank, from recorded results.

The main proof is a synthetic class of 200 ``04_mnist_sgd`` submissions built from the mutant catalog
(``synthetic_class.py``): every mutant handed to one to four students must come back as a named mistake of its
blank with exactly those students among the ones counted, and no student who handed in the reference may be
counted anywhere.
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from browser import TextOf, chromium, colour_pixels, require_chromium
from click.testing import CliRunner
from PIL import Image
from synthetic_class import POINTS, catalog_reports, synthetic_class

from autograder import cli
from autograder.checks.results import BlankReport, CheckResult
from autograder.grading.class_insights import class_insights, cluster_key, named_mistake
from autograder.grading.class_report import BAR_COLOUR, CSV_COLUMNS, feedback_link, write_class_report
from autograder.grading.pipeline import results_folder
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult

pytestmark = [pytest.mark.mnist_sgd]
ASSIGNMENT = "04_mnist_sgd"


@pytest.mark.parametrize("message, name", [
    ("forgot to apply sigmoid: squash the predictions into (0, 1) first", "forgot to apply sigmoid"),
    ("applied sigmoid twice (on the visible test's example)", "applied sigmoid twice"),
    ("the function changed its input x in place; compute a new tensor instead", "the function changed its input x in place"),
    ("called opt.step() 1 times for 4 batches: step once per batch, inside the loop", "called opt.step() 1 times for 4 batches"),
    ("weights.grad differs from the reference at 784 of 784 elements: largest difference 0.7", None),
    ("your code raised RuntimeError: mat1 and mat2 shapes cannot be multiplied", None),
    ("the loss returned by calc_grad: expected 0.693147, got 0.5 (on the visible test's example)", None),
    ("validation accuracy 0.5044 after 3 epochs is below 0.9219, which the reference always reaches: check the loop", None),
    ("not implemented yet (sigmoid: replace this line with your code): replace the `raise NotImplementedError` line",
     "not implemented yet (sigmoid: replace this line with your code)"),
    ("", None),
])
def test_a_message_names_the_mistake_before_its_advice(message, name):
    assert named_mistake(message) == name


def _cell(blank: str, points: float, *failed: str, passed: int = 1) -> CellResult:
    results = [CheckResult(f"check {i}", True) for i in range(passed)] + [CheckResult(f"check of {blank}", False, m) for m in failed]
    report = BlankReport(blank, points, results)
    return CellResult(blank, report.score, points, "", report.to_json())


def _result(student: str, *cells: CellResult, status: Status = Status.GRADED) -> SubmissionResult:
    return SubmissionResult(student, ASSIGNMENT, status, cells=list(cells))


def test_unrecognised_failures_cluster_by_their_text_numbers_aside():
    batch = BatchResult(ASSIGNMENT, [
        _result("ann", _cell("sigmoid", 2, "the result differs from the reference at 3 of 6 elements: largest difference 0.1")),
        _result("bob", _cell("sigmoid", 2, "the result differs from the reference at 5 of 6 elements: largest difference 0.4")),
        _result("cid", _cell("sigmoid", 2, "your code raised KeyError: 'x'")),
        _result("dee", _cell("sigmoid", 2, "wrong sign inside exp: sigmoid is 1 / (1 + exp(-x))",
                             "the gradient with respect to x differs from the reference at 6 of 6 elements")),
        _result("eve", _cell("sigmoid", 2)),
    ])
    [blank] = class_insights(batch).blanks
    assert [(m.mistake, m.students) for m in blank.mistakes] == [("wrong sign inside exp", ["dee"])]
    clusters = {m.mistake: m.students for m in blank.unrecognised}
    assert clusters == {
        cluster_key("check of sigmoid: the result differs from the reference at 3 of 6 elements: largest difference 0.1"): ["ann", "bob"],
        "check of sigmoid: your code raised KeyError: 'x'": ["cid"],
    }, "dee's unnamed gradient failure is explained by the named mistake beside it"
    assert blank.unrecognised[0].share == pytest.approx(2 / 5) and blank.pass_rate == pytest.approx(1 / 5)


def test_statuses_and_scores_count_every_submission_blanks_only_the_gradable():
    batch = BatchResult(ASSIGNMENT, [
        _result("ann", _cell("sigmoid", 2), _cell("mnist_loss", 4, "forgot .mean(): this returns the sum")),
        _result("bob", status=Status.CORRUPT),
        _result("cid", _cell("sigmoid", 2, "used tanh: sigmoid is 1 / (1 + exp(-x))"), _cell("mnist_loss", 4, "forgot .mean(): x"),
                status=Status.TIMEOUT),
    ])
    insights = class_insights(batch)
    assert (insights.submissions, insights.gradable) == (3, 2)
    assert insights.statuses == {"graded": 1, "corrupt_notebook": 1, "timeout": 1}
    assert insights.scores == [4.0, 0.0, 3.0] and insights.max_score == 6  # one check of two passed: half the points
    loss = insights.blanks[1]
    assert loss.mistakes[0].students == ["ann", "cid"] and loss.mistakes[0].share == 1.0
    assert insights.lost_together["sigmoid"]["mnist_loss"] == 1 and insights.lost_together["mnist_loss"]["mnist_loss"] == 2
    assert [(p.first, p.second, p.both, p.given_first) for p in insights.pairs] == [("sigmoid", "mnist_loss", 1, 1.0)]


def test_a_blank_whose_checks_did_not_run_is_unrecognised_with_the_reason():
    report = BlankReport("train_model", 3, error="the MNIST sample is not provisioned")
    cell = CellResult("train_model", 0.0, 3, "", report.to_json())
    [blank] = class_insights(BatchResult(ASSIGNMENT, [_result("ann", cell)])).blanks
    assert blank.unrecognised[0].mistake == "the hidden checks did not run: the MNIST sample is not provisioned"


def test_one_student_and_no_student_render(tmp_path):
    written = write_class_report(BatchResult(ASSIGNMENT, [_result("ann", _cell("sigmoid", 2))]), tmp_path)
    text = TextOf.of(written.page.read_text())
    assert "1 submission(s), 1 graded" in text and "No mistakes found." in text
    empty = write_class_report(BatchResult(ASSIGNMENT, []), tmp_path / "empty")
    assert "0 submission(s)" in TextOf.of(empty.page.read_text())


def test_what_a_submission_wrote_is_escaped(tmp_path):
    hostile = "<script>alert(1)</script>: advice"
    written = write_class_report(BatchResult(ASSIGNMENT, [_result("<b>x</b>", _cell("sigmoid", 2, hostile))]), tmp_path)
    html = written.page.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html


# ------------------------------------------------------------------ the synthetic class of 200


@pytest.fixture(scope="module")
def reports(mnist_folder):
    return catalog_reports()


@pytest.fixture(scope="module")
def klass(reports):
    return synthetic_class(*reports, size=200)


def _mistake_keys(report: BlankReport, expect: str) -> set[str]:
    """The keys of the named mistakes in ``report``'s failed messages that hold the mutant's own words."""
    return {cluster_key(name) for check in report.failed if expect in check.message and (name := named_mistake(check.message))}


def test_the_ranked_mistakes_match_the_mutants_handed_out(reports, klass):
    _, mutants = reports
    insights = class_insights(klass.batch)
    by_blank = {blank.blank: blank for blank in insights.blanks}
    handed = {student for handout in klass.handouts for student in handout.students}
    for handout in klass.handouts:
        keys = _mistake_keys(mutants[handout.id][2], handout.expect)
        assert keys, f"{handout.id}: no failed check names {handout.expect!r}"
        listed = [m for m in by_blank[handout.blank].mistakes if cluster_key(m.mistake) in keys]
        assert listed and all(set(handout.students) <= set(m.students) for m in listed), (handout, listed)
    for blank in insights.blanks:
        counts = [len(m.students) for m in blank.mistakes]
        assert counts == sorted(counts, reverse=True), f"{blank.blank} is not ranked by count"
        for mistake in [*blank.mistakes, *blank.unrecognised]:
            assert set(mistake.students) <= handed, f"a student who handed in the reference is counted under {mistake.mistake!r}"
            assert mistake.share == pytest.approx(len(mistake.students) / 200)
    top = by_blank["mnist_loss"].mistakes[0]
    given = Counter(h.expect for h in klass.handouts if h.blank == "mnist_loss" for _ in h.students)
    assert top.mistake == "forgot to apply sigmoid" and len(top.students) == given["forgot to apply sigmoid"]


def test_mistakes_of_two_blanks_go_together(klass):
    insights = class_insights(klass.batch)
    doubles = [p for p in insights.pairs if (p.first, p.second) == ("mnist_loss", "train_model")]
    assert doubles and doubles[0].both >= 6


def test_the_class_accuracies_are_plotted_against_the_bar(klass):
    [strip] = class_insights(klass.batch).accuracies
    assert strip.blank == "train_model" and len(strip.accuracies) == 200
    assert 0 < strip.below < 200 and all(a >= strip.threshold for a in strip.accuracies[-20:])


def test_csv_and_json_hold_the_same_counts(klass, tmp_path):
    written = write_class_report(klass.batch, tmp_path)
    insights = class_insights(klass.batch)
    with open(written.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = [(m.blank, m.mistake, str(len(m.students))) for b in insights.blanks for m in [*b.mistakes, *b.unrecognised]]
    assert [(r["blank"], r["mistake"], r["students"]) for r in rows] == expected
    assert all(len(r["student_ids"].split()) == int(r["students"]) for r in rows)
    data = json.loads(written.json.read_text())
    assert data["submissions"] == 200 and [b["blank"] for b in data["blanks"]] == list(POINTS)
    assert data["blanks"][1]["mistakes"][0]["students"] == insights.blanks[1].mistakes[0].students


def test_the_page_shows_every_section_in_a_browser(klass, tmp_path):
    require_chromium()
    written = write_class_report(klass.batch, tmp_path / "course")
    shot = tmp_path / "class-report.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1200,2400", written.page.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), f"chromium wrote no screenshot (rc {run.returncode}): {run.stderr[-2000:]}"
    dom = chromium(["--dump-dom", written.page.as_uri()], tmp_path / "profile-dom").stdout
    text = TextOf.of(dom)
    insights = class_insights(klass.batch)
    assert "200 submission(s), 200 graded" in text
    for heading in ("Statuses", "Blanks", "Named mistakes, most frequent first", "Blanks lost together", "train_model: final accuracies"):
        assert heading in text
    top = insights.blanks[1].mistakes[0]
    assert f"{top.mistake} e.g. {top.example}" in text
    assert f'href="{feedback_link(top.students[0], ASSIGNMENT)}"' in dom
    assert f"{insights.accuracies[0].below} below the calibrated bar" in text
    image = Image.open(shot).convert("RGB")
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"
    assert colour_pixels(image, BAR_COLOUR) > 500, "no histogram bars in the screenshot"


def test_the_report_command_reads_the_recorded_results(klass, tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "source").mkdir()
    for result in klass.batch.submissions[:30]:
        result.save(results_folder(tmp_path, ASSIGNMENT) / f"{result.student}.json")
    run = CliRunner().invoke(cli.main, ["report", ASSIGNMENT, "--course", str(tmp_path)])
    assert run.exit_code == 0, run.output
    data = json.loads((tmp_path / "reports" / ASSIGNMENT / "report.json").read_text())
    assert data["submissions"] == 30
    missing = CliRunner().invoke(cli.main, ["report", "01_gradient_descent", "--course", str(tmp_path)])
    assert missing.exit_code != 0 and "run `autograder grade 01_gradient_descent` first" in missing.output


def test_a_cell_cut_short_is_one_unrecognised_cluster_not_one_per_check():
    report = BlankReport("sigmoid", 2, [CheckResult("gives 0.5 at 0", False, "your code raised ChannelError: interrupted"),
                                        CheckResult("has the reference's gradient", False, "your code raised ChannelError: x")],
                         visible_test_error="KeyboardInterrupt")
    cell = CellResult("sigmoid", 0.0, 2, "", report.to_json())
    [blank] = class_insights(BatchResult(ASSIGNMENT, [_result("ann", cell)])).blanks
    assert [(m.mistake, m.students) for m in blank.unrecognised] == [("the test cell did not finish (KeyboardInterrupt)", ["ann"])]


def test_a_visible_test_that_failed_while_every_check_passed_is_unrecognised():
    report = BlankReport("sigmoid", 2, [CheckResult("gives 0.5 at 0", True)], visible_test_error="AssertionError: x is 3")
    cell = CellResult("sigmoid", 0.0, 2, "", report.to_json())
    [blank] = class_insights(BatchResult(ASSIGNMENT, [_result("ann", cell)])).blanks
    assert [m.mistake for m in blank.unrecognised] == ["the visible test failed though every hidden check passed: AssertionError: x is #"]
