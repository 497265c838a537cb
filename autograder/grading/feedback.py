"""Self-contained HTML feedback pages, one per student, built from grading results only.

A page shows the assignment, the student, the total, the status and reason, then each blank with its
points and every check (PASS/FAIL and the likely mistake); a blank whose visible test failed shows that
error line first, then the checks. When a blank's report carries training curves
(``report["artifacts"]["curves"]``, see ``autograder.checks.mnist_sgd``), a two-panel figure compares them
with the reference's on the same data, with a sentence saying what run they show. Pages never read notebook sources, so hidden tests cannot appear; text
that looks like a hidden-tests block is removed from anything shown all the same. Everything from the
submission is HTML-escaped by the template engine.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from autograder.checks.report import CELL_UNFINISHED, VISIBLE_TEST_FAILED, hidden_checks_verdict
from autograder.checks.results import CheckResult
from autograder.grading.exports import blank_max_scores, subfolder
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

FEEDBACK_FILE = "feedback.html"
TEMPLATE = "feedback.html"
STUDENT_COLOUR = "#1f77b4"    # the student's lines in the training figure
REFERENCE_COLOUR = "#ff7f0e"  # the reference's lines
REFERENCE_LABEL = "reference run"
SAME_DATA_LABEL = "reference mnist_loss on your run"
NEUTRAL_RUN = "your train_model trained the lesson's linear model on the MNIST sample, as the checks ran it"
HIDDEN_BLOCK = re.compile(r"#*[ \t]*BEGIN HIDDEN TESTS.*?(?:END HIDDEN TESTS[^\n]*\n?|\Z)", re.DOTALL)

STATUS_TEXT = {
    Status.GRADED: "every test cell ran and was checked",
    Status.TIMEOUT: "a cell ran too long; it scores 0 and the rest was graded",
    Status.CPU_LIMIT: "the notebook used more CPU time than allowed",
    Status.MEMORY_LIMIT: "the notebook used more memory than allowed",
    Status.KERNEL_DIED: "the notebook's kernel stopped during grading",
    Status.TESTS_MODIFIED: "test cells were deleted or changed",
    Status.CORRUPT: "the file is not a readable notebook",
    Status.MISSING: "no notebook for this assignment was found in the submission",
    Status.WRONG_ASSIGNMENT: "the notebook belongs to another assignment",
    Status.EMPTY: "the submission holds nothing to grade",
    Status.GRADER_ERROR: "the grader failed on this submission; your instructor has been told",
    Status.SANDBOX_VIOLATION: "the notebook tried something grading does not allow (see the reason); it was graded on the rest",
    Status.OUTPUT_LIMIT: "the notebook printed or wrote more than allowed",
}


@dataclass(frozen=True)
class BlankView:
    """One blank as shown: points, checks (from the report), or the cell's printed text without a report.

    Attributes:
        failure: when the test cell raised after its checks ran, e.g. ``"The visible test failed: AssertionError:
            ..."`` or ``"The cell did not finish: ..."``; the blank then scores 0.
        verdict: with ``failure``, what the checks listed below add (``"The hidden checks say what is likely
            wrong (3/5 passed)"``).
        checks: failed checks (with their likely mistake) first, then passed ones.
    """

    name: str
    points: str
    full_marks: bool
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    output: str = ""
    failure: str = ""
    verdict: str = ""


@dataclass(frozen=True)
class FigureView:
    """A training figure as shown: the blank it belongs to, the PNG as base64, a caption (final accuracies) and
    the run it shows, in one sentence."""

    blank: str
    png_base64: str
    caption: str
    run: str = NEUTRAL_RUN


@dataclass(frozen=True)
class PageView:
    """Everything one feedback page shows, as plain text and numbers (the template does the markup)."""

    assignment: str
    student: str
    total: str
    status: str
    status_text: str
    gradable: bool
    reason: str
    figures: list[FigureView]
    blanks: list[BlankView]


def without_hidden_tests(text: str) -> str:
    """``text`` with any ``BEGIN HIDDEN TESTS`` ... ``END HIDDEN TESTS`` block removed."""
    return HIDDEN_BLOCK.sub("", text)


def _points(score: float, max_score: float) -> str:
    return f"{round(score, 2):g}/{max_score:g}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def blank_view(cell: CellResult, gradable: bool) -> BlankView:
    """The view of one blank: the checks of its report, or its printed output when there is no report.

    A blank whose test cell raised after its checks ran (``CellResult.blank_report``) shows the error line,
    then the checks with their likely mistakes.
    """
    score = cell.score if gradable else 0.0
    points, full = _points(score, cell.max_score), score >= cell.max_score
    report = cell.blank_report()
    if report is None:
        return BlankView(cell.blank, points, full, output=without_hidden_tests(cell.output))
    ordered = report.failed + [r for r in report.results if r.passed]
    checks = [replace(r, name=without_hidden_tests(r.name), message=without_hidden_tests(r.message)) for r in ordered]
    failure = verdict = ""
    if report.visible_test_error:
        what = CELL_UNFINISHED if report.cell_unfinished else VISIBLE_TEST_FAILED
        failure = without_hidden_tests(f"{_sentence(what)}: {report.visible_test_error}")
        verdict = _sentence(hidden_checks_verdict(report, star_note=False)) + ":" if report.results else ""
    return BlankView(cell.blank, points, full, checks, without_hidden_tests(report.error), failure=failure, verdict=verdict)


def cell_curves(cell: CellResult) -> dict | None:
    """The training curves a blank's report recorded, if any."""
    curves = ((cell.report or {}).get("artifacts") or {}).get("curves")
    return curves if isinstance(curves, dict) else None


def _series(curves: dict | None, key: str) -> list[float]:
    values = (curves or {}).get(key) or []
    series = []
    for value in values if isinstance(values, (list, tuple)) else []:
        try:
            series.append(float(value))
        except (TypeError, ValueError):
            series.append(math.nan)
    return series


def _final(curves: dict | None) -> float | None:
    try:
        return float((curves or {})["final_accuracy"])
    except (KeyError, TypeError, ValueError):
        return None


def student_label(curves: dict | None, key: str = "train_loss") -> str:
    """The legend of the student's line in the panel of ``key``: for the loss, whose ``mnist_loss`` scored the
    student's run (its ``loss_name``, e.g. ``"your mnist_loss on your run"``); for the accuracy, ``"your train_model"``."""
    loss_name = (curves or {}).get("loss_name")
    if key == "train_loss" and isinstance(loss_name, str) and loss_name:
        return f"{loss_name} on your run"
    return "your train_model"


def run_sentence(curves: dict | None) -> str:
    """What the student's curves show (their ``run`` sentence), or a neutral sentence for curves recorded without one."""
    run = (curves or {}).get("run")
    return run if isinstance(run, str) and run.strip() else NEUTRAL_RUN


def curves_figure(student: dict, reference: dict | None) -> Figure:
    """Two panels, training loss and validation accuracy per epoch, student beside reference.

    The student's lines are labelled ``student_label``; the reference run's, dashed, ``REFERENCE_LABEL``. When
    the student's loss scored the run (``loss_name`` is theirs), the loss panel also draws, dotted, the reference
    ``mnist_loss`` on the same predictions (``reference_loss``): the two losses side by side on the same data.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2)
    for axes, key, title, ylabel in (
        (panels[0], "train_loss", "Training loss per epoch", "mnist_loss on the epoch's predictions"),
        (panels[1], "valid_accuracy_returned", "Validation accuracy per epoch", "validation accuracy"),
    ):
        mine, theirs = _series(student, key), _series(reference, key)
        if theirs:
            axes.plot(range(1, len(theirs) + 1), theirs, color=REFERENCE_COLOUR, linewidth=2.5, linestyle="--", label=REFERENCE_LABEL, zorder=3)
        same_data = _series(student, "reference_loss") if key == "train_loss" and _own_loss(student) else []
        if same_data:
            axes.plot(range(1, len(same_data) + 1), same_data, color=REFERENCE_COLOUR, linewidth=1.5, linestyle=":",
                      marker="s", markersize=3, label=SAME_DATA_LABEL)
        if mine:
            axes.plot(range(1, len(mine) + 1), mine, color=STUDENT_COLOUR, linewidth=2.5, marker="o", markersize=4, label=student_label(student, key))
        else:
            axes.text(0.5, 0.5, "no values from your train_model", transform=axes.transAxes, ha="center", va="center")
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if mine or theirs:
            axes.legend(fontsize="small")
    return figure


def _own_loss(curves: dict | None) -> bool:
    loss_name = (curves or {}).get("loss_name")
    return isinstance(loss_name, str) and loss_name.startswith("your")


def curves_png(student: dict, reference: dict | None) -> bytes:
    """``curves_figure`` as PNG bytes."""
    buffer = io.BytesIO()
    curves_figure(student, reference).savefig(buffer, format="png")
    return buffer.getvalue()


def figure_view(blank: str, student: dict, reference: dict | None) -> FigureView:
    """The training figure of one blank, with the final accuracies (reference metric) as its caption and the
    sentence saying what run the student's curves show."""
    mine, theirs = _final(student), _final(reference)
    caption = "Final validation accuracy"
    caption += f": yours {mine:.4f}" if mine is not None else ": yours not measured"
    if theirs is not None:
        caption += f", reference {theirs:.4f}"
    png = base64.b64encode(curves_png(student, reference)).decode("ascii")
    return FigureView(blank, png, caption, run_sentence(student))


def page_view(result: SubmissionResult, reference_curves: dict | None = None, batch_max: float | None = None) -> PageView:
    """What the page of one submission shows.

    Args:
        reference_curves: the reference's training curves, drawn beside the student's.
        batch_max: the assignment's total, used when the submission has no cells (it was not graded).
    """
    gradable = result.status.gradable
    max_score = result.max_score if result.cells or batch_max is None else batch_max
    figures = [figure_view(cell.blank, curves, reference_curves) for cell in result.cells if (curves := cell_curves(cell))]
    return PageView(
        assignment=result.assignment,
        student=result.student,
        total=_points(result.score if gradable else 0.0, max_score),
        status=result.status.value,
        status_text=STATUS_TEXT.get(result.status, result.status.value),
        gradable=gradable,
        reason=without_hidden_tests(result.reason),
        figures=figures,
        blanks=[blank_view(cell, gradable) for cell in result.cells],
    )


def _template() -> jinja2.Template:
    source = resources.files("autograder.grading").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(source)


def render_page(view: PageView) -> str:
    """The HTML of one page (inline CSS and images; no external resources)."""
    return _template().render(page=view)


def write_feedback_pages(batch: BatchResult, folder: Path, reference_curves: dict | None = None) -> list[Path]:
    """Write ``folder/<student>/<assignment>/feedback.html`` for every submission; returns the files written.

    Args:
        reference_curves: the reference's training curves (``reference_training_curves()``), drawn beside a
            student's when a blank's report recorded curves; None draws the student's alone.
    """
    batch_max = sum(blank_max_scores(batch).values())
    written = []
    for result in batch.submissions:
        path = subfolder(subfolder(folder, result.student), result.assignment) / FEEDBACK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_page(page_view(result, reference_curves, batch_max)), encoding="utf-8")
        written.append(path)
    return written


def reference_training_curves(device: str | torch.device | None = None) -> dict:
    """The reference ``train_model`` with the reference ``mnist_loss``, in the calibrated run that grades the
    student's (``autograder.checks.training_curves.feedback_curves``), with its ``run`` sentence.

    Needs the MNIST sample (provisioned, see ``autograder.data.provision_mnist_sample``).

    Args:
        device: where to train (``autograder.device.get_device`` picks when None).
    """
    from autograder.checks.data import real_sample
    from autograder.checks.training_curves import feedback_curves
    from autograder.device import get_device
    from autograder.reference import mnist_sgd as ref

    device = get_device(device)
    return feedback_curves(real_sample(device), device, ref.train_model, ref.mnist_loss)
