"""Hidden checks of batch_accuracy (04_mnist_sgd): the fraction of a batch whose sigmoid lands on the right side of 0.5."""

from __future__ import annotations

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, device_for, expect_close
from autograder.checks.confirmed import call_on_copies
from autograder.checks.mnist_sgd.inputs import loss_inputs
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, seeds
from autograder.checks.visible import expect_number_as_visible, shape_or_type_name
from autograder.reference import mnist_sgd as ref

BLANKS = ("batch_accuracy",)


def accuracy_mistakes(xb, yb):
    correct = (xb.sigmoid() > 0.5) == yb
    return {
        "returned the number of correct predictions: return the fraction (.float().mean())": correct.float().sum(),
        "thresholded the raw predictions at 0.5: apply sigmoid first (or compare the raw predictions with 0)": ((xb > 0.5) == yb).float().mean(),
        "compared the wrong way: a prediction above 0.5 means a 3 (target 1)": ((xb.sigmoid() < 0.5) == yb).float().mean(),
        "shapes do not match: yb is (n, 1), so compare with predictions of shape (n, 1), not (n,)": ((xb.sigmoid() > 0.5).view(-1) == yb).float().mean(),
    }


@gate
@blank("batch_accuracy")
def test_batch_accuracy_visible_example(student, device):
    """gives 2/3, a 0-d float32 tensor, for predictions [[0.9], [-0.4], [0.2]] and targets [[1], [0], [0]]"""
    xb, yb = torch.tensor([[0.9], [-0.4], [0.2]]), torch.tensor([[1], [0], [0]])
    acc = call_student(student.batch_accuracy, xb.to(device), yb.to(device))
    assert isinstance(acc, Tensor) and acc.shape == () and acc.dtype == torch.float32, (
        f"return a 0-d float tensor, got {acc.dtype if isinstance(acc, Tensor) else type(acc).__name__} of {shape_or_type_name(acc)}"
    )
    expect_number_as_visible(acc.item(), 2 / 3, 1e-6, accuracy_mistakes(xb, yb), "batch_accuracy")


def _reference_accuracy(xb: Tensor, yb: Tensor) -> Tensor:
    return ref.batch_accuracy(xb, yb).double()


@blank("batch_accuracy")
@CHECK_SETTINGS
@given(seed=seeds, dtype=dtypes)
def test_batch_accuracy_matches_reference(student, device, seed, dtype):
    """gives the fraction of a batch classified right, for (n, 1) predictions and targets, leaving them unchanged"""
    xb, yb = loss_inputs(10, seed, dtype, device_for(dtype, device))
    result, expected, mistakes = call_on_copies(student.batch_accuracy, _reference_accuracy, accuracy_mistakes, [xb, yb], ["xb", "yb"])
    expect_close(result, expected, mistakes, what="the accuracy")


@blank("batch_accuracy")
def test_batch_accuracy_extremes(student, device):
    """gives 1.0 for a perfect batch and 0.0 for an all-wrong one"""
    yb = torch.tensor([[1.0], [0.0], [1.0], [0.0]], device=device)
    perfect = (yb * 2 - 1) * 5
    expect_close(call_student(student.batch_accuracy, perfect.clone(), yb.clone()), torch.tensor(1.0, dtype=torch.float64), accuracy_mistakes(perfect, yb), what="a perfect batch's accuracy")
    expect_close(call_student(student.batch_accuracy, -perfect, yb.clone()), torch.tensor(0.0, dtype=torch.float64), accuracy_mistakes(-perfect, yb), what="an all-wrong batch's accuracy")
