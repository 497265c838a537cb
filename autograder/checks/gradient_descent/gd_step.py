"""Hidden checks of gd_step (01_gradient_descent): one gradient-descent step, in place, then the gradient reset."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks.compare import call_student, device_for, expect_still_a_parameter, grad_is_cleared
from autograder.checks.confirmed import confirmed_mistake, expect_close_confirmed
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, learning_rates, small_floats
from autograder.checks.visible import VISIBLE_DEVICE, visible_allclose
from autograder.reference import gradient_descent as ref

BLANKS = ("gd_step",)


def _params_with_grad(device: torch.device, dtype: torch.dtype = torch.float32, start=ref.LESSON_START) -> torch.Tensor:
    on = device_for(dtype, device)
    x, y = ref.lesson_data(device=on)
    params = torch.tensor(start, device=on, dtype=dtype).requires_grad_()
    ref.quad_mse(params, x.to(dtype), y.to(dtype)).backward()
    return params


def step_mistakes(before: torch.Tensor, grad: torch.Tensor, lr: float, name: str = "params") -> dict[str, torch.Tensor]:
    """The usual wrong updates of a gradient-descent step of the parameter ``name``, with their messages."""
    return {
        f"the parameters did not change: update {name} in place ({name} -= ...), not a new local variable": before,
        "wrong sign in the step: subtract lr * grad to go downhill, do not add it": before + lr * grad,
        "forgot to multiply the gradient by the learning rate lr": before - grad,
        "divided by the learning rate: the step is lr * grad": before - grad / lr,
    }


@gate
@blank("gd_step")
def test_gd_step_passes_the_visible_test(student):
    """passes the visible test: one step of lr 0.1 from [1, 2] with gradient [2, 4] gives [0.8, 1.6]"""
    p = torch.tensor([1.0, 2.0], device=VISIBLE_DEVICE).requires_grad_()
    (p**2).sum().backward()
    before, grad = p.detach().clone(), p.grad.clone()
    call_student(student.gd_step, p, lr=0.1)
    assert visible_allclose(p.detach(), torch.tensor([0.8, 1.6])), (
        f"expected [0.8, 1.6], got {[round(v, 4) for v in p.detach().tolist()]}"
        + confirmed_mistake(p.detach(), step_mistakes(before, grad, 0.1))
    )
    assert p.requires_grad, "params should still require grad after the step: update it in place"
    assert p.grad is None or visible_allclose(p.grad, torch.zeros(2)), (
        "forgot to reset the gradient after the step (params.grad.zero_()): gradients would add up across steps"
    )


@blank("gd_step")
@CHECK_SETTINGS
@given(lr=learning_rates, dtype=dtypes, start=st.tuples(small_floats, small_floats, small_floats))
def test_gd_step_subtracts_lr_times_grad_in_place(student, device, lr, dtype, start):
    """updates params in place by -lr * grad, for other parameters, learning rates and float64"""
    params = _params_with_grad(device, dtype, start)
    before, grad = params.detach().clone(), params.grad.clone()
    call_student(student.gd_step, params, lr)
    expect_close_confirmed(params.detach(), before - lr * grad, step_mistakes(before, grad, lr), what="params after the step")


@blank("gd_step")
def test_gd_step_clears_the_gradient(student, device):
    """clears the gradient after stepping"""
    params = _params_with_grad(device)
    call_student(student.gd_step, params, 0.01)
    assert grad_is_cleared(params), (
        "forgot to reset the gradient after the step (params.grad.zero_()): gradients would add up across steps"
    )


@blank("gd_step")
def test_gd_step_records_no_graph(student, device):
    """keeps params a leaf tensor that requires grad (the step is not tracked by autograd)"""
    params = _params_with_grad(device)
    call_student(student.gd_step, params, 0.01)
    expect_still_a_parameter(params)
