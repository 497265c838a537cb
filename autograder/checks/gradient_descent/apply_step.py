"""Hidden checks of apply_step (01_gradient_descent): one step on the roller coaster, returning the predictions."""

from __future__ import annotations

import torch
from torch import Tensor

from autograder.checks.compare import call_student, expect_still_a_parameter, expect_unchanged, grad_is_cleared, reference_step_on_a_copy
from autograder.checks.confirmed import (
    call_watching_inputs, confirmed_mistake, copies, expect_close_confirmed, lesson_global_variants, used_globals_message,
)
from autograder.checks.gradient_descent.gd_step import step_mistakes
from autograder.checks.runner import blank, gate
from autograder.checks.visible import VISIBLE_DEVICE, shape_or_type, visible_allclose
from autograder.reference import gradient_descent as ref

BLANKS = ("apply_step",)


def _coaster(device, seed=0):
    time, speed = ref.roller_coaster_data(device=device)
    params = torch.randn(3, generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_()
    return time, speed, params


def _reference_coaster_step(time, speed, params, lr=ref.ROLLER_COASTER_LR):
    return reference_step_on_a_copy(ref.apply_step, params, time, speed, lr)


def step_gradient(expected: Tensor, before: Tensor, lr: float) -> Tensor:
    """The gradient a correct step of ``lr`` used to go from ``before`` to ``expected``."""
    return (expected - before) / -lr


def returned_mistakes(time: Tensor, speed: Tensor, expected_params: Tensor, expected_preds: Tensor) -> dict[str, Tensor]:
    """What ``apply_step`` returns in the usual wrong versions, with their messages."""
    return {
        "returned predictions made after the step: return the ones used for the loss": ref.f(time, expected_params),
        "returned the loss: apply_step returns the predictions": ref.mse(expected_preds, speed),
    }


VISIBLE_START = (0.5, -1.0, 2.0)
VISIBLE_PARAMS_AFTER = (0.3271, -1.0110, 1.9994)
"""The visible test: from VISIBLE_START, one step at lr 1e-5 on the lesson's data gives these (within 1e-4)."""


@gate
@blank("apply_step")
def test_apply_step_passes_the_visible_test(student):
    """passes the visible test: one step at lr 1e-5 from (0.5, -1, 2) on the lesson's time and speed"""
    time, speed = ref.roller_coaster_data(device=VISIBLE_DEVICE)
    p = torch.tensor(VISIBLE_START).requires_grad_()
    start = p.detach().clone()
    expected_params, expected_preds = _reference_coaster_step(time, speed, p, 1e-5)
    returned = returned_mistakes(time, speed, expected_params, expected_preds)
    inputs = copies({"time": time, "speed": speed})
    preds = call_student(student.apply_step, p, time, speed, lr=1e-5)
    assert isinstance(preds, Tensor) and preds.shape == (20,), (
        f"expected one prediction per time step, shape (20,), got {shape_or_type(preds)}" + confirmed_mistake(preds, returned)
    )
    expect_unchanged(list(inputs.values()), [time, speed], list(inputs))
    assert visible_allclose(preds.detach(), ref.f(time, start)), (
        "return the predictions made BEFORE the update" + confirmed_mistake(preds, returned)
    )
    assert p.grad is None or not p.grad.any(), "forgot to clear the gradient after the update (params.grad = None)"
    wrong = step_mistakes(start, step_gradient(expected_params, start, 1e-5), 1e-5)
    assert visible_allclose(p.detach(), torch.tensor(VISIBLE_PARAMS_AFTER), atol=1e-4), (
        f"after one step params should be about {list(VISIBLE_PARAMS_AFTER)}, "
        f"got {[round(v, 4) for v in p.detach().tolist()]}" + confirmed_mistake(p.detach(), wrong)
    )


@blank("apply_step")
def test_apply_step_returns_predictions_before_the_step(student, device):
    """returns the predictions made before the step, from other starting parameters"""
    time, speed, params = _coaster(device)
    expected_params, expected_preds = _reference_coaster_step(time, speed, params)
    preds = call_watching_inputs(student.apply_step, params, time, speed, watch={"time": time, "speed": speed})
    wrong = returned_mistakes(time, speed, expected_params, expected_preds)
    expect_close_confirmed(preds, expected_preds, wrong, what="the returned predictions")


@blank("apply_step")
def test_apply_step_updates_params_with_the_default_lr(student, device):
    """updates params in place by -lr * grad with the default lr of 1e-5"""
    time, speed, params = _coaster(device)
    expected, _ = _reference_coaster_step(time, speed, params)
    before = params.detach().clone()
    call_watching_inputs(student.apply_step, params, time, speed, watch={"time": time, "speed": speed})
    wrong = step_mistakes(before, step_gradient(expected, before, ref.ROLLER_COASTER_LR), ref.ROLLER_COASTER_LR)
    expect_close_confirmed(params.detach(), expected, wrong, what="params after the step")
    expect_still_a_parameter(params)


@blank("apply_step")
def test_apply_step_clears_the_gradient_between_steps(student, device):
    """clears the gradient, so a second step matches the reference's second step"""
    time, speed, params = _coaster(device, seed=1)
    call_watching_inputs(student.apply_step, params, time, speed, 1e-4, watch={"time": time, "speed": speed})
    assert grad_is_cleared(params), "forgot to clear the gradient after the step (params.grad = None)"
    twin = torch.randn(3, generator=torch.Generator().manual_seed(1)).to(device).requires_grad_()
    ref.apply_step(twin, time, speed, 1e-4)
    call_student(student.apply_step, params, time, speed, 1e-4)
    ref.apply_step(twin, time, speed, 1e-4)
    expect_close_confirmed(params.detach(), twin.detach(), what="params after two steps at lr=1e-4")


def other_coaster_data(device: torch.device) -> tuple[Tensor, Tensor]:
    """A roller coaster other than the lesson's, of the same shape (20,): 20 times from 0 to 9.5 s, another hump."""
    time = torch.linspace(0, 9.5, 20, device=device)
    noise = torch.randn(20, generator=torch.Generator().manual_seed(7)).to(device)
    return time, noise * 2 + 0.5 * (time - 4) ** 2 + 3


OTHER_COASTER_START = (0.3, -0.2, 1.0)
OTHER_COASTER_LR = 1e-3


@blank("apply_step")
def test_apply_step_uses_its_time_and_speed(student, device):
    """uses the time and speed it is given and leaves them unchanged (checked with data other than the lesson's)"""
    given = dict(zip(("time", "speed"), other_coaster_data(device)))
    lesson = dict(zip(("time", "speed"), ref.roller_coaster_data(device=device)))
    params = torch.tensor(OTHER_COASTER_START, device=device).requires_grad_()
    expected_params, expected_preds = _reference_coaster_step(given["time"], given["speed"], params, OTHER_COASTER_LR)
    wrong_params, wrong_preds = {}, {}
    for names, data in lesson_global_variants(given, lesson):
        message = used_globals_message(names, "apply_step")
        wrong_params[message], wrong_preds[message] = _reference_coaster_step(
            data["time"], data["speed"], params, OTHER_COASTER_LR)
    preds = call_watching_inputs(student.apply_step, params, given["time"], given["speed"], OTHER_COASTER_LR, watch=given)
    expect_close_confirmed(params.detach(), expected_params, wrong_params, what="params after a step on other data")
    expect_close_confirmed(preds, expected_preds, wrong_preds, what="the predictions on other data")
