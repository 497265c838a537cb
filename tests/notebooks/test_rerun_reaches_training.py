"""A fixed ``mnist_loss`` reaches training without rerunning the cells that define the training loop.

``calc_grad``, ``train_epoch`` and ``train_model`` take ``loss_func=None`` and look ``mnist_loss`` up when they
are called. With ``loss_func=mnist_loss`` in their signatures, Python would bind the ``mnist_loss`` that existed
when their cells ran, and a student who fixes ``mnist_loss`` and reruns only the later cells would still train
with the old loss. This test executes the notebook up to ``train_model`` in a Jupyter kernel with a wrong
``mnist_loss``, trains, fixes ``mnist_loss`` without rerunning those cells, trains again, and compares the
trainings with ones given the loss explicitly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.course import notebook
from autograder.grading.demo import fill, solution_snippets

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "04_mnist_sgd"
MARKER = "RUNS "

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.mnist_sgd]

WRONG_LOSS = '''\
def mnist_loss(predictions, targets):
    "A student's first try: forgot the sigmoid."
    return torch.where(targets == 1, 1 - predictions, predictions).mean()
wrong_loss = mnist_loss'''

TRAIN = '''\
import json

def _train(**loss):
    "2 epochs of the seeded Linear1 as in the notebook; `loss` is empty or holds an explicit loss_func."
    torch.manual_seed(42)
    m = Linear1(init_params((28*28, 1)), init_params(1))
    dl = minibatches(train_x, train_y, batch_size=256, shuffle=True, seed=42)
    vdl = minibatches(valid_x, valid_y, batch_size=256)
    history = train_model(m, dl, vdl, BasicOptim(m.parameters(), lr=1.0), 2, **loss)
    return {"history": history, "weights": m.weights.detach().view(-1).tolist(), "bias": m.bias.detach().tolist()}

runs = {"wrong_default": _train(), "wrong_explicit": _train(loss_func=wrong_loss)}'''

RETRAIN = '''\
runs["fixed_default"] = _train()
runs["fixed_explicit"] = _train(loss_func=mnist_loss)
print("RUNS " + json.dumps(runs))'''


def _code(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def rerun_notebook(course_root: Path) -> nbformat.NotebookNode:
    """The release notebook cut after the ``train_model`` answer cell, every blank solved but ``mnist_loss``,
    which is wrong (no sigmoid) when the training cells run, as a student's first try (its visible test, which
    would stop the run, is left out); then the cells that train with the wrong loss, fix it (the solved
    ``mnist_loss`` cell) and train again, without rerunning the cells of calc_grad, train_epoch, train_model."""
    solved = solution_snippets(notebook(course_root, "source", ASSIGNMENT))
    nb = fill(notebook(course_root, "release", ASSIGNMENT), {**solved, "mnist_loss": WRONG_LOSS})
    ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
    kept = zip(nb.cells[: ids.index("train_model") + 1], ids)
    nb.cells = [cell for cell, grade_id in kept if grade_id != "test_mnist_loss"]
    nb.cells += [_code(WRONG_LOSS), _code(TRAIN), _code(solved["mnist_loss"]), _code(RETRAIN)]
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> dict:
    """Run ``nb`` in a fresh python3 kernel started in ``cwd`` (FASTAI_HOME comes from the environment)."""
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(cwd)}}).execute()
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.output_type == "stream")
    line = next(l for l in printed.splitlines() if l.startswith(MARKER))
    return json.loads(line[len(MARKER):])


def same(a: dict, b: dict) -> bool:
    values_a, values_b = a["weights"] + a["bias"] + a["history"], b["weights"] + b["bias"] + b["history"]
    return all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(values_a, values_b, strict=True))


def test_a_fixed_mnist_loss_reaches_training_without_rerunning_the_def_cells(mnist_folder, tmp_path):
    runs = execute(rerun_notebook(REPO_ROOT), tmp_path)
    assert same(runs["wrong_default"], runs["wrong_explicit"]), (
        "train_model without loss_func did not use the mnist_loss defined after its cell ran"
    )
    assert same(runs["fixed_default"], runs["fixed_explicit"]), (
        "after fixing mnist_loss, train_model without loss_func still trained with the old loss: "
        "the default loss must be looked up when the function is called, not bound when its cell runs"
    )
    assert not same(runs["fixed_default"], runs["wrong_default"]), "the wrong and the fixed loss trained alike"
    assert runs["fixed_default"]["history"][-1] > 0.9, runs["fixed_default"]["history"]
