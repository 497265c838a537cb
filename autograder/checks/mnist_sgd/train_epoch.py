"""Hidden checks of train_epoch (04_mnist_sgd): one pass over the batches, calc_grad then one optimizer step each."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from autograder.checks.compare import call_student, expect_close
from autograder.checks.mnist_sgd.inputs import bce, image_batch, linear_model, toy_model, visible_toy_data
from autograder.checks.mnist_sgd.spies import LOSS_FUNC_LR, CountingSGD, LossSpy, call_with_spy, expect_same_training, mse_loss
from autograder.checks.runner import blank, gate
from autograder.checks.visible import expect_as_visible
from autograder.reference import mnist_sgd as ref

BLANKS = ("train_epoch",)


def _epoch_case(device, n_batches=3, seed=0):
    batches = [image_batch(device, n=8, seed=seed + 10 * i) for i in range(n_batches)]
    return batches, linear_model(device, seed), linear_model(device, seed)


def _toy_epoch(device, batches: list, order: Callable[[Any, Any, Any], None]) -> Tensor:
    """Weights and bias, as one vector [w1, w2, b], after an epoch over ``batches``: ``order(opt, model, batch)`` per batch."""
    model, w, b = toy_model(device)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for xb, yb in batches:
        order(opt, model, (xb, yb))
    return torch.cat([w.detach().flatten(), b.detach()]).cpu()


def train_epoch_mistakes(device) -> dict[str, Tensor]:
    """What the usual wrong loops leave in [w1, w2, b] after the visible test's epoch (two batches of one image)."""
    x, y = visible_toy_data(device)
    batches = [(x[:1], y[:1]), (x[1:], y[1:])]

    def grad(model, batch):
        bce(model(batch[0]), batch[1]).backward()

    def without_zero_grad(opt, model, batch):
        grad(model, batch)
        opt.step()

    def zero_between(opt, model, batch):
        grad(model, batch)
        opt.zero_grad()
        opt.step()

    def once_per_epoch(model, w, b):
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        for batch in batches:
            grad(model, batch)
        opt.step()
        return torch.cat([w.detach().flatten(), b.detach()]).cpu()

    return {
        "forgot opt.zero_grad(): gradients add up across batches": _toy_epoch(device, batches, without_zero_grad),
        "stepped once per epoch: call opt.step() inside the loop, once per batch": once_per_epoch(*toy_model(device)),
        "the parameters did not change: call opt.step() after calc_grad, and opt.zero_grad() before calc_grad or "
        "after opt.step(), not between them": _toy_epoch(device, batches, zero_between),
        "trained on the first batch only: loop over every batch of dl": _toy_epoch(device, batches[:1], without_zero_grad),
    }


VISIBLE_AFTER_EPOCH = torch.tensor([1.0, -1.2449187, -0.12245933])
"""[w1, w2, b] after the visible test's epoch: two steps of SGD at lr 1 with binary cross-entropy from zeros."""


@gate
@blank("train_epoch")
def test_train_epoch_visible_example(student, device):
    """after one epoch over two one-image batches (SGD, lr 1, binary cross-entropy), weights [[1], [-1.2449]] and bias [-0.1225]"""
    x, y = visible_toy_data(device)
    model, w, b = toy_model(device)
    call_student(student.train_epoch, model, [(x[:1], y[:1]), (x[1:], y[1:])], torch.optim.SGD(model.parameters(), lr=1.0), bce)
    got = torch.cat([w.detach().flatten(), b.detach()])
    expect_as_visible(got, VISIBLE_AFTER_EPOCH, train_epoch_mistakes(device), "[w1, w2, b] after one epoch", atol=1e-5)


@blank("train_epoch")
def test_train_epoch_matches_the_reference_epoch(student, device):
    """from the same parameters and batches, ends with the reference's parameters"""
    batches, model, twin = _epoch_case(device)
    opt = CountingSGD(model.parameters(), 0.5)
    call_student(student.train_epoch, model, batches, opt, ref.mnist_loss)
    ref.train_epoch(twin, batches, ref.BasicOptim(twin.parameters(), 0.5), ref.mnist_loss)
    if opt.zero_grads == 0:
        raise AssertionError("forgot opt.zero_grad(): gradients add up across batches")
    for name, param, expected in zip(("weights", "bias"), model.parameters(), twin.parameters()):
        expect_close(param.detach(), expected.detach(), what=f"{name} after one epoch")


@blank("train_epoch")
def test_train_epoch_steps_once_per_batch(student, device):
    """calls opt.step() and opt.zero_grad() exactly once per batch"""
    batches, model, _ = _epoch_case(device, n_batches=4, seed=1)
    opt = CountingSGD(model.parameters(), 0.5)
    call_student(student.train_epoch, model, batches, opt, ref.mnist_loss)
    steps, zeros = opt.steps, opt.zero_grads
    assert steps == 4, f"called opt.step() {steps} times for 4 batches: step once per batch, inside the loop"
    assert zeros == 4, (
        "forgot opt.zero_grad(): gradients add up across batches" if zeros == 0
        else f"called opt.zero_grad() {zeros} times for 4 batches: once per batch, after the step"
    )
    assert opt.calls[:2] == ["step", "zero_grad"] or opt.calls[:2] == ["zero_grad", "step"], "unexpected order of step and zero_grad"


@blank("train_epoch")
def test_train_epoch_uses_the_given_loss_function(student, device):
    """trains with the loss_func it is given"""
    batches, model, twin = _epoch_case(device, seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    spy, opt = LossSpy(), CountingSGD(model.parameters(), LOSS_FUNC_LR)
    call_with_spy(student.train_epoch, model, batches, opt, spy, spy=spy, fix="pass it on to calc_grad(xb, yb, model, loss_func)")
    ref.train_epoch(twin, batches, ref.BasicOptim(twin.parameters(), LOSS_FUNC_LR), mse_loss)
    expect_same_training(
        model, twin, before, opt, spy, len(batches), what="after an epoch with another loss_func",
        fixes=("call opt.step() for each batch", "pass it on to calc_grad(xb, yb, model, loss_func)"),
    )
