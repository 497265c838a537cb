"""The visible tests of 03 and 04, as released, accept exactly what their blanks' gates accept, and name the mistake.

Each released test cell runs here in a plain namespace (the notebook's given helpers, the reference for the other
blanks, and one catalog entry for its blank), the way it runs in a student's kernel, without Jupyter. For every
mutant and alternative of the catalogs, the cell passes exactly when every gate of the blank passes: the gates
repeat the visible tests. The hints a student reads under a failing test are checked word for word for the
mistakes the lesson warns about.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from autograder.checks import run_checks
from autograder.course import notebook
from autograder.reference import mnist_sgd as ms
from autograder.reference import pixel_similarity as ps

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "checks"))

import test_catalog_mnist_sgd  # noqa: E402
import test_catalog_pixel_similarity  # noqa: E402

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

GIVEN_CELLS = {"03_pixel_similarity": (), "04_mnist_sgd": ("linear_model", "minibatches", "validate_epoch")}
REFERENCES = {
    "03_pixel_similarity": {name: getattr(ps, name) for name in ("mnist_distance", "is_3", "validation_accuracy")},
    "04_mnist_sgd": {
        **{name: getattr(ms, name) for name in ("sigmoid", "mnist_loss", "calc_grad", "batch_accuracy", "BasicOptim", "train_epoch", "train_model")},
        "bce": lambda preds, targets: F.binary_cross_entropy_with_logits(preds, targets.float()),
    },
}
CATALOGS = {"03_pixel_similarity": test_catalog_pixel_similarity.CATALOG, "04_mnist_sgd": test_catalog_mnist_sgd.CATALOG}


def _cells(assignment: str) -> dict[str, str]:
    nb = nbformat.read(notebook(REPO_ROOT, "release", assignment), as_version=4)
    return {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in nb.cells}


def visible_outcome(assignment: str, blank: str, obj) -> str:
    """"passed", or the one line the failing visible test of ``blank`` shows, with ``obj`` as the student's answer."""
    cells = _cells(assignment)
    namespace = {"torch": torch, "tensor": torch.tensor, "F": F}
    exec("def likely_mistake" + cells["setup"].split("def likely_mistake", 1)[1], namespace)
    for given in GIVEN_CELLS[assignment]:
        exec(cells[given], namespace)
    namespace.update(REFERENCES[assignment])
    namespace[blank] = obj
    try:
        exec(cells[f"test_{blank}"], namespace)
    except Exception as error:  # noqa: BLE001 - any failure of the cell is the student's verdict
        return f"{type(error).__name__}: {error}"
    return "passed"


def _entries():
    for assignment, catalog in CATALOGS.items():
        for entry in [*catalog.mutants, *catalog.alternatives]:
            yield pytest.param(assignment, entry, id=entry.id)


@pytest.mark.parametrize("assignment, entry", list(_entries()))
def test_the_visible_test_passes_exactly_when_the_gates_pass(assignment, entry):
    report = run_checks(entry.blank, 1.0, entry.objects, device="cpu")
    gates = [r for r in report.results if r.gate]
    assert gates, f"{entry.blank} has no gate"
    gates_pass = all(r.passed for r in gates)
    seen = visible_outcome(assignment, entry.blank, entry.objects[entry.blank])
    assert (seen == "passed") == gates_pass, f"visible test: {seen}; gates: {[(r.name, r.passed, r.message) for r in gates]}"


@pytest.mark.parametrize("mutant, line", [
    ("mnist_loss_no_sigmoid",
     "AssertionError: expected 0.690399, got 1.500000 on the worked example: did you apply sigmoid to the predictions?"),
    ("sigmoid_wrong_sign",
     "AssertionError: expected [0.119203, 0.880797], got [0.880797, 0.119203]: is the sign inside exp wrong? sigmoid is 1 / (1 + exp(-x))"),
    ("BasicOptimStepsFirstParamOnly",
     "AssertionError: expected p2 = [[2.8]], got [[3.0]]: did step() update only the first parameter? Loop over every parameter in self.params"),
    ("train_epoch_steps_once_per_epoch",
     "AssertionError: expected weights [[1.0], [-1.244919]] and bias [-0.122459], got [[1.0], [-1.0]] and [0.0]: "
     "did you call opt.step() once per epoch? Step once per batch, inside the loop"),
])
def test_a_student_reads_the_named_mistake_under_the_failing_test(mutant, line):
    entry = next(m for m in CATALOGS["04_mnist_sgd"].mutants if m.id == mutant)
    assert visible_outcome("04_mnist_sgd", entry.blank, entry.objects[entry.blank]) == line


def test_both_zero_grad_orders_pass_and_the_wrong_ones_fail_the_visible_train_epoch_test():
    catalog = CATALOGS["04_mnist_sgd"]
    entries = {e.id: e.objects["train_epoch"] for e in [*catalog.mutants, *catalog.alternatives] if e.blank == "train_epoch"}
    assert visible_outcome("04_mnist_sgd", "train_epoch", ms.train_epoch) == "passed"
    assert visible_outcome("04_mnist_sgd", "train_epoch", entries["train_epoch_zero_grad_first"]) == "passed"
    assert "did you forget opt.zero_grad()?" in visible_outcome("04_mnist_sgd", "train_epoch", entries["train_epoch_without_zero_grad"])
    assert "not between them" in visible_outcome("04_mnist_sgd", "train_epoch", entries["train_epoch_zero_grad_before_step"])
