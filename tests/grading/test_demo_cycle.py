"""`autograder demo`: the whole instructor cycle on demo submissions, checked as a person would look at it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from browser import TextOf, chromium, colour_pixels, require_chromium
from click.testing import CliRunner
from PIL import Image

from autograder import cli
from autograder.gradescope.results import gradescope_results
from autograder.grading.demo import WRONG_SNIPPETS
from autograder.grading.feedback import REFERENCE_COLOUR, STUDENT_COLOUR
from autograder.grading.results import load_results

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]
ASSIGNMENT = "04_mnist_sgd"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, mnist_folder) -> tuple[Path, str]:
    into = tmp_path_factory.mktemp("demo") / "course"
    result = CliRunner().invoke(cli.main, ["demo", "--into", str(into), "-j", "2"])
    return into, result.output if result.exit_code == 0 else pytest.fail(f"demo failed ({result.exit_code}):\n{result.output[-3000:]}")


def rows(demo_course: Path) -> dict[str, dict]:
    with open(demo_course / "exports" / ASSIGNMENT / "grades.csv", newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def test_demo_students_get_the_expected_statuses(demo):
    grades = rows(demo[0])
    assert grades["ada"]["status"] == "graded" and float(grades["ada"]["score"]) == 20.0
    assert grades["alan"]["status"] == "graded" and float(grades["alan"]["score"]) == 0.0
    assert grades["barbara"]["status"] == "corrupt_notebook" and grades["barbara"]["reason"]
    assert grades["edsger"]["status"] == "timeout" and "test_sigmoid" in grades["edsger"]["reason"]
    assert grades["grace"]["status"] == "graded" and 0 < float(grades["grace"]["score"]) < 20


def test_demo_prints_the_summary(demo):
    output = demo[1]
    for words in ("ada", "barbara", "corrupt_notebook", "pass rate", "mnist_loss", "feedback"):
        assert words in output


def test_the_demo_exports_the_grades_csv_alone(demo):
    assert [p.name for p in (demo[0] / "exports" / ASSIGNMENT).iterdir()] == ["grades.csv"]
    assert f"exports:{demo[0] / 'exports' / ASSIGNMENT / 'grades.csv'};" in "".join(demo[1].split()), "the demo prints the CSV's path"


def test_gradescope_results_follow_the_format(demo):
    [grace] = [result for result in load_results(demo[0], ASSIGNMENT).submissions if result.student == "grace"]
    results = gradescope_results(grace)
    assert results["score"] == sum(test["score"] for test in results["tests"])
    assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])


def test_feedback_page_shows_scores_and_plot_without_hidden_tests(demo, tmp_path):
    require_chromium()
    page = demo[0] / "feedback" / "ada" / ASSIGNMENT / "feedback.html"
    shot = tmp_path / "ada.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), run.stderr[-2000:]
    text = TextOf.of(chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-dom").stdout)
    assert "Total: 20/20 points" in text and "ada" in text
    assert "mnist_loss" in text and "PASS" in text
    image = Image.open(shot).convert("RGB")
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"
    assert colour_pixels(image, STUDENT_COLOUR) > 300 and colour_pixels(image, REFERENCE_COLOUR) > 100
    for student_page in (demo[0] / "feedback").glob(f"*/{ASSIGNMENT}/feedback.html"):
        html = student_page.read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "from autograder" not in html and "check(" not in html


def test_demo_writes_the_class_report_with_each_students_mistakes(demo):
    page = demo[0] / "reports" / ASSIGNMENT / "index.html"
    assert f"classreport:{page}" in "".join(demo[1].split()), "the demo prints the report's path (wrapped at the terminal's width)"
    data = json.loads((demo[0] / "reports" / ASSIGNMENT / "report.json").read_text())
    assert data["statuses"] == {"graded": 3, "corrupt_notebook": 1, "timeout": 1}
    by_blank = {blank["blank"]: blank for blank in data["blanks"]}
    untouched = [m for m in by_blank["sigmoid"]["mistakes"] if "alan" in m["students"]]
    assert [m["mistake"] for m in untouched] == ["not implemented yet (sigmoid: replace this line with your code)"]
    wrong = {blank for blank, found in by_blank.items() for m in found["mistakes"] if "grace" in m["students"]}
    assert wrong == set(WRONG_SNIPPETS[ASSIGNMENT]), "grace's wrong blanks, each with a named mistake"
    assert [m["mistake"] for m in by_blank["sigmoid"]["unrecognised"]] == ["the test cell did not finish (KeyboardInterrupt)"]
    assert by_blank["sigmoid"]["unrecognised"][0]["students"] == ["edsger"]
    assert all("ada" not in m["students"] for b in data["blanks"] for m in b["mistakes"] + b["unrecognised"])
