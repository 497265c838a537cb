"""Hidden checks of fit_quadratic (01_gradient_descent): the loop of loss, backward and gd_step, with its losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from autograder.checks.compare import call_student
from autograder.checks.confirmed import (
    call_watching_inputs,
    confirmed_mistake,
    expect_close_confirmed,
    lesson_global_variants,
    used_globals_message,
)
from autograder.checks.runner import blank, gate
from autograder.checks.visible import VISIBLE_DEVICE
from autograder.reference import gradient_descent as ref

BLANKS = ("fit_quadratic",)


def _step_keeping_the_gradient(params: Tensor, x: Tensor, y: Tensor, lr: float) -> float:
    """One pass of ``fit_quadratic``'s loop that never resets ``params.grad``; returns the loss before the step."""
    loss = ref.quad_mse(params, x, y)
    loss.backward()
    with torch.no_grad():
        params -= lr * params.grad
    return loss.item()


def accumulating_losses(x, y, lr, steps, device, start=ref.LESSON_START) -> list[float]:
    """What ``fit_quadratic`` returns when the gradient is never reset (it accumulates)."""
    params = torch.tensor(start, device=device).requires_grad_()
    return [_step_keeping_the_gradient(params, x, y, lr) for _ in range(steps)]


def reference_fit(x, y, lr, steps, device, start=ref.LESSON_START) -> tuple[Tensor, Tensor]:
    """The reference's losses (float64) and final parameters after ``steps`` steps from ``start``."""
    params = torch.tensor(start, device=device).requires_grad_()
    losses = ref.fit_quadratic(params, x, y, lr, steps)
    return torch.tensor(losses, dtype=torch.float64), params.detach()


def losses_mistakes(x, y, lr, steps, device, start=ref.LESSON_START) -> dict[str, Tensor]:
    """The lists of losses the usual wrong loops return, with their messages."""
    return {
        "gradients accumulate across steps: reset params.grad (zero_()) after every step":
            torch.tensor(accumulating_losses(x, y, lr, steps, device, start)),
        "recorded the loss after the step: append the loss computed before stepping":
            torch.tensor(ref.fit_quadratic(torch.tensor(start, device=device).requires_grad_(), x, y, lr, steps + 1)[1:]),
    }


VISIBLE_LOSSES = (18.35, 15.74, 13.58)
"""The losses the visible test expects from the lesson's start for 3 steps at lr 0.01 (within 0.01)."""


def _losses_as_tensor(losses: Any) -> Tensor:
    try:
        return torch.tensor([float(loss) for loss in losses], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"each loss must be a number or a 0-d tensor: {error}") from error


@gate
@blank("fit_quadratic")
def test_fit_quadratic_passes_the_visible_test(student):
    """passes the visible test: 3 steps at lr 0.01 from (1.1, 1.1, 1.1) on the lesson's data"""
    x, y = ref.lesson_data(device=VISIBLE_DEVICE)
    p = torch.tensor([1.1, 1.1, 1.1]).requires_grad_()
    losses = call_student(student.fit_quadratic, p, x.clone(), y.clone(), lr=0.01, steps=3)
    assert isinstance(losses, list) and len(losses) == 3, (
        f"return a list with one loss per step: got {type(losses).__name__}"
        + (f" of length {len(losses)}" if isinstance(losses, (list, tuple)) else "")
    )
    assert all(isinstance(loss, float) for loss in losses), (
        f"the losses should be Python floats: use loss.item() (got {type(losses[0]).__name__})"
    )
    wrong = losses_mistakes(x, y, 0.01, 3, VISIBLE_DEVICE)
    for index, (got, expected, which) in enumerate(zip(losses, VISIBLE_LOSSES, ("first loss (before any step)", "second loss", "third loss"))):
        assert abs(got - expected) < 0.01, (
            f"the {which} should be about {expected}, got {got:.3f}"
            + confirmed_mistake(got, {message: values[index] for message, values in wrong.items()})
        )


@blank("fit_quadratic")
def test_fit_quadratic_returns_the_reference_losses(student, device):
    """returns the loss before each step, as the reference does, for 10 steps from the lesson's start"""
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    losses = call_watching_inputs(student.fit_quadratic, params, x, y, 0.01, 10, watch={"x": x, "y": y})
    assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
    assert len(losses) == 10, f"returned {len(losses)} losses for 10 steps: record one loss per step"
    expected, _ = reference_fit(x, y, 0.01, 10, device)
    wrong = losses_mistakes(x, y, 0.01, 10, device)
    expect_close_confirmed(_losses_as_tensor(losses), expected.float(), wrong, what="the list of losses")


@blank("fit_quadratic")
def test_fit_quadratic_updates_params_like_the_reference(student, device):
    """leaves params where the reference's 10 steps leave them"""
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    call_watching_inputs(student.fit_quadratic, params, x, y, 0.01, 10, watch={"x": x, "y": y})
    _, expected = reference_fit(x, y, 0.01, 10, device)
    expect_close_confirmed(params.detach(), expected, what="params after fitting")


@blank("fit_quadratic")
def test_fit_quadratic_takes_the_requested_number_of_steps(student, device):
    """takes exactly `steps` steps (checked with 1 and 3) with the given lr"""
    x, y = ref.lesson_data(device=device)
    for steps, lr in ((1, 0.05), (3, 0.001)):
        params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
        losses = call_watching_inputs(student.fit_quadratic, params, x, y, lr, steps, watch={"x": x, "y": y})
        assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
        assert len(losses) == steps, f"returned {len(losses)} losses for steps={steps}"
        _, expected = reference_fit(x, y, lr, steps, device)
        expect_close_confirmed(params.detach(), expected, what=f"params after {steps} steps at lr={lr}")


def other_quadratic_data(device: torch.device) -> tuple[Tensor, Tensor]:
    """Data other than the lesson's, of the same shape (20, 1): noisy samples of 2x^2 - x + 0.5 on [-1, 3]."""
    x = torch.linspace(-1, 3, steps=20, device=device)[:, None]
    return x, ref.add_noise(ref.quad(2.0, -1.0, 0.5, x), 0.1, 1.0, seed=7)


OTHER_START = (0.5, -0.3, 2.0)
"""Starting parameters other than the lesson's (1.1, 1.1, 1.1)."""


@blank("fit_quadratic")
def test_fit_quadratic_uses_its_arguments(student, device):
    """uses the params, x and y it is given and leaves x and y unchanged (checked with data other than the lesson's)"""
    given = dict(zip(("x", "y"), other_quadratic_data(device)))
    lesson = dict(zip(("x", "y"), ref.lesson_data(device=device)))
    expected_losses, expected_params = reference_fit(given["x"], given["y"], 0.02, 4, device, OTHER_START)
    wrong_losses, wrong_params = {}, {}
    for names, data in lesson_global_variants(given, lesson):
        message = used_globals_message(names, "fit_quadratic")
        wrong_losses[message], wrong_params[message] = reference_fit(data["x"], data["y"], 0.02, 4, device, OTHER_START)
    params = torch.tensor(OTHER_START, device=device).requires_grad_()
    losses = call_watching_inputs(student.fit_quadratic, params, given["x"], given["y"], 0.02, 4, watch=given)
    assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
    expect_close_confirmed(params.detach(), expected_params, wrong_params, what="params after 4 steps on other data")
    expect_close_confirmed(_losses_as_tensor(losses), expected_losses.float(), wrong_losses, what="the losses on other data")
