"""The machinery of the mutant and alternative catalogs, shared by the one catalog module per assignment.

A catalog module (``test_catalog_<assignment>.py``) registers, for the blanks of its assignment:

* **mutants**: realistic wrong solutions, written as a beginner would write them in the notebook. The
  hidden checks must take points off each one, and a failing check's message must contain the mutant's
  own expected words (the named mistake, never a generic "differs from the reference");
* **alternatives**: correct solutions written differently from the reference. They must pass every check,
  so no mistake is ever named for them.

Where the notebook's solution calls other student functions (``fit_quadratic`` calls ``gd_step``,
``train_epoch`` calls ``calc_grad``...), an entry is self-contained: the parts that are not the mistake
come from ``autograder.reference``.

A case the checks get wrong (a gap in the checks, not in the catalog) is marked ``xfail(strict=True)``
with the reason, so the suite stays green and the gap stays visible.

Each catalog module ends with ``test_mutant, test_alternative = CATALOG.tests()`` and carries its
assignment's marker, so ``pytest -m mnist_sgd`` runs that assignment's catalog.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from autograder.checks import BlankReport, run_checks
from autograder.device import available_devices

CATALOG_MODULES = (
    "test_catalog_gradient_descent",
    "test_catalog_linear_regression",
    "test_catalog_pixel_similarity",
    "test_catalog_mnist_sgd",
)
"""One catalog module per assignment, in the course's order."""

DEVICES = [pytest.param(device, id=device) for device in available_devices()]

GENERIC_MESSAGES = ("differs from the reference", "the result differs", "raised ")
"""Words that say something failed without naming the mistake: never enough as a mutant's expected words."""

IGNORED_LOSS_FUNC = "ignored the loss_func"


@dataclass(frozen=True)
class Entry:
    """One solution of a blank in a catalog.

    Attributes:
        id: a short name for the mistake or the variant (the decorated object's name).
        blank: the blank it fills in.
        objects: what the notebook passes to ``check`` (e.g. ``{"mse": fn}``).
    """

    id: str
    blank: str
    objects: dict[str, Any]

    @property
    def known_issue(self) -> str:
        """Why the checks are known to get this entry wrong (the case is then a strict xfail); empty when not."""
        return ""


@dataclass(frozen=True)
class Mutant(Entry):
    """One wrong solution.

    Attributes:
        expect: words that at least one failing check's message must contain: the mistake's own name.
        real_data: only a check on the real MNIST sample names the mistake (skipped here without the sample;
            it still loses points then, through the check that could not run: see test_no_sample.py).
        gap: non-empty when the checks are known to miss it: why (the case is then a strict xfail).
    """

    expect: str
    real_data: bool = False
    gap: str = ""

    @property
    def known_issue(self) -> str:
        return f"gap in the checks: {self.gap}" if self.gap else ""


@dataclass(frozen=True)
class Alternative(Entry):
    """One correct solution, written differently from the reference.

    Attributes:
        false_failure: non-empty when a check is known to fail it wrongly: why (a strict xfail).
    """

    false_failure: str = ""

    @property
    def known_issue(self) -> str:
        return f"false failure of the checks: {self.false_failure}" if self.false_failure else ""


@dataclass
class Catalog:
    """The mutants and alternatives of one assignment.

    Attributes:
        assignment: the check module's name (``"mnist_sgd"``), also the pytest marker of its cases.
        real_data_blanks: blanks with a check on the real MNIST sample: their alternatives need the sample
            for full points and skip without it.
        references: the reference solution of each of ``real_data_blanks`` (to count the checks it runs).
    """

    assignment: str
    real_data_blanks: dict[str, Any] = field(default_factory=dict)
    mutants: list[Mutant] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)

    def mutant(self, blank: str, expect: str, *, real_data: bool = False, gap: str = "") -> Callable[[Any], Any]:
        """Register the decorated function or class as a wrong solution of ``blank``."""
        return _registrar(self.mutants, lambda obj: Mutant(obj.__name__, blank, {blank: obj}, expect, real_data, gap))

    def alternative(self, blank: str, *, false_failure: str = "") -> Callable[[Any], Any]:
        """Register the decorated function or class as a correct solution of ``blank``."""
        return _registrar(self.alternatives, lambda obj: Alternative(obj.__name__, blank, {blank: obj}, false_failure))

    def tests(self) -> tuple[Callable[..., None], Callable[..., None]]:
        """The catalog's two parametrized tests, to be bound to ``test_*`` names in the catalog module."""
        mutant_cases = [_case(m) for m in self.mutants]
        alternative_cases = [_case(a) for a in self.alternatives]

        @pytest.mark.parametrize("device_type", DEVICES)
        @pytest.mark.parametrize("wrong", mutant_cases)
        def test_mutant_loses_points_with_its_own_named_mistake(wrong: Mutant, device_type: str, request: pytest.FixtureRequest):
            if wrong.real_data:
                request.getfixturevalue("mnist_folder")  # only the check on the real sample names it
            report = run_checks(wrong.blank, 1.0, wrong.objects, device=device_type)
            assert_mutant_caught(wrong, report)

        @pytest.mark.parametrize("device_type", DEVICES)
        @pytest.mark.parametrize("right", alternative_cases)
        def test_alternative_passes_every_check(right: Alternative, device_type: str, request: pytest.FixtureRequest):
            if right.blank in self.real_data_blanks:
                request.getfixturevalue("mnist_folder")  # no correct solution gets full points without the sample
            report = run_checks(right.blank, 2.0, right.objects, device=device_type)
            assert_alternative_passes(right, report)
            if right.blank in self.real_data_blanks:
                expected = self.reference_total(right.blank, device_type)
                assert report.total == expected, f"{report.total} checks ran, {expected} for the reference:\n{summary(report)}"

        return test_mutant_loses_points_with_its_own_named_mistake, test_alternative_passes_every_check

    def reference_total(self, blank: str, device_type: str) -> int:
        """How many checks of ``blank`` run for the reference solution here."""
        return run_checks(blank, 1.0, {blank: self.real_data_blanks[blank]}, device=device_type).total


def summary(report: BlankReport) -> str:
    """Every check of ``report`` on a line: PASS or FAIL, its name and message."""
    lines = [f"{'PASS' if r.passed else 'FAIL'} {r.name}: {r.message}" for r in report.results]
    return "\n".join(lines) or f"(no results; error: {report.error})"


def assert_mutant_caught(wrong: Mutant, report: BlankReport) -> None:
    """``wrong`` lost points, a failing check names its own mistake, and no mistake it did not make is named."""
    assert not report.error, f"the checks could not run: {report.error}"
    failures = [r for r in report.results if not r.passed]
    assert failures and report.score < 1.0, f"{wrong.id} passed every check of {wrong.blank}:\n{summary(report)}"
    assert any(wrong.expect in r.message for r in failures), (
        f"{wrong.id} lost points, but no failing check's message contains {wrong.expect!r}:\n{summary(report)}"
    )
    assert not any(r.message.startswith("your code failed an assertion of its own: opt.step()") for r in failures), (
        f"the checker's own optimizer's verdict is blamed on the student's asserts:\n{summary(report)}"
    )
    if "loss_func" not in wrong.id:  # a named mistake is claimed only when it is confirmed
        assert not any(IGNORED_LOSS_FUNC in r.message for r in failures), (
            f"{wrong.id} does not ignore loss_func, but a failing check says so:\n{summary(report)}"
        )


def assert_alternative_passes(right: Alternative, report: BlankReport) -> None:
    """``right`` passed every check of its blank, for full points: no mistake is named for it."""
    assert not report.error, f"the checks could not run: {report.error}"
    failures = [f"{r.name}: {r.message}" for r in report.results if not r.passed]
    assert not failures, f"{right.id} is correct but failed {len(failures)} check(s):\n" + "\n".join(failures)
    assert report.score == report.points, summary(report)


def _registrar(entries: list, make: Callable[[Any], Entry]) -> Callable[[Any], Any]:
    """A decorator that appends ``make(obj)`` to ``entries`` and returns ``obj`` unchanged."""

    def register(obj: Any) -> Any:
        entries.append(make(obj))
        return obj

    return register


def _case(entry: Entry):
    """``entry`` as a pytest parameter named by its id, a strict xfail when the checks are known to get it wrong."""
    marks = [pytest.mark.xfail(strict=True, reason=entry.known_issue)] if entry.known_issue else []
    return pytest.param(entry, id=entry.id, marks=marks)


def load_catalogs() -> list[Catalog]:
    """The catalog of every assignment, importing the catalog modules from this folder."""
    folder = str(Path(__file__).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return [importlib.import_module(name).CATALOG for name in CATALOG_MODULES]


def all_mutants() -> list[Mutant]:
    """Every assignment's mutants, in the course's order."""
    return [m for catalog in load_catalogs() for m in catalog.mutants]


def all_alternatives() -> list[Alternative]:
    """Every assignment's alternatives, in the course's order."""
    return [a for catalog in load_catalogs() for a in catalog.alternatives]
