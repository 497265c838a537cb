"""Hidden checks for 01_gradient_descent: mse, mae, gd_step, fit_quadratic, double_relu, apply_step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.compare import (
    call_student,
    expect_close,
    expect_dtype_and_device,
    expect_gradcheck,
    expect_same_gradients,
    expect_still_a_parameter,
    expect_unchanged,
    grad_is_cleared,
    reference_step_on_a_copy,
)
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, learning_rates, random_tensor, seeds, small_floats, vector_shapes
from autograder.reference import gradient_descent as ref

BLANKS = ("mse", "mae", "gd_step", "fit_quadratic", "double_relu", "apply_step")
NEEDS_MNIST_SAMPLE = False
"""False: no check uses the real MNIST sample (see `runner.assignment_needs_sample`)."""

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


@gate
@pytest.mark.parametrize("name", LOSSES)
def test_loss_on_lesson_example(student, device, name):
    """gives the right number on the lesson's small example"""
    preds = torch.tensor([1.0, 2.0, 3.0], device=device)
    acts = torch.tensor([1.0, 3.0, 5.0], device=device)
    result = call_student(getattr(student, name), preds, acts)
    expect_close(result, getattr(ref, name)(preds, acts), loss_mistakes(name, preds, acts))


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, dtype=dtypes, seed=seeds)
def test_loss_matches_reference_on_random_inputs(student, device, name, shape, dtype, seed):
    """matches the reference on random (n,) and (n, 1) inputs in float32 and float64, keeping dtype and device"""
    preds, acts = random_tensor(shape, seed, dtype, device), random_tensor(shape, seed + 1, dtype, device)
    expected, mistakes, before = getattr(ref, name)(preds, acts), loss_mistakes(name, preds, acts), [preds.clone(), acts.clone()]
    result = call_student(getattr(student, name), preds, acts)
    expect_unchanged(before, [preds, acts], ["preds", "acts"])
    expect_close(result, expected, mistakes)
    expect_dtype_and_device(result, preds)


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, seed=seeds)
def test_loss_gradients_match_reference(student, device, name, shape, seed):
    """has the reference's gradients with respect to preds and acts"""
    inputs = [random_tensor(shape, seed, torch.float64, device), random_tensor(shape, seed + 1, torch.float64, device)]
    expect_same_gradients(getattr(student, name), getattr(ref, name), inputs, ["preds", "acts"])


@pytest.mark.parametrize("name", LOSSES)
def test_loss_passes_gradcheck(student, device, name):
    """passes torch.autograd.gradcheck in float64"""
    inputs = [random_tensor((5, 1), 3, torch.float64, device), random_tensor((5, 1), 4, torch.float64, device)]
    expect_gradcheck(getattr(student, name), inputs)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_does_not_modify_its_inputs(student, device, name):
    """leaves its inputs unchanged"""
    preds, acts = random_tensor((6,), 5, torch.float32, device), random_tensor((6,), 6, torch.float32, device)
    before = [preds.clone(), acts.clone()]
    call_student(getattr(student, name), preds, acts)
    expect_unchanged(before, [preds, acts], ["preds", "acts"])


def _params_with_grad(device: torch.device, dtype: torch.dtype = torch.float32, start=ref.LESSON_START) -> torch.Tensor:
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(start, device=device, dtype=dtype).requires_grad_()
    ref.quad_mse(params, x.to(dtype), y.to(dtype)).backward()
    return params


def step_mistakes(before: torch.Tensor, grad: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
    """The usual wrong updates of a gradient-descent step, with their messages."""
    return {
        "the parameters did not change: update them in place (params -= ...), not a new local variable": before,
        "wrong sign in the step: subtract lr * grad to go downhill, do not add it": before + lr * grad,
        "forgot to multiply the gradient by the learning rate lr": before - grad,
        "divided by the learning rate: the step is lr * grad": before - grad / lr,
    }


@gate
@blank("gd_step")
@CHECK_SETTINGS
@given(lr=learning_rates, dtype=dtypes, start=st.tuples(small_floats, small_floats, small_floats))
def test_gd_step_subtracts_lr_times_grad_in_place(student, device, lr, dtype, start):
    """updates params in place by -lr * grad"""
    params = _params_with_grad(device, dtype, start)
    before, grad = params.detach().clone(), params.grad.clone()
    call_student(student.gd_step, params, lr)
    expect_close(params.detach(), before - lr * grad, step_mistakes(before, grad, lr), what="params after the step")


@gate
@blank("gd_step")
def test_gd_step_clears_the_gradient(student, device):
    """clears the gradient after stepping"""
    params = _params_with_grad(device)
    call_student(student.gd_step, params, 0.01)
    assert grad_is_cleared(params), (
        "forgot to reset the gradient after the step (params.grad.zero_()): gradients would add up across steps"
    )


@gate
@blank("gd_step")
def test_gd_step_records_no_graph(student, device):
    """keeps params a leaf tensor that requires grad (the step is not tracked by autograd)"""
    params = _params_with_grad(device)
    call_student(student.gd_step, params, 0.01)
    expect_still_a_parameter(params)


def accumulating_losses(x, y, lr, steps, device) -> list[float]:
    """What ``fit_quadratic`` returns when the gradient is never reset (it accumulates)."""
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    losses = []
    for _ in range(steps):
        loss = ref.quad_mse(params, x, y)
        loss.backward()
        with torch.no_grad():
            params -= lr * params.grad
        losses.append(loss.item())
    return losses


def _fit(fn, device, lr=0.01, steps=10):
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    losses = call_student(fn, params, x, y, lr, steps)
    return params, losses, x, y


@gate
@blank("fit_quadratic")
def test_fit_quadratic_returns_the_reference_losses(student, device):
    """returns the loss before each step, as the reference does, from the lesson's start"""
    params, losses, x, y = _fit(student.fit_quadratic, device)
    assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
    assert len(losses) == 10, f"returned {len(losses)} losses for 10 steps: record one loss per step"
    reference = ref.fit_quadratic(torch.tensor(ref.LESSON_START, device=device).requires_grad_(), x, y, 0.01, 10)
    try:
        got = torch.tensor([float(loss) for loss in losses], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"each loss must be a number or a 0-d tensor: {error}") from error
    expect_close(got, torch.tensor(reference, dtype=torch.float64).float(), {
        "gradients accumulate across steps: reset params.grad (zero_()) after every step":
            torch.tensor(accumulating_losses(x, y, 0.01, 10, device)),
        "recorded the loss after the step: append the loss computed before stepping":
            torch.tensor(ref.fit_quadratic(torch.tensor(ref.LESSON_START, device=device).requires_grad_(), x, y, 0.01, 11)[1:]),
    }, what="the list of losses")


@blank("fit_quadratic")
def test_fit_quadratic_updates_params_like_the_reference(student, device):
    """leaves params where the reference's 10 steps leave them"""
    params, _, x, y = _fit(student.fit_quadratic, device)
    expected = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    ref.fit_quadratic(expected, x, y, 0.01, 10)
    expect_close(params.detach(), expected.detach(), what="params after fitting")


@gate
@blank("fit_quadratic")
def test_fit_quadratic_takes_the_requested_number_of_steps(student, device):
    """takes exactly `steps` steps (checked with 1 and 3) with the given lr"""
    for steps, lr in ((1, 0.05), (3, 0.001)):
        params, losses, x, y = _fit(student.fit_quadratic, device, lr, steps)
        assert len(losses) == steps, f"returned {len(losses)} losses for steps={steps}"
        expected = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
        ref.fit_quadratic(expected, x, y, lr, steps)
        expect_close(params.detach(), expected.detach(), what=f"params after {steps} steps at lr={lr}")


def relu_mistakes(m1, b1, m2, b2, x):
    line1, line2 = m1 * x + b1, m2 * x + b2
    return {
        "forgot to clip at zero: each line must go through torch.clip(..., 0.0) (rectified_linear)": line1 + line2,
        "multiplied the two rectified lines: double_relu adds them": ref.rectified_linear(m1, b1, x) * ref.rectified_linear(m2, b2, x),
        "took the larger of the two lines: double_relu adds them": torch.maximum(ref.rectified_linear(m1, b1, x), ref.rectified_linear(m2, b2, x)),
        "used the same line twice: the second ReLU uses m2 and b2": 2 * ref.rectified_linear(m1, b1, x),
    }


@gate
@blank("double_relu")
@CHECK_SETTINGS
@given(m1=small_floats, b1=small_floats, m2=small_floats, b2=small_floats, dtype=dtypes, seed=seeds)
def test_double_relu_matches_reference(student, device, m1, b1, m2, b2, dtype, seed):
    """adds two rectified lines, for random slopes and intercepts"""
    x = random_tensor((9,), seed, dtype, device)
    result = call_student(student.double_relu, m1, b1, m2, b2, x)
    expect_close(result, ref.double_relu(m1, b1, m2, b2, x), relu_mistakes(m1, b1, m2, b2, x))
    expect_dtype_and_device(result, x)


@blank("double_relu")
def test_double_relu_gradient_with_respect_to_x(student, device):
    """has the reference's gradient with respect to x"""
    x = random_tensor((11,), 7, torch.float64, device)
    expect_same_gradients(lambda t: student.double_relu(1.5, -0.5, -2.0, 1.0, t),
                          lambda t: ref.double_relu(1.5, -0.5, -2.0, 1.0, t), [x], ["x"])


def _coaster(device, seed=0):
    time, speed = ref.roller_coaster_data(device=device)
    params = torch.randn(3, generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_()
    return time, speed, params


def _reference_coaster_step(time, speed, params, lr=ref.ROLLER_COASTER_LR):
    return reference_step_on_a_copy(ref.apply_step, params, time, speed, lr)


@gate
@blank("apply_step")
def test_apply_step_returns_predictions_before_the_step(student, device):
    """returns the predictions made before the step"""
    time, speed, params = _coaster(device)
    expected_params, expected_preds = _reference_coaster_step(time, speed, params)
    preds = call_student(student.apply_step, params, time, speed)
    expect_close(preds, expected_preds, {
        "returned predictions made after the step: return the ones used for the loss": ref.f(time, expected_params),
        "returned the loss: apply_step returns the predictions": ref.mse(expected_preds, speed),
    }, what="the returned predictions")


@gate
@blank("apply_step")
def test_apply_step_updates_params_with_the_default_lr(student, device):
    """updates params in place by -lr * grad with the default lr of 1e-5"""
    time, speed, params = _coaster(device)
    expected, _ = _reference_coaster_step(time, speed, params)
    before = params.detach().clone()
    grad = (expected - before) / -ref.ROLLER_COASTER_LR
    call_student(student.apply_step, params, time, speed)
    expect_close(params.detach(), expected, step_mistakes(before, grad, ref.ROLLER_COASTER_LR), what="params after the step")
    expect_still_a_parameter(params)


@gate
@blank("apply_step")
def test_apply_step_clears_the_gradient_between_steps(student, device):
    """clears the gradient, so a second step matches the reference's second step"""
    time, speed, params = _coaster(device, seed=1)
    call_student(student.apply_step, params, time, speed, 1e-4)
    assert grad_is_cleared(params), "forgot to clear the gradient after the step (params.grad = None)"
    twin = torch.randn(3, generator=torch.Generator().manual_seed(1)).to(device).requires_grad_()
    ref.apply_step(twin, time, speed, 1e-4)
    call_student(student.apply_step, params, time, speed, 1e-4)
    ref.apply_step(twin, time, speed, 1e-4)
    expect_close(params.detach(), twin.detach(), what="params after two steps at lr=1e-4")
