"""Hidden checks for 02_linear_regression: update.

The gate, ``test_update_passes_the_visible_test``, runs exactly the inputs, assertions and tolerances of the
visible test in the notebook, on the CPU as the notebook does. Every other check gives partial credit: random
data, float64, other data than the notebook's globals ``x`` and ``y``, inputs left unchanged.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from autograder.checks.compare import (
    call_student,
    device_for,
    expect_still_a_parameter,
    expect_unchanged,
    grad_is_cleared,
    reference_step_on_a_copy,
)
from autograder.checks.confirmed import (
    call_watching_inputs,
    confirmed_mistake,
    copies,
    expect_close_confirmed,
    lesson_global_variants,
    used_globals_message,
)
from autograder.checks.gradient_descent.gd_step import step_mistakes
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, learning_rates, random_tensor, seeds
from autograder.checks.visible import VISIBLE_DEVICE, as_number, shape_or_type, visible_allclose
from autograder.reference import linear_regression as ref
from autograder.reference.gradient_descent import mse

BLANKS = ("update",)
UPDATES_PARAMETERS: tuple[str, ...] = ("update",)
"""Blanks that update parameters in place: an in-place error there means a step outside ``torch.no_grad()``."""
NEEDS_MNIST_SAMPLE = False
"""False: no check uses the real MNIST sample (see `declared.assignment_needs_sample`)."""


def _setup(device, dtype=torch.float32, seed=42, n=100):
    on = device_for(dtype, device)
    x, y = ref.lesson_data(n=n, seed=seed, device=on)
    return x.to(dtype), y.to(dtype), ref.start_params(on).to(dtype).detach().requires_grad_()


def _reference_step(a, x, y, lr):
    return reference_step_on_a_copy(ref.update, a, x, y, lr)


def loss_mistakes(a_before: Tensor, a_after: Tensor, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The losses the usual wrong versions of ``update`` return, from ``a_before`` (``a_after``: the right step)."""
    return {
        "returned the loss after the step: return the one computed before stepping": mse(x @ a_after, y),
        "returned the sum of squared errors: the loss is their mean (mse)": ((x @ a_before - y) ** 2).sum(),
    }


def a_mistakes(before: Tensor, grad: Tensor, lr: float, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The values of ``a`` after the usual wrong steps, with their messages."""
    leaf = before.clone().requires_grad_()
    ((x @ leaf - y) ** 2).sum().backward()
    return {
        **step_mistakes(before, grad, lr, "a"),
        "stepped with the gradient of the sum of squared errors: the loss is their mean (mse)": before - lr * leaf.grad,
    }


VISIBLE_LOSS, VISIBLE_A_AFTER = 8.2318, (-0.7114, 1.3168)
"""The visible test: the loss of (-1, 1) on the lesson's data (within 1e-3), and a after one step at lr 0.1 (atol 1e-3)."""


@gate
@blank("update")
def test_update_passes_the_visible_test(student):
    """passes the visible test: one step at lr 0.1 from (-1, 1) on the lesson's data, then a second step"""
    x, y = ref.lesson_data(device=VISIBLE_DEVICE)
    a_test = torch.tensor([-1.0, 1.0]).requires_grad_()
    expected_a, _ = _reference_step(a_test, x, y, 0.1)
    before = a_test.detach().clone()
    inputs = copies({"x": x, "y": y})
    loss = call_student(student.update, a_test, x, y, lr=0.1)
    assert loss is not None, "update returned nothing: return the loss"
    assert isinstance(loss, Tensor) and loss.shape == (), (
        f"update should return the loss as a 0-d tensor, got {shape_or_type(loss)}"
    )
    expect_unchanged(list(inputs.values()), [x, y], list(inputs))
    got = loss.item()
    assert abs(got - VISIBLE_LOSS) < 1e-3, (
        f"the loss before the first step should be about {VISIBLE_LOSS}, got {got:.4f}"
        + confirmed_mistake(got, loss_mistakes(before, expected_a, x, y))
    )
    assert visible_allclose(a_test.detach(), torch.tensor(VISIBLE_A_AFTER), atol=1e-3), (
        f"after one step from (-1, 1) with lr 0.1, a should be about {VISIBLE_A_AFTER}, "
        f"got {tuple(round(v, 4) for v in a_test.detach().tolist())}"
        + confirmed_mistake(a_test.detach(), a_mistakes(before, (expected_a - before) / -0.1, 0.1, x, y))
    )
    assert a_test.requires_grad, "a should still require grad after the step: update it in place"
    assert a_test.grad is None or visible_allclose(a_test.grad, torch.zeros(2)), (
        "forgot a.grad.zero_() after the step: gradients would add up across steps"
    )
    second = call_student(student.update, a_test, x, y, lr=0.1)
    assert as_number(second, "the second loss") < got, "the loss should go down from one step to the next"


@blank("update")
def test_update_returns_the_loss_before_the_step(student, device):
    """returns the mse of x@a against y, computed before the step"""
    x, y, a = _setup(device)
    before = a.detach().clone()
    expected_a, expected_loss = _reference_step(a, x, y, 0.1)
    loss = call_watching_inputs(student.update, a, x, y, 0.1, watch={"x": x, "y": y})
    assert loss is not None, "update returned nothing: return the loss"
    expect_close_confirmed(loss, expected_loss, loss_mistakes(before, expected_a, x, y), what="the returned loss")


@blank("update")
@CHECK_SETTINGS
@given(lr=learning_rates, dtype=dtypes, seed=seeds)
def test_update_steps_a_in_place(student, device, lr, dtype, seed):
    """updates a in place by -lr * grad of the mse, on random data, in float32 and float64"""
    x, y, a = _setup(device, dtype, seed % 1000, n=20)
    expected, _ = _reference_step(a, x, y, lr)
    before = a.detach().clone()
    grad = (expected - before) / -lr
    call_watching_inputs(student.update, a, x, y, lr, watch={"x": x, "y": y})
    expect_close_confirmed(a.detach(), expected, a_mistakes(before, grad, lr, x, y), what="a after the step")
    expect_still_a_parameter(a, "a")


@blank("update")
def test_update_zeroes_the_gradient(student, device):
    """zeroes a.grad after the step, so a second update matches the reference's second update"""
    x, y, a = _setup(device)
    twin = a.detach().clone().requires_grad_()
    call_watching_inputs(student.update, a, x, y, 0.1, watch={"x": x, "y": y})
    assert grad_is_cleared(a), "forgot a.grad.zero_() after the step: gradients would add up across steps"
    ref.update(twin, x, y, 0.1)
    call_student(student.update, a, x, y, 0.1)
    ref.update(twin, x, y, 0.1)
    expect_close_confirmed(a.detach(), twin.detach(), what="a after two updates")


@blank("update")
def test_update_fits_the_lesson_data_in_100_steps(student, device):
    """reaches the reference's loss after 100 steps at lr 0.1 from (-1, 1)"""
    x, y, a = _setup(device)
    twin = a.detach().clone().requires_grad_()
    losses = [call_watching_inputs(student.update, a, x, y, 0.1, watch={"x": x, "y": y}) for _ in range(100)]
    reference = ref.fit(twin, x, y, 0.1, 100)
    expect_close_confirmed(a.detach(), twin.detach(), what="a after 100 steps")
    expect_close_confirmed(as_number(losses[-1], "the last loss"), torch.tensor(reference[-1]), what="the last loss")


@blank("update")
@CHECK_SETTINGS
@given(n=st.integers(2, 30), seed=seeds)
def test_update_works_for_any_number_of_points(student, device, n, seed):
    """works for any number of points (shapes (n, 2) and (n,))"""
    on = device_for(torch.float64, device)
    x = random_tensor((n, 2), seed, torch.float64, on)
    y = random_tensor((n,), seed + 1, torch.float64, on)
    a = random_tensor((2,), seed + 2, torch.float64, on).requires_grad_()
    expected, _ = _reference_step(a, x, y, 0.05)
    call_watching_inputs(student.update, a, x, y, 0.05, watch={"x": x, "y": y})
    expect_close_confirmed(a.detach(), expected, what="a after the step")


OTHER_DATA_SEED, OTHER_START = 7, (0.5, -0.5)
"""Data other than the lesson's (the same shapes, another seed) and another starting point."""


@blank("update")
def test_update_uses_its_x_and_y(student, device):
    """uses the x and y it is given and leaves them unchanged (checked with data other than the lesson's)"""
    given = dict(zip(("x", "y"), ref.lesson_data(seed=OTHER_DATA_SEED, device=device)))
    lesson = dict(zip(("x", "y"), ref.lesson_data(device=device)))
    a = torch.tensor(OTHER_START, device=device).requires_grad_()
    expected_a, expected_loss = _reference_step(a, given["x"], given["y"], 0.1)
    wrong_a, wrong_loss = {}, {}
    for names, data in lesson_global_variants(given, lesson):
        message = used_globals_message(names, "update")
        wrong_a[message], wrong_loss[message] = _reference_step(a, data["x"], data["y"], 0.1)
    loss = call_watching_inputs(student.update, a, given["x"], given["y"], 0.1, watch=given)
    expect_close_confirmed(a.detach(), expected_a, wrong_a, what="a after a step on other data")
    expect_close_confirmed(loss, expected_loss, wrong_loss, what="the loss on other data")
