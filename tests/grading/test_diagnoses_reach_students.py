"""The named mistake reaches the student when a blank's visible test fails: under the failing test in Jupyter,
in the graded notebook and on the feedback page (rendered in headless Chromium), while the blank scores 0.

Five hand-made submissions, each with one realistic slip that its visible test catches, graded through the CLI
(``grade`` then ``feedback``), as an instructor would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
from browser import TextOf, chromium, require_chromium
from PIL import Image

from autograder.course import scratch_course
from autograder.grading.demo import fill, solution_snippets

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.notebooks, pytest.mark.real_data]


@dataclass(frozen=True)
class Slip:
    """One hand-made submission: a student who made one mistake in one blank.

    Attributes:
        student: the student's id (names the mistake).
        assignment: the assignment.
        blank: the blank with the mistake.
        answer: the student's whole answer cell.
        hint: words of the hint under the failing visible test, in Jupyter and in the graded notebook.
        named: words of the hidden checks' named mistake, in the graded notebook and on the feedback page.
    """

    student: str
    assignment: str
    blank: str
    answer: str
    hint: str
    named: str


SLIPS = (
    Slip(
        "mse_without_mean", "01_gradient_descent", "mse",
        "def mse(preds, acts):\n    return ((preds - acts) ** 2).sum()",
        hint="did you forget .mean()", named="forgot .mean()",
    ),
    Slip(
        "loss_without_sigmoid", "04_mnist_sgd", "mnist_loss",
        "def mnist_loss(predictions, targets):\n    return torch.where(targets == 1, 1 - predictions, predictions).mean()",
        hint="did you apply sigmoid to the predictions?", named="forgot to apply sigmoid",
    ),
    Slip(
        "sigmoid_wrong_sign", "04_mnist_sgd", "sigmoid",
        "def sigmoid(x):\n    return 1 / (1 + torch.exp(x))",
        hint="exp(-x)", named="wrong sign inside exp",
    ),
    Slip(
        "optim_first_parameter_only", "04_mnist_sgd", "BasicOptim",
        "class BasicOptim:\n"
        "    def __init__(self, params, lr):\n"
        "        self.params, self.lr = list(params), lr\n\n"
        "    def step(self, *args, **kwargs):\n"
        "        p = self.params[0]\n"
        "        p.data -= p.grad.data * self.lr\n\n"
        "    def zero_grad(self, *args, **kwargs):\n"
        "        for p in self.params:\n"
        "            p.grad = None",
        hint="first parameter", named="only the first parameter was updated",
    ),
    Slip(
        "epoch_steps_once", "04_mnist_sgd", "train_epoch",
        "def train_epoch(model, dl, opt, loss_func=None):\n"
        "    if loss_func is None: loss_func = mnist_loss\n"
        "    for xb, yb in dl:\n"
        "        calc_grad(xb, yb, model, loss_func)\n"
        "    opt.step()\n"
        "    opt.zero_grad()",
        hint="once per batch", named="step once per batch",
    ),
)


def _submission(course: Path, slip: Slip) -> nbformat.NotebookNode:
    answers = solution_snippets(course / "source" / slip.assignment / f"{slip.assignment}.ipynb")
    answers[slip.blank] = slip.answer
    return fill(course / "release" / slip.assignment / f"{slip.assignment}.ipynb", answers)


def _cli(course: Path, *args: str, data: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "autograder.cli", *args, "--course", str(course), "--data", str(data)]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200)


def _test_cell(nb: nbformat.NotebookNode, blank: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"test_{blank}")


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, mnist_folder) -> dict[str, Path]:
    """One scratch course per assignment with its submissions, graded and given feedback pages through the CLI.

    Returns:
        assignment -> its course folder.
    """
    courses = {}
    for assignment in sorted({slip.assignment for slip in SLIPS}):
        course = scratch_course(REPO_ROOT, tmp_path_factory.mktemp("diagnoses") / "course")
        shutil.copytree(REPO_ROOT / "release", course / "release")
        for slip in (s for s in SLIPS if s.assignment == assignment):
            target = course / "submitted" / slip.student / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(_submission(course, slip), target)
        graded = _cli(course, "grade", assignment, "-j", "2", data=mnist_folder)
        assert graded.returncode == 0, f"grade {assignment} failed:\n{graded.stdout[-3000:]}\n{graded.stderr[-3000:]}"
        pages = _cli(course, "feedback", assignment, data=mnist_folder)
        assert pages.returncode == 0, f"feedback {assignment} failed:\n{pages.stdout[-3000:]}\n{pages.stderr[-3000:]}"
        courses[assignment] = course
    return courses


@pytest.mark.parametrize("slip", SLIPS, ids=lambda s: s.student)
def test_the_graded_notebook_shows_the_hint_and_the_named_mistake_and_scores_the_blank_0(graded: dict[str, Path], slip: Slip):
    path = graded[slip.assignment] / "autograded" / slip.student / slip.assignment / f"{slip.assignment}.ipynb"
    cell = _test_cell(nbformat.read(path, as_version=4), slip.blank)
    text = _text(cell)
    assert any(o.output_type == "error" for o in cell.outputs), f"the visible test of {slip.blank} did not fail:\n{text}"
    assert slip.hint in text, f"no hint {slip.hint!r} under the failing visible test:\n{text}"
    assert slip.named in text, f"the named mistake {slip.named!r} is not in the graded cell:\n{text}"
    assert "0/" in text.splitlines()[0], f"the blank does not score 0:\n{text}"


@pytest.mark.parametrize("slip", SLIPS, ids=lambda s: s.student)
def test_the_feedback_page_shows_the_named_mistake_in_a_browser(graded: dict[str, Path], slip: Slip, tmp_path: Path):
    require_chromium()
    page = graded[slip.assignment] / "feedback" / slip.student / slip.assignment / "feedback.html"
    assert page.is_file(), sorted(str(p) for p in (graded[slip.assignment] / "feedback").rglob("*.html"))
    dom = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-dom")
    text = TextOf.of(dom.stdout)
    assert slip.named in text, f"the page does not show {slip.named!r}:\n{text[:3000]}"
    assert slip.hint in text, f"the page does not show the visible test's error with its hint {slip.hint!r}:\n{text[:3000]}"
    shot = tmp_path / f"{slip.student}.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file(), f"chromium wrote no screenshot (rc {run.returncode}): {run.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, "the screenshot is blank"
