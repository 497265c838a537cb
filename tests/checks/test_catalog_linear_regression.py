"""The mutants and alternatives of 02_linear_regression: wrong solutions the hidden checks must catch, each with its own
named mistake, and correct ones they must pass. The machinery is in ``catalog.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.reference import gradient_descent as gd
from autograder.reference import linear_regression as lr_ref

from catalog import Catalog

x, y = lr_ref.lesson_data()
"""The notebook's globals, as a mutant that reads them instead of its arguments sees them."""

pytestmark = pytest.mark.linear_regression

CATALOG = Catalog("linear_regression")

# ==== mutants =======================================================================================

@CATALOG.mutant("update", "x@a rather than a@x")
def update_a_matmul_x(a, x, y, lr):
    loss = gd.mse(a @ x, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@CATALOG.mutant("update", "forgot a.grad.zero_()")
def update_never_zeroes_grad(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
    return loss


@CATALOG.mutant("update", "returned the loss after the step")
def update_returns_loss_after_step(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return gd.mse(x @ a, y)


@CATALOG.mutant("update", "the sum of squared errors")
def update_sum_of_squares(a, x, y, lr):
    loss = ((x @ a - y) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@CATALOG.mutant("update", "the parameters did not change")
def update_rebinds_a(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a = a - lr * a.grad
    a.grad = None
    return loss


@CATALOG.mutant("update", "update returned nothing")
def update_forgets_to_return(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()


@CATALOG.mutant("update", "stepped outside torch.no_grad()")
def update_outside_no_grad(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    a -= lr * a.grad
    a.grad.zero_()
    return loss


@CATALOG.mutant("update", "forgot to multiply the gradient by the learning rate")
def update_forgot_lr(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(a.grad)
        a.grad.zero_()
    return loss


@CATALOG.mutant("update", "return the loss as a 0-d tensor")
def update_returns_python_float(a, x, y, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a -= a.grad * lr
        a.grad.zero_()
    return loss.item()


@CATALOG.mutant("update", "used the notebook's globals `x` and `y` instead of its arguments")
def update_reads_global_data(a, xs, ys, lr):
    loss = gd.mse(x @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@CATALOG.mutant("update", "used the notebook's global `y` instead of its argument")
def update_reads_global_y(a, xs, ys, lr):
    loss = gd.mse(xs @ a, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


@CATALOG.mutant("update", "changed its input y in place")
def update_subtracts_from_y_in_place(a, x, y, lr):
    y -= x @ a  # y now holds the errors: the caller's y is overwritten
    loss = (y**2).mean()
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


# ==== alternatives =================================================================================

@CATALOG.alternative("update")
def update_data_and_none(a, x, y, lr):
    y_hat = x @ a
    loss = ((y_hat - y) ** 2).mean()
    loss.backward()
    a.data -= lr * a.grad
    a.grad = None
    return loss


@CATALOG.alternative("update")
def update_functional_loss(a, x, y, lr):
    loss = F.mse_loss(torch.matmul(x, a), y)
    loss.backward()
    with torch.no_grad():
        a -= lr * a.grad
        a.grad.zero_()
    return loss


@CATALOG.alternative("update")
def update_elementwise_prediction(a, x, y, lr):
    y_hat = (x * a).sum(dim=1)
    loss = gd.mse(y_hat, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(a.grad * lr)
    a.grad = None
    return loss.detach()


test_mutant_loses_points_with_its_own_named_mistake, test_alternative_passes_every_check = CATALOG.tests()
