"""The class report of one assignment: ``reports/<assignment>/`` with ``index.html``, ``mistakes.csv`` and ``report.json``.

Built from ``class_insights.ClassInsights`` (the recorded results only; nothing runs again). ``index.html`` is one
self-contained page (its two figures embedded as PNG): the score histogram and status counts, then per blank its
pass rate, mean points and mistakes ranked by how many students made them (student ids link to their feedback
pages), the unrecognised failures clustered by text, the blanks lost together, and the training blanks' final
accuracies against their calibrated bar. ``mistakes.csv`` and ``report.json`` hold the same counts for
spreadsheets and scripts. Everything from submissions is HTML-escaped by the template engine.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import jinja2

from autograder.grading.class_insights import AccuracyStrip, ClassInsights, Mistake, class_insights
from autograder.grading.exports import subfolder
from autograder.grading.feedback import FEEDBACK_FILE
from autograder.grading.results import BatchResult

REPORTS_DIR = "reports"
FEEDBACK_DIR = "feedback"
PAGE_FILE, CSV_FILE, JSON_FILE = "index.html", "mistakes.csv", "report.json"
CSV_COLUMNS = ("assignment", "blank", "mistake", "students", "share", "kind", "student_ids", "example")
TEMPLATE = "class_report.html"
STUDENTS_LISTED = 40
"""Student ids linked under a mistake; the rest are counted (every id is in the CSV and the JSON)."""
BAR_COLOUR, THRESHOLD_COLOUR = "#1f77b4", "#8a1c12"
MATPLOTLIB_CACHE = Path("grading") / ".cache" / "matplotlib"


@dataclass(frozen=True)
class ClassReport:
    """The files written for one assignment."""

    folder: Path
    page: Path
    csv: Path
    json: Path


def score_histogram_png(scores: list[float], max_score: float) -> bytes:
    """A histogram of the class's totals, one bar per point from 0 to ``max_score``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 2.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    top = max(max_score, max(scores, default=0.0), 1.0)
    bins = [edge - 0.5 for edge in range(int(top) + 2)]
    axes.hist(scores, bins=bins, color=BAR_COLOUR, edgecolor="white")
    axes.set_xlabel(f"total points (of {max_score:g})")
    axes.set_ylabel("submissions")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def accuracy_strip_png(strip: AccuracyStrip) -> bytes:
    """The final accuracies of ``strip`` as one horizontal strip of points (jittered), with the bar as a line."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 1.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    values = np.asarray(strip.accuracies, dtype=float)
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=len(values))
    alpha = 0.8 if len(values) <= 200 else max(0.05, 160 / len(values))
    below = values < strip.threshold
    axes.scatter(values[~below], jitter[~below], s=14, color=BAR_COLOUR, alpha=alpha, label="at or above the bar")
    axes.scatter(values[below], jitter[below], s=14, color=THRESHOLD_COLOUR, alpha=alpha, label="below the bar")
    axes.axvline(strip.threshold, color=THRESHOLD_COLOUR, linestyle="--", label=f"calibrated bar {strip.threshold:.4f}")
    axes.set_ylim(-0.6, 0.6)
    axes.set_yticks([])
    axes.set_xlabel(f"{strip.blank}: final validation accuracy")
    axes.legend(fontsize="small", loc="upper left", ncols=3)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _base64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def feedback_link(student: str, assignment: str) -> str:
    """The student's feedback page, relative to ``reports/<assignment>/index.html``."""
    return "/".join(("..", "..", FEEDBACK_DIR, student, assignment, FEEDBACK_FILE))


def _template() -> jinja2.Template:
    text = resources.files("autograder.grading").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["percent"] = percent
    return environment.from_string(text)


def percent(share: float) -> str:
    """A share as a percentage: one decimal below 10% (1 student of 200 is 0.5%, not 0%), none above."""
    return f"{100 * share:.1f}%" if share < 0.1 else f"{100 * share:.0f}%"


def render_page(insights: ClassInsights) -> str:
    """``index.html`` of ``insights``, self-contained."""
    strips = [(strip, _base64(accuracy_strip_png(strip))) for strip in insights.accuracies]
    return _template().render(
        report=insights,
        histogram=_base64(score_histogram_png(insights.scores, insights.max_score)),
        strips=strips,
        link=lambda student: feedback_link(student, insights.assignment),
        listed=STUDENTS_LISTED,
        mean=statistics.fmean(insights.scores) if insights.scores else 0.0,
        median=statistics.median(insights.scores) if insights.scores else 0.0,
    )


def mistake_rows(insights: ClassInsights) -> list[dict[str, str]]:
    """One CSV row per mistake (named first, then unrecognised clusters), blank by blank."""
    rows = []
    for blank in insights.blanks:
        for mistake in [*blank.mistakes, *blank.unrecognised]:
            rows.append(_row(insights.assignment, mistake))
    return rows


def _row(assignment: str, mistake: Mistake) -> dict[str, str]:
    return {
        "assignment": assignment, "blank": mistake.blank, "mistake": mistake.mistake, "students": str(len(mistake.students)),
        "share": f"{mistake.share:.4f}", "kind": "named" if mistake.named else "unrecognised",
        "student_ids": " ".join(mistake.students), "example": mistake.example,
    }


def _write(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file renamed over ``path``: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def matplotlib_in_the_course(course_root: Path) -> None:
    """Let matplotlib keep its configuration and font cache in ``grading/.cache/matplotlib`` of the course, not
    under the instructor's HOME (grading writes nothing there), unless ``MPLCONFIGDIR`` says otherwise.

    Only before this process first imports matplotlib, which reads ``MPLCONFIGDIR`` once.
    """
    if "matplotlib" not in sys.modules:
        os.environ.setdefault("MPLCONFIGDIR", str(course_root / MATPLOTLIB_CACHE))


def write_class_report(batch: BatchResult, course_root: Path) -> ClassReport:
    """Write ``reports/<assignment>/`` of ``course_root`` from ``batch``; returns the files."""
    matplotlib_in_the_course(course_root)
    insights = class_insights(batch)
    folder = subfolder(course_root / REPORTS_DIR, batch.assignment)
    folder.mkdir(parents=True, exist_ok=True)
    report = ClassReport(folder, folder / PAGE_FILE, folder / CSV_FILE, folder / JSON_FILE)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(mistake_rows(insights))
    _write(report.csv, buffer.getvalue())
    _write(report.json, json.dumps(asdict(insights), indent=1))
    _write(report.page, render_page(insights))
    return report


__all__ = ["ClassReport", "feedback_link", "mistake_rows", "render_page", "write_class_report"]
