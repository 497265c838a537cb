"""Realistic wrong solutions ("mutants") of every blank: the hidden checks must take points off each one,
and at least one failing check's message must name the mistake.

Every mutant is written as a beginner would write it in the notebook. Where the notebook's solution
calls other student functions (``fit_quadratic`` calls ``gd_step`` and ``quad_mse``, ``apply_step``
calls ``f`` and ``mse``, ``train_epoch`` calls ``calc_grad``, ``train_model`` calls ``train_epoch``
and ``validate_epoch``), the mutant is self-contained: the parts that are not the mistake come from
``autograder.reference``.

A mutant the checks do not catch (a gap in the checks, not in this file) is marked
``xfail(strict=True)`` with the reason, so the suite stays green and the gap stays visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch

from autograder.checks import known_blanks, run_checks
from autograder.device import available_devices
from autograder.reference import gradient_descent as gd
from autograder.reference import mnist_sgd as ms
from autograder.reference import pixel_similarity as ps


DEVICES = [pytest.param(device, id=device) for device in available_devices()]

# --------------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One wrong solution.

    Attributes:
        id: a short name for the mistake.
        blank: the blank it fills in.
        objects: what the notebook passes to ``check`` (e.g. ``{"mse": fn}``).
        expect: a substring that at least one failing check's message must contain.
        real_data: only a check on the real MNIST sample names the mistake (skipped here without the sample;
            it still loses points then, through the check that could not run: see test_no_sample.py).
        gap: non-empty when the checks are known to miss it: why (the case is then a strict xfail).
    """

    id: str
    blank: str
    objects: dict[str, Any]
    expect: str
    real_data: bool = False
    gap: str = ""


MUTANTS: list[Mutant] = []


def mutant(blank: str, expect: str, *, real_data: bool = False, gap: str = "") -> Callable[[Any], Any]:
    """Register the decorated function or class as a wrong solution of ``blank``."""

    def register(obj: Any) -> Any:
        MUTANTS.append(Mutant(obj.__name__, blank, {blank: obj}, expect, real_data, gap))
        return obj

    return register


# ---- 01 gradient descent: mse ---------------------------------------------------------------------


@mutant("mse", "forgot .mean()")
def mse_sum_instead_of_mean(preds, acts):
    return ((preds - acts) ** 2).sum()


@mutant("mse", "took absolute values: that is mae")
def mse_absolute_values(preds, acts):
    return (preds - acts).abs().mean()


@mutant("mse", "took the square root")
def mse_root_mean_squared(preds, acts):
    return ((preds - acts) ** 2).mean().sqrt()


@mutant("mse", "squared the wrong thing")
def mse_squares_the_inputs(preds, acts):
    return (preds**2 - acts**2).mean()


@mutant("mse", "forgot to take absolute values or squares")
def mse_no_square(preds, acts):
    return (preds - acts).mean()


@mutant("mse", "not a tensor")
def mse_item(preds, acts):
    return ((preds - acts) ** 2).mean().item()


@mutant("mse", "cut off from autograd")
def mse_detached(preds, acts):
    return ((preds - acts) ** 2).mean().detach()


@mutant("mse", "changed its input preds in place")
def mse_subtracts_in_place(preds, acts):
    preds -= acts
    return (preds**2).mean()


@mutant("mse", "keep the input's dtype")
def mse_casts_to_float32(preds, acts):
    return ((preds - acts) ** 2).float().mean()


# ---- 01 gradient descent: mae ---------------------------------------------------------------------


@mutant("mae", "forgot to take absolute values or squares")
def mae_no_abs(preds, acts):
    return (preds - acts).mean()


@mutant("mae", "that is mse")
def mae_squares(preds, acts):
    return ((preds - acts) ** 2).mean()


@mutant("mae", "took the absolute value after averaging")
def mae_abs_of_the_mean(preds, acts):
    return (preds - acts).mean().abs()


@mutant("mae", "forgot .mean()")
def mae_sum_instead_of_mean(preds, acts):
    return (preds - acts).abs().sum()


@mutant("mae", "has shape (1,), expected ()")
def mae_mean_over_rows_only(preds, acts):
    return (preds - acts).abs().mean(0, keepdim=preds.dim() == 1)


@mutant("mae", "not a tensor")
def mae_python_float(preds, acts):
    return float((preds - acts).abs().mean())


# ---- 01 gradient descent: gd_step -----------------------------------------------------------------


@mutant("gd_step", "stepped outside torch.no_grad()")
def gd_step_outside_no_grad(params, lr):
    params -= lr * params.grad
    params.grad.zero_()


@mutant("gd_step", "wrong sign in the step")
def gd_step_wrong_sign(params, lr):
    with torch.no_grad():
        params += lr * params.grad
    params.grad.zero_()


@mutant("gd_step", "forgot to multiply the gradient by the learning rate")
def gd_step_forgot_lr(params, lr):
    with torch.no_grad():
        params -= params.grad
    params.grad.zero_()


@mutant("gd_step", "forgot to reset the gradient")
def gd_step_never_zeroes_grad(params, lr):
    with torch.no_grad():
        params -= lr * params.grad


@mutant("gd_step", "a new tensor made by params = params")
def gd_step_rebinds_params(params, lr):
    with torch.no_grad():
        params = params - lr * params.grad  # noqa: F841 - a new local tensor: the caller's params never change
    params.grad.zero_()


@mutant("gd_step", "the parameters did not change")
def gd_step_returns_new_params(params, lr):
    with torch.no_grad():
        new_params = params - lr * params.grad
    params.grad.zero_()
    return new_params


@mutant("gd_step", "divided by the learning rate")
def gd_step_divides_by_lr(params, lr):
    with torch.no_grad():
        params -= params.grad / lr
    params.grad.zero_()


@mutant("gd_step", "the parameters did not change")
def gd_step_zeroes_grad_before_stepping(params, lr):
    params.grad.zero_()
    with torch.no_grad():
        params -= lr * params.grad


# ---- 01 gradient descent: fit_quadratic -----------------------------------------------------------


@mutant("fit_quadratic", "gradients accumulate across steps")
def fit_quadratic_never_zeroes_grad(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        with torch.no_grad():
            params -= lr * params.grad
        losses.append(loss.item())
    return losses


@mutant("fit_quadratic", "recorded the loss after the step")
def fit_quadratic_loss_after_step(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(gd.quad_mse(params, x, y).item())
    return losses


@mutant("fit_quadratic", "returned 9 losses for 10 steps")
def fit_quadratic_one_step_short(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps - 1):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


@mutant("fit_quadratic", "at lr=0.05")
def fit_quadratic_ignores_lr(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, 0.01)
        losses.append(loss.item())
    return losses


@mutant("fit_quadratic", "return a list of losses")
def fit_quadratic_forgets_to_return(params, x, y, lr=0.01, steps=10):
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        loss.backward()
        gd.gd_step(params, lr)


@mutant("fit_quadratic", "call loss.backward()")
def fit_quadratic_forgot_backward(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = gd.quad_mse(params, x, y)
        gd.gd_step(params, lr)
        losses.append(loss.item())
    return losses


# ---- 01 gradient descent: double_relu -------------------------------------------------------------


@mutant("double_relu", "forgot to clip at zero")
def double_relu_no_clip(m1, b1, m2, b2, x):
    return (m1 * x + b1) + (m2 * x + b2)


@mutant("double_relu", "multiplied the two rectified lines")
def double_relu_multiplies(m1, b1, m2, b2, x):
    return gd.rectified_linear(m1, b1, x) * gd.rectified_linear(m2, b2, x)


@mutant("double_relu", "took the larger of the two lines")
def double_relu_maximum(m1, b1, m2, b2, x):
    return torch.maximum(gd.rectified_linear(m1, b1, x), gd.rectified_linear(m2, b2, x))


@mutant("double_relu", "used the same line twice")
def double_relu_same_line_twice(m1, b1, m2, b2, x):
    return gd.rectified_linear(m1, b1, x) + gd.rectified_linear(m1, b1, x)


@mutant("double_relu", "differs from the reference")
def double_relu_clips_the_sum(m1, b1, m2, b2, x):
    return torch.clip(m1 * x + b1 + m2 * x + b2, 0.0)


# ---- 01 gradient descent: apply_step --------------------------------------------------------------


@mutant("apply_step", "forgot to multiply the gradient by the learning rate")
def apply_step_forgot_lr(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= params.grad.data
    params.grad = None
    return preds


@mutant("apply_step", "returned the loss")
def apply_step_returns_the_loss(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return loss


@mutant("apply_step", "returned predictions made after the step")
def apply_step_returns_new_predictions(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    loss = gd.mse(gd.f(time, params), speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return gd.f(time, params)


@mutant("apply_step", "forgot to clear the gradient")
def apply_step_never_clears_grad(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    return preds


@mutant("apply_step", "wrong sign in the step")
def apply_step_wrong_sign(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data += lr * params.grad.data
    params.grad = None
    return preds


@mutant("apply_step", "stepped outside torch.no_grad()")
def apply_step_outside_no_grad(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params -= lr * params.grad
    params.grad = None
    return preds


@mutant("apply_step", "at lr=1e-4")
def apply_step_hardcoded_lr(params, time, speed, lr=gd.ROLLER_COASTER_LR):
    preds = gd.f(time, params)
    loss = gd.mse(preds, speed)
    loss.backward()
    params.data -= 1e-5 * params.grad.data
    params.grad = None
    return preds


# ---- 02 linear regression: update -----------------------------------------------------------------


@mutant("update", "x@a rather than a@x")
def update_a_matmul_x(a, x, y, lr):
    loss = gd.mse(a @ x, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@mutant("update", "forgot a.grad.zero_()")
def update_never_zeroes_grad(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
    return loss


@mutant("update", "returned the loss after the step")
def update_returns_loss_after_step(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return gd.mse(x @ a, y)


@mutant("update", "the sum of squared errors")
def update_sum_of_squares(a, x, y, lr):
    loss = ((x @ a - y) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@mutant("update", "the parameters did not change")
def update_rebinds_a(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a = a - lr * a.grad
    a.grad = None
    return loss


@mutant("update", "update returned nothing")
def update_forgets_to_return(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()


@mutant("update", "stepped outside torch.no_grad()")
def update_outside_no_grad(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    a -= lr * a.grad
    a.grad.zero_()
    return loss


@mutant("update", "forgot to multiply the gradient by the learning rate")
def update_forgot_lr(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(a.grad)
        a.grad.zero_()
    return loss


# ---- 03 pixel similarity: mnist_distance ----------------------------------------------------------


@mutant("mnist_distance", "averaged over every axis")
def mnist_distance_mean_of_everything(a, b):
    return (a - b).abs().mean()


@mutant("mnist_distance", "forgot .abs()")
def mnist_distance_no_abs(a, b):
    return (a - b).mean((-1, -2))


@mutant("mnist_distance", "squared the differences")
def mnist_distance_squared(a, b):
    return ((a - b) ** 2).mean((-1, -2))


@mutant("mnist_distance", "took the root mean squared difference")
def mnist_distance_rmse(a, b):
    return ((a - b) ** 2).mean((-1, -2)).sqrt()


@mutant("mnist_distance", "summed instead of averaging")
def mnist_distance_sum_over_pixels(a, b):
    return (a - b).abs().sum((-1, -2))


@mutant("mnist_distance", "differs from the reference")
def mnist_distance_sum_over_all_axes(a, b):
    return (a - b).abs().sum()


@mutant("mnist_distance", "raised IndexError")
def mnist_distance_axes_1_2(a, b):
    return (a - b).abs().mean((1, 2))


# ---- 03 pixel similarity: is_3 --------------------------------------------------------------------


@mutant("is_3", "compared the wrong way round")
def is_3_reversed(x, mean3, mean7):
    return ps.mnist_distance(x, mean3) > ps.mnist_distance(x, mean7)


@mutant("is_3", "for a stack")
def is_3_distance_over_every_axis(x, mean3, mean7):
    return (x - mean3).abs().mean() < (x - mean7).abs().mean()


@mutant("is_3", "raised RuntimeError")
def is_3_python_if(x, mean3, mean7):
    if ps.mnist_distance(x, mean3) < ps.mnist_distance(x, mean7):
        return torch.tensor(True)
    return torch.tensor(False)


@mutant("is_3", "disagrees with the reference")
def is_3_squared_distance(x, mean3, mean7):
    return ((x - mean3) ** 2).mean((-1, -2)) < ((x - mean7) ** 2).mean((-1, -2))


@mutant("is_3", "compared the wrong way round")
def is_3_swapped_means(x, mean3, mean7):
    return ps.mnist_distance(x, mean7) < ps.mnist_distance(x, mean3)


# ---- 03 pixel similarity: validation_accuracy -----------------------------------------------------


@mutant("validation_accuracy", "count the images NOT classified as 3")
def validation_accuracy_forgot_one_minus(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = ps.is_3(valid_7s, mean3, mean7).float().mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()


@mutant("validation_accuracy", "pooled all images together", real_data=True)
def validation_accuracy_pooled(valid_3s, valid_7s, mean3, mean7):
    right = torch.cat([ps.is_3(valid_3s, mean3, mean7), ~ps.is_3(valid_7s, mean3, mean7)])
    return right.float().mean().item()


@mutant("validation_accuracy", "only measured the 3s", real_data=True)
def validation_accuracy_only_3s(valid_3s, valid_7s, mean3, mean7):
    return ps.is_3(valid_3s, mean3, mean7).float().mean().item()


@mutant("validation_accuracy", "without dividing by 2")
def validation_accuracy_no_halving(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (1 - ps.is_3(valid_7s, mean3, mean7).float()).mean()
    return (accuracy_3s + accuracy_7s).item()


@mutant("validation_accuracy", "return a Python float")
def validation_accuracy_returns_a_tensor(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).float().mean()
    accuracy_7s = (1 - ps.is_3(valid_7s, mean3, mean7).float()).mean()
    return (accuracy_3s + accuracy_7s) / 2


@mutant("validation_accuracy", "took the mean of a True/False tensor")
def validation_accuracy_mean_of_bools(valid_3s, valid_7s, mean3, mean7):
    accuracy_3s = ps.is_3(valid_3s, mean3, mean7).mean()
    accuracy_7s = (~ps.is_3(valid_7s, mean3, mean7)).mean()
    return ((accuracy_3s + accuracy_7s) / 2).item()


# ---- 04 mnist sgd: sigmoid ------------------------------------------------------------------------


@mutant("sigmoid", "wrong sign inside exp")
def sigmoid_wrong_sign(x):
    return 1 / (1 + torch.exp(x))


@mutant("sigmoid", "used tanh")
def sigmoid_tanh(x):
    return torch.tanh(x)


@mutant("sigmoid", "forgot the 1 + in the denominator")
def sigmoid_no_one_plus(x):
    return 1 / torch.exp(-x)


@mutant("sigmoid", "sigmoid is 1 / (1 + exp(-x))")
def sigmoid_complement(x):
    return torch.exp(-x) / (1 + torch.exp(-x))


@mutant("sigmoid", "your code raised")
def sigmoid_math_exp(x):
    return 1 / (1 + math.exp(-x))


@mutant("sigmoid", "keep the input's dtype")
def sigmoid_float32(x):
    return 1 / (1 + torch.exp(-x.float()))


@mutant("sigmoid", "changed its input x in place")
def sigmoid_in_place(x):
    return x.neg_().exp_().add_(1).reciprocal_()


# ---- 04 mnist sgd: mnist_loss ---------------------------------------------------------------------


@mutant("mnist_loss", "forgot to apply sigmoid")
def mnist_loss_no_sigmoid(predictions, targets):
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


@mutant("mnist_loss", "swapped the two cases")
def mnist_loss_swapped_branches(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, p, 1 - p).mean()


@mutant("mnist_loss", "forgot .mean()")
def mnist_loss_sum(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, 1 - p, p).sum()


@mutant("mnist_loss", "applied sigmoid twice")
def mnist_loss_sigmoid_twice(predictions, targets):
    p = ms.sigmoid(predictions.sigmoid())
    return torch.where(targets == 1, 1 - p, p).mean()


@mutant("mnist_loss", "used accuracy as the loss")
def mnist_loss_is_accuracy(predictions, targets):
    return ((predictions.sigmoid() > 0.5).float() == targets).float().mean()


@mutant("mnist_loss", "used 1 - accuracy as the loss")
def mnist_loss_is_error_rate(predictions, targets):
    return 1 - ((predictions.sigmoid() > 0.5).float() == targets).float().mean()


@mutant("mnist_loss", "not a tensor")
def mnist_loss_item(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, 1 - p, p).mean().item()


@mutant("mnist_loss", "differs from the reference")
def mnist_loss_flattened_targets(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets.view(-1) == 1, 1 - p, p).mean()


# ---- 04 mnist sgd: calc_grad ----------------------------------------------------------------------


@mutant("calc_grad", "call loss.backward()")
def calc_grad_forgot_backward(xb, yb, model, loss_func=ms.mnist_loss):
    return loss_func(model(xb), yb)


@mutant("calc_grad", "ignored the loss_func argument: it was never called")
def calc_grad_ignores_loss_func(xb, yb, model, loss_func=ms.mnist_loss):
    loss = ms.mnist_loss(model(xb), yb)
    loss.backward()
    return loss


@mutant("calc_grad", "cut off from the parameters")
def calc_grad_swapped_arguments(xb, yb, model, loss_func=ms.mnist_loss):
    loss = loss_func(yb, model(xb))
    loss.backward()
    return loss


@mutant("calc_grad", "called backward() on the predictions")
def calc_grad_backward_on_predictions(xb, yb, model, loss_func=ms.mnist_loss):
    preds = model(xb)
    loss = loss_func(preds, yb)
    preds.mean().backward()
    return loss


@mutant("calc_grad", "cut off from the parameters")
def calc_grad_detached_predictions(xb, yb, model, loss_func=ms.mnist_loss):
    loss = loss_func(model(xb).detach(), yb)
    loss.backward()
    return loss


# ---- 04 mnist sgd: batch_accuracy -----------------------------------------------------------------


@mutant("batch_accuracy", "thresholded the raw predictions at 0.5")
def batch_accuracy_raw_threshold(xb, yb):
    return ((xb > 0.5) == yb).float().mean()


@mutant("batch_accuracy", "returned the number of correct predictions")
def batch_accuracy_count(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).float().sum()


@mutant("batch_accuracy", "compared the wrong way")
def batch_accuracy_reversed(xb, yb):
    return ((xb.sigmoid() < 0.5) == yb).float().mean()


@mutant("batch_accuracy", "shapes do not match")
def batch_accuracy_flattened_predictions(xb, yb):
    return ((xb.sigmoid() > 0.5).view(-1) == yb).float().mean()


@mutant("batch_accuracy", "took the mean of a True/False tensor")
def batch_accuracy_mean_of_bools(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).mean()


# ---- 04 mnist sgd: BasicOptim ---------------------------------------------------------------------


@mutant("BasicOptim", "store list(params)")
class BasicOptimStoresTheGenerator:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@mutant("BasicOptim", "only the first parameter was updated")
class BasicOptimStepsFirstParamOnly:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        p = self.params[0]
        p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@mutant("BasicOptim", "stepped outside torch.no_grad()")
class BasicOptimOutsideNoGrad:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p -= p.grad * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@mutant("BasicOptim", "the parameters did not change")
class BasicOptimRebindsLoopVariable:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        with torch.no_grad():
            for p in self.params:
                p = p - p.grad * self.lr  # noqa: PLW2901 - the mistake: rebinding the loop variable

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@mutant("BasicOptim", "wrong sign in the step")
class BasicOptimWrongSign:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data += p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@mutant("BasicOptim", "zero_grad left the gradients as they were")
class BasicOptimZeroGradRebindsLocal:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            grad = p.grad
            grad = None  # noqa: F841 - the mistake: clears a local name, not p.grad


@mutant("BasicOptim", "zero_grad cleared only some gradients")
class BasicOptimZeroGradReturnsEarly:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None
            return


# ---- 04 mnist sgd: train_epoch --------------------------------------------------------------------


@mutant("train_epoch", "forgot opt.zero_grad()")
def train_epoch_without_zero_grad(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
        opt.step()


@mutant("train_epoch", "called opt.step() 1 times for 4 batches: step once per batch")
def train_epoch_steps_once_per_epoch(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
    opt.step()
    opt.zero_grad()


@mutant("train_epoch", "ignored the loss_func argument: it was never called")
def train_epoch_ignores_loss_func(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model)
        opt.step()
        opt.zero_grad()


def _calc_grad_without_a_default_loss(xb, yb, model, loss_func=None):
    loss = loss_func(model(xb), yb)
    loss.backward()
    return loss


@mutant("train_epoch", "ignored the loss_func argument: it was never called")
def train_epoch_calc_grad_without_loss_func(model, dl, opt, loss_func=None):
    for xb, yb in dl:
        _calc_grad_without_a_default_loss(xb, yb, model)  # loss_func not passed on: calc_grad calls None
        opt.step()
        opt.zero_grad()


@mutant("train_epoch", "called with no gradient")
def train_epoch_zero_grad_before_step(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
        opt.zero_grad()
        opt.step()


@mutant("train_epoch", "called opt.step() 1 times for 4 batches: step once per batch")
def train_epoch_first_batch_only(model, dl, opt, loss_func=ms.mnist_loss):
    xb, yb = next(iter(dl))
    ms.calc_grad(xb, yb, model, loss_func)
    opt.step()
    opt.zero_grad()


# ---- 04 mnist sgd: train_model --------------------------------------------------------------------


@mutant("train_model", "returned 2 accuracies for 3 epochs")
def train_model_one_epoch_short(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs - 1):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "returned 4 accuracies for 3 epochs")
def train_model_one_epoch_too_many(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs + 1):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "return the list of accuracies")
def train_model_returns_last_accuracy(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
    return ms.validate_epoch(model, valid_dl)


@mutant("train_model", "never called step() on the opt it was given")
def train_model_makes_its_own_optimizer(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    opt = ms.BasicOptim(model.parameters(), 1.0)
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "forgot opt.zero_grad()")
def train_model_inline_loop_without_zero_grad(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        for xb, yb in dl:
            ms.calc_grad(xb, yb, model, loss_func)
            opt.step()
        history.append(ms.validate_epoch(model, valid_dl))
    return history


# Named on synthetic data too ("never trained"); still real_data, because test_no_sample.py needs one
# train_model mutant that runs the real-sample check's "could not run" path.
@mutant("train_model", "never trained: the parameters did not change", real_data=True)
def train_model_never_trains(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "ignored the loss_func argument: it was never called")
def train_model_ignores_loss_func(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "trained only one epoch of 3")
def train_model_trains_only_the_first_epoch(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for epoch in range(epochs):
        if epoch == 0:
            ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@mutant("train_model", "measured the accuracy on the training batches")
def train_model_validates_on_training_batches(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, dl))
    return history


# --------------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------------


def _summary(report) -> str:
    lines = [f"{'PASS' if r.passed else 'FAIL'} {r.name}: {r.message}" for r in report.results]
    return "\n".join(lines) or f"(no results; error: {report.error})"


def _case(m: Mutant):
    marks = [pytest.mark.xfail(strict=True, reason=f"gap in the checks: {m.gap}")] if m.gap else []
    return pytest.param(m, id=m.id, marks=marks)


@pytest.mark.parametrize("device_type", DEVICES)
@pytest.mark.parametrize("wrong", [_case(m) for m in MUTANTS])
def test_mutant_loses_points_with_a_message_naming_the_mistake(wrong: Mutant, device_type: str, request: pytest.FixtureRequest):
    if wrong.real_data:
        request.getfixturevalue("mnist_folder")  # only the check on the real sample names it; test_no_sample.py covers its absence
    report = run_checks(wrong.blank, 1.0, wrong.objects, device=device_type)
    assert not report.error, f"the checks could not run: {report.error}"
    failures = [r for r in report.results if not r.passed]
    assert failures and report.score < 1.0, f"{wrong.id} passed every check of {wrong.blank}:\n{_summary(report)}"
    assert any(wrong.expect in r.message for r in failures), (
        f"{wrong.id} lost points, but no failing check's message contains {wrong.expect!r}:\n{_summary(report)}"
    )
    assert not any(r.message.startswith("your code failed an assertion of its own: opt.step()") for r in failures), (
        f"the checker's own optimizer's verdict is blamed on the student's asserts:\n{_summary(report)}"
    )
    if "loss_func" not in wrong.id:  # a named mistake is claimed only when it is confirmed
        assert not any(IGNORED_LOSS_FUNC in r.message for r in failures), (
            f"{wrong.id} does not ignore loss_func, but a failing check says so:\n{_summary(report)}"
        )


IGNORED_LOSS_FUNC = "ignored the loss_func"


def test_catalog_is_large_and_covers_every_blank():
    assert len(MUTANTS) >= 40, f"only {len(MUTANTS)} mutants"
    covered = {m.blank for m in MUTANTS}
    missing = set(known_blanks()) - covered
    assert not missing, f"no mutant for {sorted(missing)}"
    for blank in known_blanks():
        count = sum(m.blank == blank for m in MUTANTS)
        assert count >= 2, f"only {count} mutant(s) for {blank}"
    unknown = covered - set(known_blanks())
    assert not unknown, f"mutants for blanks that have no checks: {sorted(unknown)}"


def test_catalog_ids_are_unique():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids))
