"""How well the hidden checks diagnose: per blank, the mutant catalog's kill rate and specific-message rate,
and the alternatives' false failures and false names.

Run from the repository root with ``.venv/bin`` on PATH (and ``MNIST_SAMPLE_ARCHIVE`` for the checks on the
real sample; without it the mutants that only the real sample names are left out and counted as such):

    python bench/catalog_rates.py [--assignment mnist_sgd] [--device cpu] [--json rates.json]

For each mutant of ``tests/checks/test_catalog_<assignment>.py`` it runs the blank's checks, as the catalog
tests do, and counts:

- **killed**: the mutant scored less than full points;
- **named**: a failing check's message contains the mutant's own expected words (its named mistake).

For each correct alternative: a **false failure** is a failed check (less than full points), a **false name**
any failing check's message (a mistake named for a correct solution). Known gaps (``gap=...``,
``false_failure=...``) are run and counted like the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "checks"))

from catalog import Alternative, Catalog, Mutant, load_catalogs  # noqa: E402

from autograder.checks import run_checks  # noqa: E402
from autograder.data import ARCHIVE_ENV_VAR, provision_mnist_sample  # noqa: E402


@dataclass
class BlankRates:
    """The catalog's figures for one blank."""

    assignment: str
    blank: str
    mutants: int = 0
    killed: int = 0
    named: int = 0
    left_out: int = 0
    alternatives: int = 0
    false_failures: int = 0
    false_names: int = 0

    @property
    def kill_rate(self) -> float:
        return self.killed / self.mutants if self.mutants else float("nan")

    @property
    def named_rate(self) -> float:
        return self.named / self.mutants if self.mutants else float("nan")


def mutant_outcome(mutant: Mutant, device: str) -> tuple[bool, bool]:
    """Whether the checks killed ``mutant`` and whether a failing message named its mistake."""
    report = run_checks(mutant.blank, 1.0, mutant.objects, device=device)
    failures = [r for r in report.results if not r.passed]
    killed = bool(report.error) or report.score < 1.0
    return killed, any(mutant.expect in r.message for r in failures)


def alternative_outcome(alternative: Alternative, device: str) -> tuple[bool, bool]:
    """Whether the checks wrongly failed ``alternative`` and whether they named a mistake for it."""
    report = run_checks(alternative.blank, 1.0, alternative.objects, device=device)
    failures = [r for r in report.results if not r.passed]
    return bool(report.error) or report.score < 1.0, any(r.message for r in failures)


def catalog_rates(catalog: Catalog, device: str, have_sample: bool) -> list[BlankRates]:
    """The figures of every blank of ``catalog``, in the catalog's order."""
    rates: dict[str, BlankRates] = {}
    for mutant in catalog.mutants:
        row = rates.setdefault(mutant.blank, BlankRates(catalog.assignment, mutant.blank))
        if mutant.real_data and not have_sample:
            row.left_out += 1
            continue
        killed, named = mutant_outcome(mutant, device)
        row.mutants += 1
        row.killed += killed
        row.named += named
    for alternative in catalog.alternatives:
        row = rates.setdefault(alternative.blank, BlankRates(catalog.assignment, alternative.blank))
        if alternative.blank in catalog.real_data_blanks and not have_sample:
            continue
        failed, named = alternative_outcome(alternative, device)
        row.alternatives += 1
        row.false_failures += failed
        row.false_names += named
    return list(rates.values())


def table(rows: list[BlankRates]) -> str:
    """The figures as a Markdown table, with a total row."""
    lines = [
        "| assignment | blank | mutants | killed | named | kill rate | named rate | alternatives | false fails | false names |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = BlankRates("all", "all")
    for row in rows:
        for name in ("mutants", "killed", "named", "left_out", "alternatives", "false_failures", "false_names"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    for row in [*rows, total]:
        lines.append(
            f"| {row.assignment} | {row.blank} | {row.mutants} | {row.killed} | {row.named} | {row.kill_rate:.0%} | "
            f"{row.named_rate:.0%} | {row.alternatives} | {row.false_failures} | {row.false_names} |"
        )
    if total.left_out:
        lines.append(f"\n{total.left_out} mutant(s) left out: only the real MNIST sample names them (set {ARCHIVE_ENV_VAR}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[BlankRates]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", action="append", help="only this check module (repeatable), e.g. mnist_sgd")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="catalog-rates-") as home, mock.patch.dict(os.environ, {"FASTAI_HOME": home}):
        archive = os.environ.get(ARCHIVE_ENV_VAR)
        have_sample = bool(archive) and provision_mnist_sample(archive, home=Path(home)) is not None
        rows = [
            row
            for catalog in load_catalogs()
            if not args.assignment or catalog.assignment in args.assignment
            for row in catalog_rates(catalog, args.device, have_sample)
        ]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "kill_rate": r.kill_rate, "named_rate": r.named_rate} for r in rows], indent=1))
    return rows


if __name__ == "__main__":
    main()
