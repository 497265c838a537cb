"""Hidden checks of BasicOptim (04_mnist_sgd): ``step()`` moves every parameter by -lr * grad, ``zero_grad()`` clears
every gradient."""

from __future__ import annotations

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, expect_close, expect_still_a_parameter, grad_is_cleared
from autograder.checks.gradient_descent.gd_step import step_mistakes
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, learning_rates, seeds
from autograder.checks.visible import expect_as_visible

BLANKS = ("BasicOptim",)


def _params_with_grads(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 2, generator=gen).to(device).requires_grad_(), torch.randn(2, generator=gen).to(device).requires_grad_()]
    grads = [torch.randn(3, 2, generator=gen).to(device), torch.randn(2, generator=gen).to(device)]
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    return params, grads


def optimizer_step_mistakes(before, grad, lr, index):
    mistakes = step_mistakes(before, grad, lr)
    if index > 0:
        mistakes = {"only the first parameter was updated: loop over every parameter in self.params": before, **mistakes}
    return mistakes


def visible_optim_parameters(device) -> tuple[list[Tensor], list[Tensor]]:
    """The visible test's two parameters [1, 2] and [[3]] with gradients [0.5, -1] and [[2]]."""
    params = [torch.tensor([1.0, 2.0], device=device).requires_grad_(), torch.tensor([[3.0]], device=device).requires_grad_()]
    grads = [torch.tensor([0.5, -1.0]), torch.tensor([[2.0]])]
    for param, grad in zip(params, grads):
        param.grad = grad.to(device)
    return params, grads


VISIBLE_AFTER_STEP = (torch.tensor([0.95, 2.1]), torch.tensor([[2.8]]))
ZERO_GRAD_STOPPED = "zero_grad cleared only some gradients: loop over every parameter (no return inside the loop)"
ZERO_GRAD_DID_NOTHING = "zero_grad left the gradients as they were: set p.grad = None (or p.grad.zero_()) for each p"


@gate
@blank("BasicOptim")
def test_basic_optim_visible_example(student, device):
    """step() at lr 0.1 turns [1, 2] and [[3]] into [0.95, 2.1] and [[2.8]]; zero_grad() clears both gradients"""
    params, grads = visible_optim_parameters(device)
    before = [p.detach().cpu().clone() for p in params]
    opt = call_student(student.BasicOptim, params, lr=0.1)
    call_student(opt.step)
    for index, (param, expected) in enumerate(zip(params, VISIBLE_AFTER_STEP)):
        mistakes = optimizer_step_mistakes(before[index], grads[index], 0.1, index)
        expect_as_visible(param.detach(), expected, mistakes, f"parameter {index + 1} after step()")
    call_student(opt.zero_grad)
    cleared = [grad_is_cleared(param) for param in params]
    assert any(cleared), ZERO_GRAD_DID_NOTHING
    assert all(cleared), ZERO_GRAD_STOPPED


@blank("BasicOptim")
@CHECK_SETTINGS
@given(lr=learning_rates, seed=seeds)
def test_basic_optim_step_updates_every_parameter(student, device, lr, seed):
    """step() updates every parameter in place by -lr * grad, keeping the same tensors, at any lr"""
    params, grads = _params_with_grads(device, seed % 1000)
    before = [p.detach().clone() for p in params]
    ids = [id(p) for p in params]
    opt = call_student(student.BasicOptim, params, lr)
    call_student(opt.step)
    for index, (param, old, grad) in enumerate(zip(params, before, grads)):
        assert id(param) == ids[index], "step replaced a parameter object: update the existing tensors in place"
        expect_close(param.detach(), old - lr * grad, optimizer_step_mistakes(old, grad, lr, index), what=f"parameter {index} after step()")


@blank("BasicOptim")
def test_basic_optim_zero_grad_clears_every_gradient(student, device):
    """zero_grad() clears every parameter's gradient (None or zeros), for several parameters"""
    params, _ = _params_with_grads(device)
    opt = call_student(student.BasicOptim, params, 0.1)
    call_student(opt.zero_grad)
    cleared = [grad_is_cleared(param) for param in params]
    assert any(cleared), ZERO_GRAD_DID_NOTHING
    assert all(cleared), ZERO_GRAD_STOPPED


@blank("BasicOptim")
def test_basic_optim_step_records_no_graph(student, device):
    """step() is not tracked by autograd: parameters stay leaves that require grad"""
    params, _ = _params_with_grads(device)
    opt = call_student(student.BasicOptim, params, 0.1)
    call_student(opt.step)
    for param in params:
        expect_still_a_parameter(param, "a parameter")


@blank("BasicOptim")
def test_basic_optim_accepts_a_generator_of_parameters(student, device):
    """works when given model.parameters() (a generator), for more than one step"""
    model = torch.nn.Linear(3, 1).to(device)
    opt = call_student(student.BasicOptim, model.parameters(), 0.1)
    for step in range(2):
        model.weight.grad, model.bias.grad = torch.ones_like(model.weight), torch.ones_like(model.bias)
        before = model.weight.detach().clone()
        call_student(opt.step)
        assert not torch.equal(before, model.weight.detach()), (
            f"step {step + 1} changed nothing: store list(params) in __init__, since a generator can be iterated only once"
        )
