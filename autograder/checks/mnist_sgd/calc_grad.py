"""Hidden checks of calc_grad (04_mnist_sgd): the loss of a batch, backpropagated into the parameters' gradients."""

from __future__ import annotations

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, expect_close
from autograder.checks.mnist_sgd.inputs import bce, image_batch, linear_model
from autograder.checks.mnist_sgd.spies import LossSpy, call_with_spy, expect_called, mse_loss
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, seeds
from autograder.checks.visible import expect_as_visible, expect_number_as_visible
from autograder.reference import mnist_sgd as ref

BLANKS = ("calc_grad",)

CALC_GRAD_CHANGED_PARAMETERS = (
    "calc_grad changed the parameters' values: it only computes the gradients (loss.backward()); "
    "the optimizer's step changes the values"
)


def _gradients_of_the_predictions(device, seed, xb) -> list[list[Tensor]]:
    """The gradients left by ``model(xb).mean().backward()`` and ``.sum().backward()`` (backward on the predictions)."""
    found = []
    for reduce in (torch.mean, torch.sum):
        model = linear_model(device, seed)
        reduce(model(xb)).backward()
        found.append([p.grad for p in model.parameters()])
    return found


@gate
@blank("calc_grad")
def test_calc_grad_visible_example(student, device):
    """returns the loss log(2) and fills weights.grad [[-1], [0]] and bias.grad [-0.5] for one image, leaving the values at 0"""
    w = torch.zeros(2, 1, device=device).requires_grad_()
    b = torch.zeros(1, device=device).requires_grad_()
    loss = call_student(student.calc_grad, torch.tensor([[2.0, 0.0]], device=device), torch.tensor([[1]], device=device), ref.Linear1(w, b), bce)
    assert loss is not None, "returned None: return the loss computed with loss_func"
    assert isinstance(loss, Tensor), f"returned {type(loss).__name__}: return the loss as the tensor loss_func gave (no .item())"
    expect_number_as_visible(loss.item(), 0.693147, 1e-5, {}, "the loss returned by calc_grad")
    assert w.grad is not None, "weights.grad is empty: call loss.backward() so that the parameters get their gradients"
    on_predictions = {"called backward() on the predictions, not on the loss: call loss.backward() on loss_func(model(xb), yb)": torch.tensor([[2.0], [0.0]])}
    expect_as_visible(w.grad, torch.tensor([[-1.0], [0.0]]), on_predictions, "weights.grad")
    assert b.grad is not None, "bias.grad is empty: call loss.backward() so that the parameters get their gradients"
    expect_as_visible(b.grad, torch.tensor([-0.5]), {}, "bias.grad")
    assert not w.detach().any() and not b.detach().any(), CALC_GRAD_CHANGED_PARAMETERS


@blank("calc_grad")
@CHECK_SETTINGS
@given(seed=seeds)
def test_calc_grad_fills_the_reference_gradients(student, device, seed):
    """fills weights.grad and bias.grad with the reference's gradients of the loss and leaves the parameters' values alone"""
    xb, yb = image_batch(device, seed=seed % 1000)
    model, twin = linear_model(device, seed % 7), linear_model(device, seed % 7)
    values = [p.detach().clone() for p in model.parameters()]
    ref.calc_grad(xb.clone(), yb.clone(), twin, ref.mnist_loss)
    wrong = _gradients_of_the_predictions(device, seed % 7, xb)
    call_student(student.calc_grad, xb, yb, model, ref.mnist_loss)
    for index, (name, param, expected) in enumerate(zip(("weights", "bias"), model.parameters(), twin.parameters())):
        assert param.grad is not None, f"{name}.grad is empty: call loss.backward() on the loss"
        assert torch.equal(param.detach(), values[index]), CALC_GRAD_CHANGED_PARAMETERS
        expect_close(param.grad, expected.grad, {
            f"called backward() on the predictions ({how}), not on the loss: call loss.backward() on loss_func(model(xb), yb)":
                grads[index]
            for how, grads in zip(("their mean", "their sum"), wrong)
        }, what=f"{name}.grad")


@blank("calc_grad")
def test_calc_grad_uses_the_batch_it_is_given(student, device):
    """uses the xb and yb it is given, not the notebook's: another batch gives other gradients"""
    grads = []
    for seed in (5, 6):
        xb, yb = image_batch(device, seed=seed)
        model = linear_model(device, 2)
        call_student(student.calc_grad, xb, yb, model, ref.mnist_loss)
        grads.append([None if p.grad is None else p.grad.detach().clone() for p in model.parameters()])
    if all(g is not None for g in grads[0] + grads[1]) and all(torch.equal(a, b) for a, b in zip(*grads)):
        raise AssertionError(
            "ignored the xb and yb it was given: two different batches gave the same gradients (did it use the "
            "notebook's own xb and yb?); compute loss_func(model(xb), yb) with the arguments"
        )
    xb, yb = image_batch(device, seed=6)
    twin = linear_model(device, 2)
    ref.calc_grad(xb, yb, twin, ref.mnist_loss)
    for name, got, expected in zip(("weights", "bias"), grads[1], twin.parameters()):
        assert got is not None, f"{name}.grad is empty: call loss.backward() on the loss"
        expect_close(got, expected.grad, what=f"{name}.grad")


@blank("calc_grad")
def test_calc_grad_uses_the_given_loss_function(student, device):
    """uses the loss_func it is given"""
    xb, yb = image_batch(device, seed=3)
    model, twin = linear_model(device, 1), linear_model(device, 1)
    spy = LossSpy()
    call_with_spy(student.calc_grad, xb, yb, model, spy, spy=spy, fix="compute loss_func(model(xb), yb)")
    expect_called(spy, "compute loss_func(model(xb), yb)")
    ref.calc_grad(xb, yb, twin, mse_loss)
    for name, param, expected in zip(("weights", "bias"), model.parameters(), twin.parameters()):
        assert param.grad is not None, f"{name}.grad is empty: call loss.backward() on the loss"
        expect_close(param.grad, expected.grad, what=f"{name}.grad with another loss_func")
