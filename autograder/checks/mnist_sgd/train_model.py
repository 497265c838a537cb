"""Hidden checks of train_model (04_mnist_sgd): train_epoch over the epochs, with the validation accuracy of each,
and training linear1 on the real MNIST sample to the calibrated accuracy."""

from __future__ import annotations

from typing import Any

import torch

from autograder.checks.compare import call_student, expect_close
from autograder.checks.data import real_sample
from autograder.checks.mnist_sgd.inputs import bce, linear_model, toy_model, visible_toy_data
from autograder.checks.mnist_sgd.spies import LOSS_FUNC_LR, CountingSGD, LossSpy, call_with_spy, expect_same_training, mse_loss
from autograder.checks.runner import blank, gate
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.checks.training_curves import calibrated_run, curves_of
from autograder.checks.visible import ON_THE_VISIBLE_EXAMPLE
from autograder.data import synthetic_mnist
from autograder.reference import mnist_sgd as ref
from autograder.reference.runs import batches_for

BLANKS = ("train_model",)


@gate
@blank("train_model")
def test_train_model_visible_example(student, device):
    """on the toy problem (one batch, SGD at lr 1, binary cross-entropy), returns the list [1.0, 1.0, 1.0] of Python floats for 3 epochs"""
    x, y = visible_toy_data(device)
    model, _, _ = toy_model(device)
    toy_dl = [(x, y)]
    history = call_student(student.train_model, model, toy_dl, toy_dl, torch.optim.SGD(model.parameters(), lr=1.0), 3, bce)
    assert isinstance(history, list) and len(history) == 3, (
        f"return a list with one accuracy per epoch, got {type(history).__name__}"
        + (f" of length {len(history)}" if isinstance(history, (list, tuple)) else "")
        + f" for 3 epochs {ON_THE_VISIBLE_EXAMPLE}"
    )
    assert all(isinstance(a, float) for a in history), "validate_epoch returns floats: keep them as they are"
    assert all(abs(a - 1.0) < 1e-6 for a in history), f"expected [1.0, 1.0, 1.0], got {history} {ON_THE_VISIBLE_EXAMPLE}"


@blank("train_model")
def test_train_model_returns_one_accuracy_per_epoch(student, device):
    """returns one validation accuracy per epoch, each between 0 and 1, with BasicOptim on 28 x 28 digits"""
    sample = synthetic_mnist(32, seed=4).to(device)
    dl, valid_dl = batches_for(sample, seed=0, batch_size=16)
    model = linear_model(device, 3)
    history = call_student(student.train_model, model, list(dl), list(valid_dl), CountingSGD(model.parameters(), 0.1), 3, ref.mnist_loss)
    assert isinstance(history, (list, tuple)), f"return the list of accuracies, not {type(history).__name__}"
    assert len(history) == 3, f"returned {len(history)} accuracies for 3 epochs: one per epoch"
    values = [float(a) for a in history]
    assert all(0.0 <= a <= 1.0 for a in values), f"accuracies must lie between 0 and 1, got {values}"


@blank("train_model")
def test_train_model_uses_the_batches_it_is_given(student, device):
    """trains on the dl and measures on the valid_dl it is given, not the notebook's: other batches give other results"""
    runs = []
    for seed in (7, 8):
        batches, valid = _synthetic_batches(device, seed)
        model = linear_model(device, 4)
        history = call_student(student.train_model, model, batches, valid, CountingSGD(model.parameters(), 0.1), 1, ref.mnist_loss)
        runs.append(([p.detach().clone() for p in model.parameters()], _floats(history)))
    (params_a, history_a), (params_b, history_b) = runs
    if all(torch.equal(a, b) for a, b in zip(params_a, params_b)):
        raise AssertionError(
            "ignored the dl it was given: two different training sets gave the same weights (did it use the "
            "notebook's own dl?); loop over the dl argument"
        )
    batches, valid = _synthetic_batches(device, 8)
    other_valid = _synthetic_batches(device, 9)[1]
    model = linear_model(device, 4)
    history_c = _floats(call_student(student.train_model, model, batches, other_valid, CountingSGD(model.parameters(), 0.1), 1, ref.mnist_loss))
    expected = (_accuracies_after_one_epoch(device, batches, valid), _accuracies_after_one_epoch(device, batches, other_valid))
    if history_b is not None and history_b == history_c and expected[0] != expected[1]:
        raise AssertionError(
            "ignored the valid_dl it was given: two different validation sets gave the same accuracies (did it use "
            "the notebook's own valid_dl?); call validate_epoch(model, valid_dl) with the argument"
        )


def _floats(history: Any) -> list[float] | None:
    try:
        return [float(a) for a in history]
    except (TypeError, ValueError, RuntimeError):
        return None


def _accuracies_after_one_epoch(device, batches, valid) -> list[float]:
    model = linear_model(device, 4)
    return ref.train_model(model, batches, valid, ref.BasicOptim(model.parameters(), 0.1), 1)


@blank("train_model")
def test_train_model_matches_the_reference_training(student, device):
    """from the same start and batches, ends with the reference's parameters after 3 epochs"""
    batches, valid = _synthetic_batches(device, 5)
    model, twin = linear_model(device, 4), linear_model(device, 4)
    before = [p.detach().clone() for p in model.parameters()]
    opt = CountingSGD(model.parameters(), 0.1)
    history = call_student(student.train_model, model, batches, valid, opt, 3, ref.mnist_loss)
    expected = ref.train_model(twin, batches, valid, ref.BasicOptim(twin.parameters(), 0.1), 3)
    expect_same_training(model, twin, before, opt, None, len(batches), what="after 3 epochs", mistakes={
        "trained only one epoch of 3: call train_epoch inside the loop over range(epochs)": _after_epochs(device, batches, valid, 1),
        "trained one epoch too few: loop over range(epochs)": _after_epochs(device, batches, valid, 2),
        "trained one epoch too many: loop over range(epochs)": _after_epochs(device, batches, valid, 4),
    })
    try:
        got = torch.tensor([float(a) for a in history], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"return a list of accuracies (numbers), one per epoch: {error}") from error
    expect_close(got, torch.tensor(expected, dtype=torch.float32), {
        "measured the accuracy on the training batches: call validate_epoch(model, valid_dl)":
            torch.tensor(_accuracies_on(device, batches, valid, 3, on_training=True), dtype=torch.float32),
    }, what="the returned accuracies (validate_epoch after each epoch)")


@blank("train_model")
def test_train_model_uses_the_given_loss_function(student, device):
    """trains with the loss_func it is given"""
    batches, valid = _synthetic_batches(device, 6)
    model, twin = linear_model(device, 5), linear_model(device, 5)
    before = [p.detach().clone() for p in model.parameters()]
    spy, opt = LossSpy(), CountingSGD(model.parameters(), LOSS_FUNC_LR)
    call_with_spy(student.train_model, model, batches, valid, opt, 1, spy, spy=spy, fix="pass it on to train_epoch")
    ref.train_model(twin, batches, valid, ref.BasicOptim(twin.parameters(), LOSS_FUNC_LR), 1, mse_loss)
    expect_same_training(model, twin, before, opt, spy, len(batches), what="after 1 epoch with another loss_func")


def _synthetic_batches(device, seed: int) -> tuple[list, list]:
    """Training and validation batches of 16 from the small synthetic digits generated with ``seed``."""
    dl, valid_dl = batches_for(synthetic_mnist(32, seed=seed).to(device), seed=0, batch_size=16)
    return list(dl), list(valid_dl)


def _after_epochs(device, batches, valid, epochs):
    model = linear_model(device, 4)
    ref.train_model(model, batches, valid, ref.BasicOptim(model.parameters(), 0.1), epochs)
    return model.weights.detach()


def _accuracies_on(device, batches, valid, epochs, on_training=False):
    """The reference's accuracies after each epoch, measured on the validation (or the training) batches."""
    model = linear_model(device, 4)
    opt = ref.BasicOptim(model.parameters(), 0.1)
    history = []
    for _ in range(epochs):
        ref.train_epoch(model, batches, opt)
        history.append(ref.validate_epoch(model, batches if on_training else valid))
    return history


@blank("train_model")
def test_train_model_reaches_the_calibrated_accuracy(student, device, artifacts):
    """trains linear1 on the MNIST sample to the accuracy the reference reliably reaches"""
    loss_func = getattr(student, "mnist_loss", None)
    run = calibrated_run(real_sample(device), device, student.train_model, loss_func)
    artifacts["curves"] = curves_of(run, loss_func)
    accuracy = run.final_accuracy
    assert accuracy >= TRAIN_MODEL.threshold, (
        f"validation accuracy {accuracy:.4f} after {TRAIN_MODEL.epochs} epochs is below {TRAIN_MODEL.threshold:.4f}, "
        "which the reference always reaches: check the loop over epochs and batches"
    )
