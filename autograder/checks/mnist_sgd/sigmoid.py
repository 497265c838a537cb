"""Hidden checks of sigmoid (04_mnist_sgd): ``1 / (1 + exp(-x))`` elementwise, on tensors of any shape."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import (
    call_student, device_for, expect_close, expect_dtype_and_device, expect_gradcheck, expect_same_gradients, expect_unchanged,
)
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, random_tensor, seeds, vector_shapes
from autograder.checks.visible import expect_as_visible, expect_number_as_visible
from autograder.reference import mnist_sgd as ref

BLANKS = ("sigmoid",)

USED_A_PYTHON_NUMBER = (
    "turned the tensor into one Python number (math.exp, float() or .item()?): use torch.exp, which works on "
    "every element of a tensor"
)


def sigmoid_mistakes(x):
    return {
        "wrong sign inside exp: sigmoid is 1 / (1 + exp(-x))": 1 / (1 + torch.exp(x)),
        "used tanh: sigmoid is 1 / (1 + exp(-x)), between 0 and 1": torch.tanh(x),
        "forgot the 1 + in the denominator: sigmoid is 1 / (1 + exp(-x))": 1 / torch.exp(-x),
    }


def _call_sigmoid(student, x: Tensor) -> Any:
    """``student.sigmoid(x)``; a conversion of a tensor of several numbers to one Python number is named."""
    try:
        result = call_student(student.sigmoid, x)
    except AssertionError as error:
        if "only one element tensors can be converted" in str(error) or "a Tensor with" in str(error) and "Scalar" in str(error):
            raise AssertionError(USED_A_PYTHON_NUMBER) from error
        raise
    if isinstance(result, float) and isinstance(x, Tensor):
        raise AssertionError(f"returned a Python float for a tensor: {USED_A_PYTHON_NUMBER}")
    return result


@gate
@blank("sigmoid")
def test_sigmoid_visible_example(student, device):
    """gives [0.119203, 0.880797] at [-2, 2], 0.5 at 0, and keeps a (3, 1) input's shape"""
    x = torch.tensor([-2.0, 2.0], device=device)
    got = _call_sigmoid(student, x)
    assert isinstance(got, Tensor), f"returned {type(got).__name__}: {USED_A_PYTHON_NUMBER}"
    expect_as_visible(got, torch.tensor([0.119203, 0.880797]), sigmoid_mistakes(torch.tensor([-2.0, 2.0])), "sigmoid([-2, 2])", atol=1e-5)
    got = _call_sigmoid(student, torch.tensor(0.0, device=device))
    assert isinstance(got, Tensor), f"returned {type(got).__name__}: {USED_A_PYTHON_NUMBER}"
    expect_number_as_visible(got.item(), 0.5, 1e-6, sigmoid_mistakes(torch.tensor(0.0)), "sigmoid(0)")
    shape = tuple(_call_sigmoid(student, torch.zeros(3, 1, device=device)).shape)
    assert shape == (3, 1), f"sigmoid of a (3, 1) tensor has shape {shape}: keep the input's shape"


@blank("sigmoid")
def test_sigmoid_known_values(student, device):
    """gives 0.5 at 0 and approaches 1 and 0 for large and very negative inputs"""
    x = torch.tensor([0.0, 2.0, -2.0, 10.0, -10.0], device=device)
    expected, mistakes = torch.sigmoid(x), sigmoid_mistakes(x)
    expect_close(_call_sigmoid(student, x.clone()), expected, mistakes)


@blank("sigmoid")
@CHECK_SETTINGS
@given(shape=vector_shapes, dtype=dtypes, seed=seeds)
def test_sigmoid_matches_torch_sigmoid(student, device, shape, dtype, seed):
    """matches torch.sigmoid elementwise on (n,) and (n, 1) inputs, keeping dtype and device and the input unchanged"""
    x = random_tensor(shape, seed, dtype, device_for(dtype, device), -8, 8)
    before = x.clone()
    expected, mistakes = torch.sigmoid(before), sigmoid_mistakes(before)
    result = _call_sigmoid(student, x)
    expect_unchanged([before], [x], ["x"])
    expect_close(result, expected, mistakes)
    expect_dtype_and_device(result, x)


@blank("sigmoid")
def test_sigmoid_gradients(student, device):
    """has the reference's gradient and passes gradcheck"""
    x = random_tensor((6, 1), 0, torch.float64, device_for(torch.float64, device), -4, 4)
    expect_same_gradients(student.sigmoid, ref.sigmoid, [x], ["x"])
    expect_gradcheck(student.sigmoid, [x])
