"""Hidden checks of mse and mae, the two losses of 01_gradient_descent (one parametrized check per kind).

``LOSSES`` names the two blanks; a new loss is one more entry here, plus its own known mistakes in
``loss_mistakes`` and its visible test in ``VISIBLE_LOSS_EXAMPLES``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, device_for, expect_dtype_and_device, expect_gradcheck, expect_same_gradients
from autograder.checks.confirmed import call_watching_inputs, confirmed_mistake, expect_close_confirmed, expect_inputs_left_alone
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, random_tensor, seeds, vector_shapes
from autograder.checks.visible import as_number
from autograder.reference import gradient_descent as ref

BLANKS = ("mse", "mae")

LOSSES = [pytest.param("mse", marks=blank("mse"), id="mse"), pytest.param("mae", marks=blank("mae"), id="mae")]


def loss_mistakes(name: str, preds: torch.Tensor, acts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Results of the usual wrong versions of ``name``, each with the message that explains it."""
    diff = preds - acts
    common = {
        "forgot .mean(): this returns the sum of the errors, not their average": (diff**2 if name == "mse" else diff.abs()).sum(),
        "forgot to take absolute values or squares: positive and negative errors cancel out": diff.mean(),
        "squared the wrong thing: square the difference (preds - acts), not the inputs": (preds**2 - acts**2).mean(),
        "squared the wrong thing: square the difference (preds - acts), not only acts": (preds - acts**2).mean(),
    }
    if name == "mse":
        return {
            **common,
            "took absolute values: that is mae; mse squares the differences": diff.abs().mean(),
            "took the square root: that is the root mean squared error; mse stops at the mean": (diff**2).mean().sqrt(),
        }
    return {
        **common,
        "squared the differences: that is mse; mae takes their absolute values": (diff**2).mean(),
        "took the absolute value after averaging: take .abs() of each difference, then .mean()": diff.mean().abs(),
    }


VISIBLE_LOSS_EXAMPLES = {
    "mse": [
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 5.0]), 5 / 3, 1e-5, "expected 5/3 = 1.6667", "on the lesson's example"),
        (torch.zeros(4, 1), torch.ones(4, 1), 1.0, 1e-6, "expected 1.0", "on columns of shape (4, 1)"),
    ],
    "mae": [
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 5.0]), 1.0, 1e-6, "expected 1.0", "on the lesson's example"),
        (torch.tensor([2.0, 0.0]), torch.tensor([1.0, 3.0]), 2.0, 1e-6, "expected 2.0", "on errors of both signs"),
    ],
}
"""The visible test of each loss: (preds, acts, expected, tolerance, message start, example), in the notebook's order."""


@gate
@pytest.mark.parametrize("name", LOSSES)
def test_loss_on_lesson_example(student, name):
    """gives the right number on the lesson's small example"""
    fn = getattr(student, name)
    for index, (preds, acts, expected, tolerance, wanted, example) in enumerate(VISIBLE_LOSS_EXAMPLES[name]):
        result = call_student(fn, preds.clone(), acts.clone())
        if index == 0:
            assert isinstance(result, Tensor), (
                f"{name} should return a tensor, not a Python number: it returned {type(result).__name__}"
            )
            assert result.shape == (), f"{name} should return a 0-d tensor, got shape {tuple(result.shape)}"
        got = as_number(result, f"what {name} returned")
        assert abs(got - expected) < tolerance, (
            f"{wanted}, got {got:.4f} {example}" + confirmed_mistake(got, loss_mistakes(name, preds, acts))
        )


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, dtype=dtypes, seed=seeds)
def test_loss_matches_reference_on_random_inputs(student, device, name, shape, dtype, seed):
    """matches the reference on random (n,) and (n, 1) inputs in float32 and float64, keeping dtype and device"""
    on = device_for(dtype, device)
    preds, acts = random_tensor(shape, seed, dtype, on), random_tensor(shape, seed + 1, dtype, on)
    expected, mistakes = getattr(ref, name)(preds, acts), loss_mistakes(name, preds, acts)
    result = call_watching_inputs(getattr(student, name), preds, acts, watch={"preds": preds, "acts": acts})
    expect_close_confirmed(result, expected, mistakes)
    expect_dtype_and_device(result, preds)


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, seed=seeds)
def test_loss_gradients_match_reference(student, device, name, shape, seed):
    """has the reference's gradients with respect to preds and acts"""
    on = device_for(torch.float64, device)
    inputs = [random_tensor(shape, seed, torch.float64, on), random_tensor(shape, seed + 1, torch.float64, on)]
    expect_inputs_left_alone(getattr(student, name), inputs, ["preds", "acts"])
    expect_same_gradients(getattr(student, name), getattr(ref, name), inputs, ["preds", "acts"])


@pytest.mark.parametrize("name", LOSSES)
def test_loss_passes_gradcheck(student, device, name):
    """passes torch.autograd.gradcheck in float64"""
    on = device_for(torch.float64, device)
    inputs = [random_tensor((5, 1), 3, torch.float64, on), random_tensor((5, 1), 4, torch.float64, on)]
    expect_inputs_left_alone(getattr(student, name), inputs, ["preds", "acts"])
    expect_gradcheck(getattr(student, name), inputs)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_does_not_modify_its_inputs(student, device, name):
    """leaves its inputs unchanged"""
    preds, acts = random_tensor((6,), 5, torch.float32, device), random_tensor((6,), 6, torch.float32, device)
    call_watching_inputs(getattr(student, name), preds, acts, watch={"preds": preds, "acts": acts})
