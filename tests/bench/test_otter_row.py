"""`bench/otter_row.py` turns the source notebook's test cells into otter tests that score as nbgrader does."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import otter_row  # noqa: E402

from autograder.checks import BlankReport, CheckResult  # noqa: E402

SOURCE = REPO_ROOT / "source" / "04_mnist_sgd" / "04_mnist_sgd.ipynb"


class FakeTestCase:
    """Stands in for ``otter.test_files.test_case`` (otter lives in an environment of its own)."""

    def __init__(self, name=None, points=None, hidden=False):
        self.name, self.points, self.hidden = name, points, hidden

    def __call__(self, func):
        self.func = func
        return self


@pytest.fixture
def blanks():
    return otter_row.blanks_of(nbformat.read(SOURCE, as_version=4))


def load(text: str, monkeypatch) -> dict:
    module = types.ModuleType("otter.test_files")
    module.test_case = FakeTestCase
    monkeypatch.setitem(sys.modules, "otter", types.ModuleType("otter"))
    monkeypatch.setitem(sys.modules, "otter.test_files", module)
    env: dict = {}
    exec(compile(text, "test.py", "exec"), env)
    return env


def test_every_graded_blank_becomes_an_otter_test_with_the_objects_its_check_takes(blanks):
    names = [b.blank for b in blanks]
    assert names == ["sigmoid", "mnist_loss", "calc_grad", "batch_accuracy", "BasicOptim", "train_epoch", "train_model"]
    assert sum(b.points for b in blanks) == 20
    train_model = blanks[-1]
    assert train_model.objects == ("train_model", "mnist_loss")
    assert "HIDDEN TESTS" not in train_model.visible and "visible tests passed" in train_model.visible


def test_a_blank_earns_points_times_passed_over_total(blanks, monkeypatch):
    sigmoid = blanks[0]
    env = load(otter_row.test_file(sigmoid, 4), monkeypatch)
    cases = [v for v in env.values() if isinstance(v, FakeTestCase)]
    assert len(cases) == 4 and env["points"] == 2.0 and all(c.hidden for c in cases)
    report = BlankReport("sigmoid", 2.0, [CheckResult(f"c{i}", i != 2) for i in range(4)])
    monkeypatch.setattr("autograder.checks.run_checks", lambda *args: report)
    import torch

    notebook = {"sigmoid": lambda x: 1 / (1 + torch.exp(-x)), "torch": torch, "tensor": torch.tensor,
                "likely_mistake": lambda got, known: ""}
    outcomes = []
    for case in cases:
        try:
            case.func(notebook)
            outcomes.append(True)
        except AssertionError:
            outcomes.append(False)
    assert outcomes == [True, True, False, True]


def test_a_failed_visible_assert_fails_every_case(blanks, monkeypatch):
    env = load(otter_row.test_file(blanks[0], 2), monkeypatch)
    monkeypatch.setattr("autograder.checks.run_checks", lambda *args: BlankReport("sigmoid", 2.0, [CheckResult("c", True)] * 2))
    import torch

    notebook = {"sigmoid": lambda x: x, "torch": torch, "tensor": torch.tensor, "likely_mistake": lambda got, known: ""}
    for case in [v for v in env.values() if isinstance(v, FakeTestCase)]:
        with pytest.raises(AssertionError, match="AssertionError"):
            case.func(notebook)


def test_submissions_get_otters_test_metadata_on_their_test_cells(blanks):
    nb = otter_row.tagged(nbformat.read(SOURCE, as_version=4), blanks)
    tagged = [cell.metadata["otter"]["tests"] for cell in nb.cells if "otter" in cell.metadata]
    assert tagged == [[b.blank] for b in blanks]
