"""The mutants and alternatives of 01_gradient_descent: wrong solutions the hidden checks must catch, each with its own
named mistake, and correct ones they must pass. The machinery is in ``catalog.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.reference import gradient_descent as gd

from catalog import Catalog

x, y = gd.lesson_data()
"""The notebook's globals of the quadratic's data, as a mutant that reads them instead of its arguments sees them."""
time, speed = gd.roller_coaster_data()
"""The notebook's globals of the roller coaster's data."""

pytestmark = pytest.mark.gradient_descent

CATALOG = Catalog("gradient_descent")

# ==== mutants =======================================================================================

@CATALOG.mutant("mse", "forgot .mean()")
def mse_sum_instead_of_mean(preds, acts):
    return ((preds - acts) ** 2).sum()


@CATALOG.mutant("mse", "took absolute values: that is mae")
def mse_absolute_values(preds, acts):
    return (preds - acts).abs().mean()


@CATALOG.mutant("mse", "took the square root")
def mse_root_mean_squared(preds, acts):
    return ((preds - acts) ** 2).mean().sqrt()


@CATALOG.mutant("mse", "squared the wrong thing")
def mse_squares_the_inputs(preds, acts):
    return (preds**2 - acts**2).mean()


@CATALOG.mutant("mse", "forgot to take absolute values or squares")
def mse_no_square(preds, acts):
    return (preds - acts).mean()


@CATALOG.mutant("mse", "not a tensor")
def mse_item(preds, acts):
    return ((preds - acts) ** 2).mean().item()


@CATALOG.mutant("mse", "cut off from autograd")
def mse_detached(preds, acts):
    return ((preds - acts) ** 2).mean().detach()


@CATALOG.mutant("mse", "changed its input preds in place")
def mse_subtracts_in_place(preds, acts):
    preds -= acts
    return (preds**2).mean()


@CATALOG.mutant("mse", "keep the input's dtype")
def mse_casts_to_float32(preds, acts):
    return ((preds - acts) ** 2).float().mean()


# ---- 01 gradient descent: mae ---------------------------------------------------------------------


@CATALOG.mutant("mae", "forgot to take absolute values or squares")
def mae_no_abs(preds, acts):
    return (preds - acts).mean()


@CATALOG.mutant("mae", "that is mse")
def mae_squares(preds, acts):
    return ((preds - acts) ** 2).mean()


@CATALOG.mutant("mae", "took the absolute value after averaging")
def mae_abs_of_the_mean(preds, acts):
    return (preds - acts).mean().abs()


@CATALOG.mutant("mae", "forgot .mean()")
def mae_sum_instead_of_mean(preds, acts):
    return (preds - acts).abs().sum()


@CATALOG.mutant("mae", "has shape (1,), expected ()")
def mae_mean_over_rows_only(preds, acts):
    return (preds - acts).abs().mean(0, keepdim=preds.dim() == 1)


@CATALOG.mutant("mae", "not a tensor")
def mae_python_float(preds, acts):
    return float((preds - acts).abs().mean())


# ---- 01 gradient descent: gd_step -----------------------------------------------------------------


@CATALOG.mutant("gd_step", "stepped outside torch.no_grad()")
def gd_step_outside_no_grad(params, lr):
    params -= lr * params.grad
    params.grad.zero_()


@CATALOG.mutant("gd_step", "wrong sign in the step")
def gd_step_wrong_sign(params, lr):
    with torch.no_grad():
        params += lr * params.grad
    params.grad.zero_()


@CATALOG.mutant("gd_step", "forgot to multiply the gradient by the learning rate")
def gd_step_forgot_lr(params, lr):
    with torch.no_grad():
        params -= params.grad
    params.grad.zero_()


@CATALOG.mutant("gd_step", "forgot to reset the gradient")
def gd_step_never_zeroes_grad(params, lr):
    with torch.no_grad():
        params -= lr * params.grad


@CATALOG.mutant("gd_step", "a new tensor made by params = params")
def gd_step_rebinds_params(params, lr):
    with torch.no_grad():
        params = params - lr * params.grad  # noqa: F841 - a new local tensor: the caller's params never change
    params.grad.zero_()


@CATALOG.mutant("gd_step", "the parameters did not change")
def gd_step_returns_new_params(params, lr):
    with torch.no_grad():
        new_params = params - lr * params.grad
    params.grad.zero_()
    return new_params


@CATALOG.mutant("gd_step", "divided by the learning rate")
def gd_step_divides_by_lr(params, lr):
    with torch.no_grad():
        params -= params.grad / lr
    params.grad.zero_()


@CATALOG.mutant("gd_step", "the parameters did not change")
def gd_step_zeroes_grad_before_stepping(params, lr):
    params.grad.zero_()
    with torch.no_grad():
        params -= lr * params.grad


# ---- 01 gradient descent: fit_quadratic -----------------------------------------------------------


@CATALOG.mutant("fit_quadratic", "gradients accumulate across steps")
def fit_quadratic_never_zeroes_grad(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        with torch.no_grad():
            params -= lr * params.grad
        losses.append(loss.item())
    return losses


@CATALOG.mutant("fit_quadratic", "recorded the loss after the step")
def fit_quadratic_loss_after_step(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(gd.quad_mse(params, x, y).item())
    return losses


@CATALOG.mutant("fit_quadratic", "returned 9 losses for 10 steps")
def fit_quadratic_one_step_short(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps - 1):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


@CATALOG.mutant("fit_quadratic", "at lr=0.05")
def fit_quadratic_ignores_lr(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, 0.01)
        losses.append(loss.item())
    return losses


@CATALOG.mutant("fit_quadratic", "return a list of losses")
def fit_quadratic_forgets_to_return(params, x, y, lr=0.01, steps=10):
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)


@CATALOG.mutant("fit_quadratic", "call loss.backward()")
def fit_quadratic_forgot_backward(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


@CATALOG.mutant("fit_quadratic", "the losses should be Python floats")
def fit_quadratic_tensor_losses(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.detach())
    return losses


@CATALOG.mutant("fit_quadratic", "used the notebook's globals `x` and `y` instead of its arguments")
def fit_quadratic_reads_global_data(params, xs, ys, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


@CATALOG.mutant("fit_quadratic", "used the notebook's global `y` instead of its argument")
def fit_quadratic_reads_global_y(params, xs, ys, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, xs, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


# ---- 01 gradient descent: double_relu -------------------------------------------------------------


@CATALOG.mutant("double_relu", "forgot to clip at zero")
def double_relu_no_clip(m1, b1, m2, b2, x):
    return (m1 * x + b1) + (m2 * x + b2)


@CATALOG.mutant("double_relu", "multiplied the two rectified lines")
def double_relu_multiplies(m1, b1, m2, b2, x):
    return gd.rectified_linear(m1, b1, x) * gd.rectified_linear(m2, b2, x)


@CATALOG.mutant("double_relu", "took the larger of the two lines")
def double_relu_maximum(m1, b1, m2, b2, x):
    return torch.maximum(gd.rectified_linear(m1, b1, x), gd.rectified_linear(m2, b2, x))


@CATALOG.mutant("double_relu", "used the same line twice")
def double_relu_same_line_twice(m1, b1, m2, b2, x):
    return gd.rectified_linear(m1, b1, x) + gd.rectified_linear(m1, b1, x)


@CATALOG.mutant("double_relu", "clipped the sum of the two lines")
def double_relu_clips_the_sum(m1, b1, m2, b2, x):
    return torch.clip(m1 * x + b1 + m2 * x + b2, 0.0)


@CATALOG.mutant("double_relu", "used the notebook's global `x` instead of its argument")
def double_relu_reads_global_x(m1, b1, m2, b2, points):
    return gd.rectified_linear(m1, b1, x) + gd.rectified_linear(m2, b2, x)


# ---- 01 gradient descent: apply_step --------------------------------------------------------------


@CATALOG.mutant("apply_step", "forgot to multiply the gradient by the learning rate")
def apply_step_forgot_lr(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= params.grad.data
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "returned the loss")
def apply_step_returns_the_loss(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return loss


@CATALOG.mutant("apply_step", "returned predictions made after the step")
def apply_step_returns_new_predictions(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    loss = gd.mse(gd.f(time, params), speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return gd.f(time, params)


@CATALOG.mutant("apply_step", "forgot to clear the gradient")
def apply_step_never_clears_grad(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    return preds


@CATALOG.mutant("apply_step", "wrong sign in the step")
def apply_step_wrong_sign(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data += lr * params.grad.data
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "stepped outside torch.no_grad()")
def apply_step_outside_no_grad(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params -= lr * params.grad
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "at lr=1e-4")
def apply_step_hardcoded_lr(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= 1e-5 * params.grad.data
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "used the notebook's global `speed` instead of its argument")
def apply_step_reads_global_speed(params, t, s, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(t, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "used the notebook's globals `time` and `speed` instead of its arguments")
def apply_step_reads_global_time_and_speed(params, t, s, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return preds


@CATALOG.mutant("apply_step", "changed its input speed in place")
def apply_step_subtracts_from_speed_in_place(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    speed -= preds  # speed now holds the errors: the caller's speed is overwritten
    loss = (speed**2).mean()
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return preds


# ==== alternatives =================================================================================

@CATALOG.alternative("mse")
def mse_pow(preds, acts):
    return (preds - acts).pow(2).mean()


@CATALOG.alternative("mse")
def mse_functional(preds, acts):
    return F.mse_loss(preds, acts)


@CATALOG.alternative("mse")
def mse_torch_square(preds, acts):
    return torch.mean(torch.square(preds - acts))


@CATALOG.alternative("mse")
def mse_product_over_numel(preds, acts):
    diff = acts - preds
    return (diff * diff).sum() / diff.numel()


@CATALOG.alternative("mae")
def mae_functional(preds, acts):
    return F.l1_loss(preds, acts)


@CATALOG.alternative("mae")
def mae_torch_abs(preds, acts):
    return torch.mean(torch.abs(acts - preds))


@CATALOG.alternative("gd_step")
def gd_step_data_and_none(params, lr):
    params.data -= lr * params.grad.data
    params.grad = None


@CATALOG.alternative("gd_step")
def gd_step_sub_(params, lr):
    with torch.no_grad():
        params.sub_(lr * params.grad)
        params.grad.zero_()


@CATALOG.alternative("gd_step")
def gd_step_assign_data(params, lr):
    params.data = params.data - lr * params.grad
    params.grad = None


@CATALOG.alternative("fit_quadratic")
def fit_quadratic_inline_step(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.mse(gd.quad(*params, x), y)
        loss.backward()
        with torch.no_grad():
            params -= params.grad * lr
        params.grad = None
        losses.append(float(loss))
    return losses


@CATALOG.alternative("fit_quadratic")
def fit_quadratic_while_loop(params, x, y, lr=0.01, steps=10):
    losses = []
    step = 0
    while step < steps:
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.item())
        step += 1
    return losses


@CATALOG.alternative("double_relu")
def double_relu_functional(m1, b1, m2, b2, x):
    return F.relu(m1 * x + b1) + F.relu(m2 * x + b2)


@CATALOG.alternative("double_relu")
def double_relu_clamp_min(m1, b1, m2, b2, x):
    return (m1 * x + b1).clamp(min=0) + (m2 * x + b2).clamp_min(0)


@CATALOG.alternative("double_relu")
def double_relu_casts_to_float32(m1, b1, m2, b2, x):
    """The lesson never promises to keep the input's dtype: a float32 result of the right values is correct."""
    return (gd.rectified_linear(m1, b1, x) + gd.rectified_linear(m2, b2, x)).float()


@CATALOG.alternative("apply_step")
def apply_step_no_grad_zero_(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    gd.mse(preds, speed).backward()
    with torch.no_grad():
        params -= lr * params.grad
        params.grad.zero_()
    return preds


@CATALOG.alternative("apply_step")
def apply_step_functional_loss_and_sub_(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    a, b, c = params
    preds = a * time**2 + b * time + c
    F.mse_loss(preds, speed).backward()
    params.data.sub_(lr * params.grad.data)
    params.grad = None
    return preds


test_mutant_loses_points_with_its_own_named_mistake, test_alternative_passes_every_check = CATALOG.tests()
