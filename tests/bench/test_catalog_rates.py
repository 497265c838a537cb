"""`bench/catalog_rates.py` counts what it says: kills, named mistakes, false failures and false names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import catalog_rates  # noqa: E402
from catalog import Catalog  # noqa: E402  (tests/checks, put on sys.path by catalog_rates)

from autograder.reference import linear_regression as lr  # noqa: E402


def _catalog() -> Catalog:
    catalog = Catalog("linear_regression")
    catalog.mutant("update", "the reference itself: nothing to name")(lr.update)  # not a mistake: never killed

    @catalog.mutant("update", "forgot to zero the gradient")
    def update_never_zeroes_grad(a, x, y, lr_):
        loss = ((x @ a - y) ** 2).mean()
        loss.backward()
        import torch

        with torch.no_grad():
            a -= lr_ * a.grad
        return loss

    @catalog.alternative("update")
    def update_forgets_the_step(a, x, y, lr_):  # wrong on purpose: a false failure with a named mistake
        return ((x @ a - y) ** 2).mean()

    catalog.alternative("update")(lr.update)
    return catalog


def test_rates_count_kills_names_false_failures_and_false_names():
    (row,) = catalog_rates.catalog_rates(_catalog(), "cpu", have_sample=False)
    assert (row.blank, row.mutants, row.killed, row.alternatives) == ("update", 2, 1, 2)
    assert row.named <= row.killed
    assert row.false_failures == 1 and row.false_names == 1
    assert row.kill_rate == 0.5


def test_the_table_has_a_row_per_blank_and_a_total(capsys):
    home = os.environ.get("FASTAI_HOME")
    rows = catalog_rates.main(["--assignment", "linear_regression"])
    assert os.environ.get("FASTAI_HOME") == home, "main left FASTAI_HOME naming its removed temporary folder"
    printed = capsys.readouterr().out
    assert [r.blank for r in rows] == ["update"]
    assert "| linear_regression | update |" in printed and "| all | all |" in printed
    assert rows[0].mutants >= 2 and rows[0].alternatives >= 1
