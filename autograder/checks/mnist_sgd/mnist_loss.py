"""Hidden checks of mnist_loss (04_mnist_sgd): the mean distance of the sigmoid of each prediction to its target."""

from __future__ import annotations

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, device_for, expect_close, expect_dtype_and_device, expect_gradcheck
from autograder.checks.compare import expect_same_gradients
from autograder.checks.confirmed import call_on_copies
from autograder.checks.mnist_sgd.inputs import loss_inputs
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, seeds
from autograder.checks.visible import expect_number_as_visible
from autograder.reference import mnist_sgd as ref

BLANKS = ("mnist_loss",)


def loss_mistakes(predictions, targets):
    p = torch.sigmoid(predictions)
    return {
        "forgot to apply sigmoid: squash the predictions into (0, 1) first": torch.where(targets == 1, 1 - predictions, predictions).mean(),
        "swapped the two cases: for a 3 (target 1) the loss is 1 - p, for a 7 it is p": torch.where(targets == 1, p, 1 - p).mean(),
        "forgot .mean(): this returns the sum over the batch": torch.where(targets == 1, 1 - p, p).sum(),
        "applied sigmoid twice": torch.where(targets == 1, 1 - torch.sigmoid(p), torch.sigmoid(p)).mean(),
        "used accuracy as the loss: it hardly changes when weights change, so its gradient is zero almost everywhere":
            ((p > 0.5).float() == targets).float().mean(),
        "used 1 - accuracy as the loss: its gradient is zero almost everywhere": 1 - ((p > 0.5).float() == targets).float().mean(),
        "flattened the targets: predictions of shape (n, 1) and targets of shape (n,) broadcast to an (n, n) table; "
        "keep both of shape (n, 1)": torch.where(targets.reshape(-1) == 1, 1 - p, p).mean(),
    }


def visible_loss_examples() -> list[tuple[Tensor, Tensor, float]]:
    """The visible test's two examples of ``mnist_loss``: (predictions, targets, expected loss)."""
    return [
        (torch.tensor([[0.0], [2.0]]), torch.tensor([[1], [0]]), 0.690399),
        (torch.tensor([0.9, 0.4, 0.2]), torch.tensor([1, 0, 1]), 0.445968),
    ]


@gate
@blank("mnist_loss")
def test_mnist_loss_visible_example(student, device):
    """gives 0.690399 (a 0-d tensor) on the worked example and 0.445968 on the lesson's toy predictions"""
    for index, (predictions, targets, expected) in enumerate(visible_loss_examples()):
        loss = call_student(student.mnist_loss, predictions.to(device), targets.to(device))
        if not isinstance(loss, Tensor):
            raise AssertionError(f"returned {type(loss).__name__}, not a tensor: keep the loss a 0-d tensor (no .item() or float())")
        if index == 0:
            assert loss.shape == (), f"the loss should be a 0-d tensor, got shape {tuple(loss.shape)}: take the .mean()"
        expect_number_as_visible(loss.item(), expected, 1e-5, loss_mistakes(predictions, targets), "mnist_loss")


@blank("mnist_loss")
def test_mnist_loss_on_the_lesson_example(student, device):
    """gives the reference's value on the lesson's example (predictions 0.9, 0.4, 0.2; targets 1, 0, 1) as (n, 1)"""
    predictions = torch.tensor([[0.9], [0.4], [0.2]], device=device)
    targets = torch.tensor([[1.0], [0.0], [1.0]], device=device)
    expected, mistakes = ref.mnist_loss(predictions, targets), loss_mistakes(predictions, targets)
    result = call_student(student.mnist_loss, predictions.clone(), targets.clone())
    expect_close(result, expected, mistakes)


@blank("mnist_loss")
@CHECK_SETTINGS
@given(dtype=dtypes, seed=seeds)
def test_mnist_loss_matches_reference(student, device, dtype, seed):
    """matches the reference on random batches in float32 and float64, keeping dtype and device and the inputs unchanged"""
    predictions, targets = loss_inputs(9, seed, dtype, device_for(dtype, device))
    result, expected, mistakes = call_on_copies(
        student.mnist_loss, ref.mnist_loss, loss_mistakes, [predictions, targets], ["predictions", "targets"])
    expect_close(result, expected, mistakes)
    expect_dtype_and_device(result, predictions)


@blank("mnist_loss")
def test_mnist_loss_gradients(student, device):
    """has the reference's gradient with respect to the predictions and passes gradcheck"""
    predictions, targets = loss_inputs(8, 11, torch.float64, device_for(torch.float64, device))
    try:
        expect_same_gradients(lambda p: student.mnist_loss(p, targets), lambda p: ref.mnist_loss(p, targets), [predictions], ["predictions"])
    except AssertionError as error:
        if "cut off from autograd" in str(error):
            raise AssertionError(
                "no gradient flows from the loss: did you use accuracy (a comparison like > 0.5) as the loss? "
                "Use the sigmoid's distance to the target instead"
            ) from error
        raise
    expect_gradcheck(lambda p: student.mnist_loss(p, targets), [predictions])
