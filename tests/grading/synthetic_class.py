"""A synthetic class of ``04_mnist_sgd`` built from the mutant catalog, for the class report's tests and benchmark.

Each mutant of the catalog is handed to a few students (one to four, by its place in the catalog); a few more
students get two mutants of different blanks (a wrong ``mnist_loss`` and a wrong ``train_model``); everyone else
hands in the reference. The hidden checks run once per mutant (``run_checks``, as grading runs them), and every
student's result is put together from those reports, so the class costs one run of the catalog.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder.checks import BlankReport, run_checks
from autograder.checks.report import format_report
from autograder.grading.results import BatchResult, CellResult, Status, SubmissionResult
from autograder.reference import mnist_sgd as reference

ASSIGNMENT = "04_mnist_sgd"
POINTS = {"sigmoid": 2, "mnist_loss": 4, "calc_grad": 2, "batch_accuracy": 2, "BasicOptim": 4, "train_epoch": 3, "train_model": 3}
"""The blanks of ``04_mnist_sgd`` and their points, in the notebook's order."""
CHECKS_FOLDER = Path(__file__).resolve().parents[1] / "checks"


@dataclass(frozen=True)
class Handout:
    """A mutant as handed out: its id, blank, expected words, and the students who got it."""

    id: str
    blank: str
    expect: str
    students: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SyntheticClass:
    """The class's batch, and which mutants went to whom."""

    batch: BatchResult
    handouts: list[Handout]


def _catalog():
    if str(CHECKS_FOLDER) not in sys.path:
        sys.path.insert(0, str(CHECKS_FOLDER))
    from catalog import load_catalogs

    (catalog,) = [catalog for catalog in load_catalogs() if catalog.assignment == "mnist_sgd"]
    return catalog


def catalog_reports(device: str = "cpu") -> tuple[dict[str, BlankReport], dict[str, tuple[str, str, BlankReport]]]:
    """The reference's report of each blank, and each caught mutant's ``(blank, expected words, report)`` by id.

    Mutants the checks are known to miss (``gap``) are left out: nobody could count them.
    """
    references = {blank: run_checks(blank, points, {blank: getattr(reference, blank)}, device=device) for blank, points in POINTS.items()}
    mutants = {
        mutant.id: (mutant.blank, mutant.expect, run_checks(mutant.blank, POINTS[mutant.blank], mutant.objects, device=device))
        for mutant in _catalog().mutants if not mutant.gap
    }
    return references, mutants


def _cell(report: BlankReport) -> CellResult:
    return CellResult(report.blank, report.score, report.points, format_report(report), report.to_json())


def synthetic_class(references: dict[str, BlankReport], mutants: dict[str, tuple[str, str, BlankReport]], size: int = 200,
                    doubles: int = 6) -> SyntheticClass:
    """``size`` students: mutant number *i* goes to ``1 + i % 4`` students, ``doubles`` students get both the first
    ``mnist_loss`` and the first ``train_model`` mutant, the rest hand in the reference.

    Raises:
        ValueError: ``size`` is too small for the handouts.
    """
    handouts = [Handout(mutant_id, blank, expect) for mutant_id, (blank, expect, _) in mutants.items()]
    given: dict[str, list[str]] = {}
    number = 0
    for index, handout in enumerate(handouts):
        for _ in range(1 + index % 4):
            student = f"s{number:04d}"
            given[student] = [handout.id]
            handout.students.append(student)
            number += 1
    first = {blank: next(h for h in handouts if h.blank == blank) for blank in ("mnist_loss", "train_model")}
    for _ in range(doubles):
        student = f"s{number:04d}"
        given[student] = [first["mnist_loss"].id, first["train_model"].id]
        for handout in first.values():
            handout.students.append(student)
        number += 1
    if number > size:
        raise ValueError(f"{number} students needed for the handouts, {size} asked for")
    results = []
    for index in range(size):
        student = f"s{index:04d}"
        reports = dict(references)
        for mutant_id in given.get(student, []):
            blank, _, report = mutants[mutant_id]
            reports[blank] = report
        cells = [_cell(reports[blank]) for blank in POINTS]
        results.append(SubmissionResult(student, ASSIGNMENT, Status.GRADED, cells=cells))
    return SyntheticClass(BatchResult(ASSIGNMENT, results), handouts)


def scaled(batch: BatchResult, times: int) -> BatchResult:
    """``batch`` repeated ``times`` times under new student ids (``<id>-<copy>``), e.g. 5,000 from 200."""
    results = [
        SubmissionResult(f"{result.student}-{copy}", result.assignment, result.status, result.reason, result.cells, result.seconds)
        for copy in range(times) for result in batch.submissions
    ]
    return BatchResult(batch.assignment, results)
