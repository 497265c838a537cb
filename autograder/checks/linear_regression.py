"""Hidden checks for 02_linear_regression: update."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.compare import (
    call_student,
    expect_close,
    expect_still_a_parameter,
    grad_is_cleared,
    reference_step_on_a_copy,
)
from autograder.checks.gradient_descent import step_mistakes
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, learning_rates, random_tensor, seeds
from autograder.reference import linear_regression as ref
from autograder.reference.gradient_descent import mse

BLANKS = ("update",)
NEEDS_MNIST_SAMPLE = False
"""False: no check uses the real MNIST sample (see `runner.assignment_needs_sample`)."""


def _setup(device, dtype=torch.float32, seed=42, n=100):
    x, y = ref.lesson_data(n=n, seed=seed, device=device)
    return x.to(dtype), y.to(dtype), ref.start_params(device).to(dtype).detach().requires_grad_()


def _reference_step(a, x, y, lr):
    return reference_step_on_a_copy(ref.update, a, x, y, lr)


@gate
@blank("update")
def test_update_returns_the_loss_before_the_step(student, device):
    """returns the mse of x@a against y, computed before the step"""
    x, y, a = _setup(device)
    expected_a, expected_loss = _reference_step(a, x, y, 0.1)
    loss = call_student(student.update, a, x, y, 0.1)
    assert loss is not None, "update returned nothing: return the loss"
    expect_close(loss, expected_loss, {
        "returned the loss after the step: return the one computed before stepping": mse(x @ expected_a, y),
        "returned the sum of squared errors: the loss is their mean (mse)": ((x @ _setup(device)[2].detach() - y) ** 2).sum(),
    }, what="the returned loss")


@gate
@blank("update")
@CHECK_SETTINGS
@given(lr=learning_rates, dtype=dtypes, seed=seeds)
def test_update_steps_a_in_place(student, device, lr, dtype, seed):
    """updates a in place by -lr * grad of the mse, on random data"""
    x, y, a = _setup(device, dtype, seed % 1000, n=20)
    expected, _ = _reference_step(a, x, y, lr)
    before = a.detach().clone()
    grad = (expected - before) / -lr
    call_student(student.update, a, x, y, lr)
    expect_close(a.detach(), expected, step_mistakes(before, grad, lr), what="a after the step")
    expect_still_a_parameter(a, "a")


@gate
@blank("update")
def test_update_zeroes_the_gradient(student, device):
    """zeroes a.grad after the step, so a second update matches the reference's second update"""
    x, y, a = _setup(device)
    twin = a.detach().clone().requires_grad_()
    call_student(student.update, a, x, y, 0.1)
    assert grad_is_cleared(a), "forgot a.grad.zero_() after the step: gradients would add up across steps"
    ref.update(twin, x, y, 0.1)
    call_student(student.update, a, x, y, 0.1)
    ref.update(twin, x, y, 0.1)
    expect_close(a.detach(), twin.detach(), what="a after two updates")


@blank("update")
def test_update_fits_the_lesson_data_in_100_steps(student, device):
    """reaches the reference's loss after 100 steps at lr 0.1 from (-1, 1)"""
    x, y, a = _setup(device)
    twin = a.detach().clone().requires_grad_()
    losses = [call_student(student.update, a, x, y, 0.1) for _ in range(100)]
    reference = ref.fit(twin, x, y, 0.1, 100)
    expect_close(a.detach(), twin.detach(), what="a after 100 steps")
    expect_close(float(losses[-1]), torch.tensor(reference[-1]), what="the last loss")


@blank("update")
@CHECK_SETTINGS
@given(n=st.integers(2, 30), seed=seeds)
def test_update_works_for_any_number_of_points(student, device, n, seed):
    """works for any number of points (shapes (n, 2) and (n,))"""
    x = random_tensor((n, 2), seed, torch.float64, device)
    y = random_tensor((n,), seed + 1, torch.float64, device)
    a = random_tensor((2,), seed + 2, torch.float64, device).requires_grad_()
    expected, _ = _reference_step(a, x, y, 0.05)
    call_student(student.update, a, x, y, 0.05)
    expect_close(a.detach(), expected, what="a after the step")
