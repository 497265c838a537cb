"""Hidden checks for 04_mnist_sgd: sigmoid, mnist_loss, calc_grad, batch_accuracy, BasicOptim, train_epoch, train_model.

The gates (``@gate``) repeat each blank's visible test: the same small inputs the test cell builds (PyTorch's
``SGD`` and binary cross-entropy where the test cell uses them), the same assertions and tolerances. The other
checks add random inputs, float64, gradients, several parameters, counterfactual runs (are the arguments used at
all?), state (what must stay unchanged) and training on the real MNIST sample.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import (
    INSTRUMENT_VERDICTS,
    call_student,
    close,
    device_for,
    difference_message,
    expect_close,
    expect_dtype_and_device,
    expect_gradcheck,
    expect_same_gradients,
    expect_still_a_parameter,
    expect_unchanged,
    grad_is_cleared,
    likely_mistake,
)
from autograder.checks.data import real_sample
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, learning_rates, random_tensor, seeds, vector_shapes
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.checks.training_curves import calibrated_run, curves_of
from autograder.data import synthetic_mnist
from autograder.reference import mnist_sgd as ref
from autograder.reference.runs import batches_for

BLANKS = ("sigmoid", "mnist_loss", "calc_grad", "batch_accuracy", "BasicOptim", "train_epoch", "train_model")
UPDATES_PARAMETERS: tuple[str, ...] = ("BasicOptim", "train_epoch", "train_model")
"""Blanks that update parameters in place: an in-place error there means a step outside ``torch.no_grad()``."""
NEEDS_MNIST_SAMPLE = True
"""True: a check uses the real MNIST sample, so `autograder grade` and `validate` refuse to start without it."""

ON_THE_VISIBLE_EXAMPLE = "(on the visible test's example)"


def expect_as_visible(got: Any, expected: Tensor, mistakes: Mapping[str, Tensor], what: str,
                      rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """The visible test's ``torch.allclose(got, expected, rtol, atol)`` (its defaults unless given), on the CPU.

    On failure, names the first known mistake ``got`` matches, else shows the expected and the actual values.
    """
    if isinstance(got, Tensor) and got.shape == expected.shape:
        if bool(torch.allclose(got.detach().cpu().to(expected.dtype), expected, rtol=rtol, atol=atol)):
            return
    named = likely_mistake(got, mistakes)
    if named is not None:
        raise AssertionError(f"{named} {ON_THE_VISIBLE_EXAMPLE}")
    shown = got.detach().cpu().tolist() if isinstance(got, Tensor) else got
    raise AssertionError(f"{what}: expected {expected.tolist()}, got {shown} {ON_THE_VISIBLE_EXAMPLE}"[:300])


def expect_number_as_visible(got: Any, expected: float, tolerance: float, mistakes: Mapping[str, Tensor], what: str) -> None:
    """The visible test's ``abs(got - expected) < tolerance`` for a Python number ``got`` (e.g. ``loss.item()``)."""
    if isinstance(got, (int, float)) and abs(got - expected) < tolerance:
        return
    named = likely_mistake(got, mistakes)
    if named is not None:
        raise AssertionError(f"{named} {ON_THE_VISIBLE_EXAMPLE}")
    raise AssertionError(f"{what}: expected {expected:.6f}, got {got} {ON_THE_VISIBLE_EXAMPLE}"[:300])


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


# ---- sigmoid ------------------------------------------------------------------------------------------

USED_A_PYTHON_NUMBER = (
    "turned the tensor into one Python number (math.exp, float() or .item()?): use torch.exp, which works on "
    "every element of a tensor"
)


def sigmoid_mistakes(x):
    return {
        "wrong sign inside exp: sigmoid is 1 / (1 + exp(-x))": 1 / (1 + torch.exp(x)),
        "used tanh: sigmoid is 1 / (1 + exp(-x)), between 0 and 1": torch.tanh(x),
        "forgot the 1 + in the denominator: sigmoid is 1 / (1 + exp(-x))": 1 / torch.exp(-x),
    }


def _call_sigmoid(student, x: Tensor) -> Any:
    """``student.sigmoid(x)``; a conversion of a tensor of several numbers to one Python number is named."""
    try:
        result = call_student(student.sigmoid, x)
    except AssertionError as error:
        if "only one element tensors can be converted" in str(error) or "a Tensor with" in str(error) and "Scalar" in str(error):
            raise AssertionError(USED_A_PYTHON_NUMBER) from error
        raise
    if isinstance(result, float) and isinstance(x, Tensor):
        raise AssertionError(f"returned a Python float for a tensor: {USED_A_PYTHON_NUMBER}")
    return result


@gate
@blank("sigmoid")
def test_sigmoid_visible_example(student, device):
    """gives [0.119203, 0.880797] at [-2, 2], 0.5 at 0, and keeps a (3, 1) input's shape"""
    x = torch.tensor([-2.0, 2.0], device=device)
    got = _call_sigmoid(student, x)
    assert isinstance(got, Tensor), f"returned {type(got).__name__}: {USED_A_PYTHON_NUMBER}"
    expect_as_visible(got, torch.tensor([0.119203, 0.880797]), sigmoid_mistakes(torch.tensor([-2.0, 2.0])), "sigmoid([-2, 2])", atol=1e-5)
    got = _call_sigmoid(student, torch.tensor(0.0, device=device))
    assert isinstance(got, Tensor), f"returned {type(got).__name__}: {USED_A_PYTHON_NUMBER}"
    expect_number_as_visible(got.item(), 0.5, 1e-6, sigmoid_mistakes(torch.tensor(0.0)), "sigmoid(0)")
    shape = tuple(_call_sigmoid(student, torch.zeros(3, 1, device=device)).shape)
    assert shape == (3, 1), f"sigmoid of a (3, 1) tensor has shape {shape}: keep the input's shape"


@blank("sigmoid")
def test_sigmoid_known_values(student, device):
    """gives 0.5 at 0 and approaches 1 and 0 for large and very negative inputs"""
    x = torch.tensor([0.0, 2.0, -2.0, 10.0, -10.0], device=device)
    expected, mistakes = torch.sigmoid(x), sigmoid_mistakes(x)
    expect_close(_call_sigmoid(student, x.clone()), expected, mistakes)


@blank("sigmoid")
@CHECK_SETTINGS
@given(shape=vector_shapes, dtype=dtypes, seed=seeds)
def test_sigmoid_matches_torch_sigmoid(student, device, shape, dtype, seed):
    """matches torch.sigmoid elementwise on (n,) and (n, 1) inputs, keeping dtype and device and the input unchanged"""
    x = random_tensor(shape, seed, dtype, device_for(dtype, device), -8, 8)
    before = x.clone()
    expected, mistakes = torch.sigmoid(before), sigmoid_mistakes(before)
    result = _call_sigmoid(student, x)
    expect_unchanged([before], [x], ["x"])
    expect_close(result, expected, mistakes)
    expect_dtype_and_device(result, x)


@blank("sigmoid")
def test_sigmoid_gradients(student, device):
    """has the reference's gradient and passes gradcheck"""
    x = random_tensor((6, 1), 0, torch.float64, device_for(torch.float64, device), -4, 4)
    expect_same_gradients(student.sigmoid, ref.sigmoid, [x], ["x"])
    expect_gradcheck(student.sigmoid, [x])


# ---- mnist_loss ---------------------------------------------------------------------------------------


def loss_mistakes(predictions, targets):
    p = torch.sigmoid(predictions)
    return {
        "forgot to apply sigmoid: squash the predictions into (0, 1) first": torch.where(targets == 1, 1 - predictions, predictions).mean(),
        "swapped the two cases: for a 3 (target 1) the loss is 1 - p, for a 7 it is p": torch.where(targets == 1, p, 1 - p).mean(),
        "forgot .mean(): this returns the sum over the batch": torch.where(targets == 1, 1 - p, p).sum(),
        "applied sigmoid twice": torch.where(targets == 1, 1 - torch.sigmoid(p), torch.sigmoid(p)).mean(),
        "used accuracy as the loss: it hardly changes when weights change, so its gradient is zero almost everywhere":
            ((p > 0.5).float() == targets).float().mean(),
        "used 1 - accuracy as the loss: its gradient is zero almost everywhere": 1 - ((p > 0.5).float() == targets).float().mean(),
        "flattened the targets: predictions of shape (n, 1) and targets of shape (n,) broadcast to an (n, n) table; "
        "keep both of shape (n, 1)": torch.where(targets.reshape(-1) == 1, 1 - p, p).mean(),
    }


def _loss_inputs(n, seed, dtype, device):
    predictions = random_tensor((n, 1), seed, dtype, device, -4, 4)
    targets = (random_tensor((n, 1), seed + 1, torch.float64, device, 0, 1) > 0.5).to(dtype)
    return predictions, targets


def visible_loss_examples() -> list[tuple[Tensor, Tensor, float]]:
    """The visible test's two examples of ``mnist_loss``: (predictions, targets, expected loss)."""
    return [
        (torch.tensor([[0.0], [2.0]]), torch.tensor([[1], [0]]), 0.690399),
        (torch.tensor([0.9, 0.4, 0.2]), torch.tensor([1, 0, 1]), 0.445968),
    ]


@gate
@blank("mnist_loss")
def test_mnist_loss_visible_example(student, device):
    """gives 0.690399 (a 0-d tensor) on the worked example and 0.445968 on the lesson's toy predictions"""
    for index, (predictions, targets, expected) in enumerate(visible_loss_examples()):
        loss = call_student(student.mnist_loss, predictions.to(device), targets.to(device))
        if not isinstance(loss, Tensor):
            raise AssertionError(f"returned {type(loss).__name__}, not a tensor: keep the loss a 0-d tensor (no .item() or float())")
        if index == 0:
            assert loss.shape == (), f"the loss should be a 0-d tensor, got shape {tuple(loss.shape)}: take the .mean()"
        expect_number_as_visible(loss.item(), expected, 1e-5, loss_mistakes(predictions, targets), "mnist_loss")


@blank("mnist_loss")
def test_mnist_loss_on_the_lesson_example(student, device):
    """gives the reference's value on the lesson's example (predictions 0.9, 0.4, 0.2; targets 1, 0, 1) as (n, 1)"""
    predictions = torch.tensor([[0.9], [0.4], [0.2]], device=device)
    targets = torch.tensor([[1.0], [0.0], [1.0]], device=device)
    expected, mistakes = ref.mnist_loss(predictions, targets), loss_mistakes(predictions, targets)
    result = call_student(student.mnist_loss, predictions.clone(), targets.clone())
    expect_close(result, expected, mistakes)


@blank("mnist_loss")
@CHECK_SETTINGS
@given(dtype=dtypes, seed=seeds)
def test_mnist_loss_matches_reference(student, device, dtype, seed):
    """matches the reference on random batches in float32 and float64, keeping dtype and device and the inputs unchanged"""
    predictions, targets = _loss_inputs(9, seed, dtype, device_for(dtype, device))
    before = [predictions.clone(), targets.clone()]
    expected, mistakes = ref.mnist_loss(*before), loss_mistakes(*before)
    result = call_student(student.mnist_loss, predictions, targets)
    expect_unchanged(before, [predictions, targets], ["predictions", "targets"])
    expect_close(result, expected, mistakes)
    expect_dtype_and_device(result, predictions)


@blank("mnist_loss")
def test_mnist_loss_gradients(student, device):
    """has the reference's gradient with respect to the predictions and passes gradcheck"""
    predictions, targets = _loss_inputs(8, 11, torch.float64, device_for(torch.float64, device))
    try:
        expect_same_gradients(lambda p: student.mnist_loss(p, targets), lambda p: ref.mnist_loss(p, targets), [predictions], ["predictions"])
    except AssertionError as error:
        if "cut off from autograd" in str(error):
            raise AssertionError(
                "no gradient flows from the loss: did you use accuracy (a comparison like > 0.5) as the loss? "
                "Use the sigmoid's distance to the target instead"
            ) from error
        raise
    expect_gradcheck(lambda p: student.mnist_loss(p, targets), [predictions])


# ---- calc_grad ----------------------------------------------------------------------------------------

def _linear_model(device, seed=0, dtype=torch.float32):
    """A small ``Linear1``: weights ~ N(0, 0.01^2), so predictions start near 0 and a few steps change them."""
    gen = torch.Generator().manual_seed(seed)
    weights = (torch.randn(28 * 28, 1, generator=gen, dtype=dtype) * 0.01).to(device).requires_grad_()
    bias = torch.randn(1, generator=gen, dtype=dtype).to(device).requires_grad_()
    return ref.Linear1(weights, bias)


def _batch(device, n=16, seed=0, dtype=torch.float32):
    xb = random_tensor((n, 28 * 28), seed, dtype, device, 0, 1)
    yb = (random_tensor((n, 1), seed + 1, torch.float64, device, 0, 1) > 0.5).to(dtype)
    return xb, yb


def _mse_loss(predictions, targets):
    return ((predictions - targets) ** 2).mean()


LOSS_FUNC_LR = 1e-3
"""Learning rate of the checks that train with ``_mse_loss``: larger ones make its training diverge (values ~1e4)."""


class LossSpy:
    """``_mse_loss`` that counts its calls: given as loss_func, it shows whether a student's function used it.

    A plain class, so that a sandboxed student's calls come back to this (the checker's) side.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, predictions, targets):
        self.calls += 1
        return _mse_loss(predictions, targets)


def _expect_called(spy: LossSpy, fix: str) -> None:
    """Assert the student's function called the loss_func it was given (``spy``) at least once."""
    if spy.calls == 0:
        raise AssertionError(f"ignored the loss_func argument: it was never called; {fix}")


def _call_with_spy(fn, *args, spy: LossSpy, fix: str):
    """``call_student(fn, *args)``; a call of None in place of the never-called ``spy`` is named as such."""
    try:
        return call_student(fn, *args)
    except AssertionError as error:
        if spy.calls == 0 and str(error).startswith("called None as a function"):
            raise AssertionError(f"ignored the loss_func argument: it was never called, None was called instead; {fix}") from error
        raise


def _gradients_of_the_predictions(device, seed, xb):
    """The gradients left by ``model(xb).mean().backward()`` and ``.sum().backward()`` (backward on the predictions)."""
    found = []
    for reduce in (torch.mean, torch.sum):
        model = _linear_model(device, seed)
        reduce(model(xb)).backward()
        found.append([p.grad for p in model.parameters()])
    return found



def bce(predictions: Tensor, targets: Tensor) -> Tensor:
    """The visible tests' loss_func: PyTorch's binary cross-entropy on raw predictions (``bce`` in the notebook)."""
    return F.binary_cross_entropy_with_logits(predictions, targets.float())


CALC_GRAD_CHANGED_PARAMETERS = (
    "calc_grad changed the parameters' values: it only computes the gradients (loss.backward()); "
    "the optimizer's step changes the values"
)


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
    xb, yb = _batch(device, seed=seed % 1000)
    model, twin = _linear_model(device, seed % 7), _linear_model(device, seed % 7)
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
        xb, yb = _batch(device, seed=seed)
        model = _linear_model(device, 2)
        call_student(student.calc_grad, xb, yb, model, ref.mnist_loss)
        grads.append([None if p.grad is None else p.grad.detach().clone() for p in model.parameters()])
    if all(g is not None for g in grads[0] + grads[1]) and all(torch.equal(a, b) for a, b in zip(*grads)):
        raise AssertionError(
            "ignored the xb and yb it was given: two different batches gave the same gradients (did it use the "
            "notebook's own xb and yb?); compute loss_func(model(xb), yb) with the arguments"
        )
    xb, yb = _batch(device, seed=6)
    twin = _linear_model(device, 2)
    ref.calc_grad(xb, yb, twin, ref.mnist_loss)
    for name, got, expected in zip(("weights", "bias"), grads[1], twin.parameters()):
        assert got is not None, f"{name}.grad is empty: call loss.backward() on the loss"
        expect_close(got, expected.grad, what=f"{name}.grad")


@blank("calc_grad")
def test_calc_grad_uses_the_given_loss_function(student, device):
    """uses the loss_func it is given"""
    xb, yb = _batch(device, seed=3)
    model, twin = _linear_model(device, 1), _linear_model(device, 1)
    spy = LossSpy()
    _call_with_spy(student.calc_grad, xb, yb, model, spy, spy=spy, fix="compute loss_func(model(xb), yb)")
    _expect_called(spy, "compute loss_func(model(xb), yb)")
    ref.calc_grad(xb, yb, twin, _mse_loss)
    for name, param, expected in zip(("weights", "bias"), model.parameters(), twin.parameters()):
        assert param.grad is not None, f"{name}.grad is empty: call loss.backward() on the loss"
        expect_close(param.grad, expected.grad, what=f"{name}.grad with another loss_func")



# ---- batch_accuracy -----------------------------------------------------------------------------------


def accuracy_mistakes(xb, yb):
    correct = (xb.sigmoid() > 0.5) == yb
    return {
        "returned the number of correct predictions: return the fraction (.float().mean())": correct.float().sum(),
        "thresholded the raw predictions at 0.5: apply sigmoid first (or compare the raw predictions with 0)": ((xb > 0.5) == yb).float().mean(),
        "compared the wrong way: a prediction above 0.5 means a 3 (target 1)": ((xb.sigmoid() < 0.5) == yb).float().mean(),
        "shapes do not match: yb is (n, 1), so compare with predictions of shape (n, 1), not (n,)": ((xb.sigmoid() > 0.5).view(-1) == yb).float().mean(),
    }


@gate
@blank("batch_accuracy")
def test_batch_accuracy_visible_example(student, device):
    """gives 2/3, a 0-d float32 tensor, for predictions [[0.9], [-0.4], [0.2]] and targets [[1], [0], [0]]"""
    xb, yb = torch.tensor([[0.9], [-0.4], [0.2]]), torch.tensor([[1], [0], [0]])
    acc = call_student(student.batch_accuracy, xb.to(device), yb.to(device))
    assert isinstance(acc, Tensor) and acc.shape == () and acc.dtype == torch.float32, (
        f"return a 0-d float tensor, got {acc.dtype if isinstance(acc, Tensor) else type(acc).__name__} of {_shape(acc)}"
    )
    expect_number_as_visible(acc.item(), 2 / 3, 1e-6, accuracy_mistakes(xb, yb), "batch_accuracy")


@blank("batch_accuracy")
@CHECK_SETTINGS
@given(seed=seeds, dtype=dtypes)
def test_batch_accuracy_matches_reference(student, device, seed, dtype):
    """gives the fraction of a batch classified right, for (n, 1) predictions and targets, leaving them unchanged"""
    xb, yb = _loss_inputs(10, seed, dtype, device_for(dtype, device))
    before = [xb.clone(), yb.clone()]
    expected, mistakes = ref.batch_accuracy(*before).double(), accuracy_mistakes(*before)
    result = call_student(student.batch_accuracy, xb, yb)
    expect_unchanged(before, [xb, yb], ["xb", "yb"])
    expect_close(result, expected, mistakes, what="the accuracy")


@blank("batch_accuracy")
def test_batch_accuracy_extremes(student, device):
    """gives 1.0 for a perfect batch and 0.0 for an all-wrong one"""
    yb = torch.tensor([[1.0], [0.0], [1.0], [0.0]], device=device)
    perfect = (yb * 2 - 1) * 5
    expect_close(call_student(student.batch_accuracy, perfect.clone(), yb.clone()), torch.tensor(1.0, dtype=torch.float64), accuracy_mistakes(perfect, yb), what="a perfect batch's accuracy")
    expect_close(call_student(student.batch_accuracy, -perfect, yb.clone()), torch.tensor(0.0, dtype=torch.float64), accuracy_mistakes(-perfect, yb), what="an all-wrong batch's accuracy")


# ---- BasicOptim ---------------------------------------------------------------------------------------

def _params_with_grads(device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 2, generator=gen).to(device).requires_grad_(), torch.randn(2, generator=gen).to(device).requires_grad_()]
    grads = [torch.randn(3, 2, generator=gen).to(device), torch.randn(2, generator=gen).to(device)]
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    return params, grads


def optimizer_step_mistakes(before, grad, lr, index):
    from autograder.checks.gradient_descent import step_mistakes

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


STEP_WITHOUT_GRADIENT = "opt.step() was called with no gradient: call calc_grad before opt.step()"
INSTRUMENT_VERDICTS.add(STEP_WITHOUT_GRADIENT)


class CountingOptim:
    """Wraps the reference optimizer and records the order of ``step`` and ``zero_grad`` calls."""

    def __init__(self, params, lr):
        self.inner = ref.BasicOptim(params, lr)
        self.calls: list[str] = []

    @property
    def params(self):
        return self.inner.params

    @property
    def lr(self):
        return self.inner.lr

    @lr.setter
    def lr(self, value):
        self.inner.lr = value

    def step(self, *args, **kwargs):
        self.calls.append("step")
        if any(p.grad is None for p in self.inner.params):
            raise AssertionError(STEP_WITHOUT_GRADIENT)
        self.inner.step()

    def zero_grad(self, *args, **kwargs):
        self.calls.append("zero_grad")
        self.inner.zero_grad()


def _epoch_case(device, n_batches=3, seed=0):
    batches = [_batch(device, n=8, seed=seed + 10 * i) for i in range(n_batches)]
    return batches, _linear_model(device, seed), _linear_model(device, seed)


# ---- train_epoch --------------------------------------------------------------------------------------


def visible_toy_data(device) -> tuple[Tensor, Tensor]:
    """The visible tests' toy "images" with 2 pixels: a 3 ([2, 0], target 1) and a 7 ([0, 2], target 0)."""
    return torch.tensor([[2.0, 0.0], [0.0, 2.0]], device=device), torch.tensor([[1], [0]], device=device)


def _toy_model(device) -> tuple[Any, Tensor, Tensor]:
    w, b = torch.zeros(2, 1, device=device).requires_grad_(), torch.zeros(1, device=device).requires_grad_()
    return ref.Linear1(w, b), w, b


def _toy_epoch(device, batches: list, order: Callable[[Any, Any, Any], None]) -> Tensor:
    """Weights and bias, as one vector [w1, w2, b], after an epoch over ``batches``: ``order(opt, model, batch)`` per batch."""
    model, w, b = _toy_model(device)
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
        "stepped once per epoch: call opt.step() inside the loop, once per batch": once_per_epoch(*_toy_model(device)),
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
    model, w, b = _toy_model(device)
    call_student(student.train_epoch, model, [(x[:1], y[:1]), (x[1:], y[1:])], torch.optim.SGD(model.parameters(), lr=1.0), bce)
    got = torch.cat([w.detach().flatten(), b.detach()])
    expect_as_visible(got, VISIBLE_AFTER_EPOCH, train_epoch_mistakes(device), "[w1, w2, b] after one epoch", atol=1e-5)


@blank("train_epoch")
def test_train_epoch_matches_the_reference_epoch(student, device):
    """from the same parameters and batches, ends with the reference's parameters"""
    batches, model, twin = _epoch_case(device)
    opt = CountingOptim(model.parameters(), 0.5)
    call_student(student.train_epoch, model, batches, opt, ref.mnist_loss)
    ref.train_epoch(twin, batches, ref.BasicOptim(twin.parameters(), 0.5), ref.mnist_loss)
    if opt.calls.count("zero_grad") == 0:
        raise AssertionError("forgot opt.zero_grad(): gradients add up across batches")
    for name, param, expected in zip(("weights", "bias"), model.parameters(), twin.parameters()):
        expect_close(param.detach(), expected.detach(), what=f"{name} after one epoch")



@blank("train_epoch")
def test_train_epoch_steps_once_per_batch(student, device):
    """calls opt.step() and opt.zero_grad() exactly once per batch"""
    batches, model, _ = _epoch_case(device, n_batches=4, seed=1)
    opt = CountingOptim(model.parameters(), 0.5)
    call_student(student.train_epoch, model, batches, opt, ref.mnist_loss)
    steps, zeros = opt.calls.count("step"), opt.calls.count("zero_grad")
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
    spy, opt = LossSpy(), CountingOptim(model.parameters(), LOSS_FUNC_LR)
    _call_with_spy(student.train_epoch, model, batches, opt, spy, spy=spy, fix="pass it on to calc_grad(xb, yb, model, loss_func)")
    ref.train_epoch(twin, batches, ref.BasicOptim(twin.parameters(), LOSS_FUNC_LR), _mse_loss)
    _expect_same_training(
        model, twin, before, opt, spy, len(batches), what="after an epoch with another loss_func",
        fixes=("call opt.step() for each batch", "pass it on to calc_grad(xb, yb, model, loss_func)"),
    )



# ---- train_model --------------------------------------------------------------------------------------


@gate
@blank("train_model")
def test_train_model_visible_example(student, device):
    """on the toy problem (one batch, SGD at lr 1, binary cross-entropy), returns the list [1.0, 1.0, 1.0] of Python floats for 3 epochs"""
    x, y = visible_toy_data(device)
    model, _, _ = _toy_model(device)
    toy_dl = [(x, y)]
    history = call_student(student.train_model, model, toy_dl, toy_dl, torch.optim.SGD(model.parameters(), lr=1.0), 3, bce)
    assert isinstance(history, list) and len(history) == 3, (
        f"return a list with one accuracy per epoch, got {type(history).__name__}"
        + (f" of length {len(history)}" if isinstance(history, (list, tuple)) else "")
        + f" for 3 epochs {ON_THE_VISIBLE_EXAMPLE}"
    )
    assert all(isinstance(a, float) for a in history), "validate_epoch returns floats: keep them as they are"
    assert all(abs(a - 1.0) < 1e-6 for a in history), f"expected [1.0, 1.0, 1.0], got {history} {ON_THE_VISIBLE_EXAMPLE}"


@blank("train_model")
def test_train_model_returns_one_accuracy_per_epoch(student, device):
    """returns one validation accuracy per epoch, each between 0 and 1, with BasicOptim on 28 x 28 digits"""
    sample = synthetic_mnist(32, seed=4).to(device)
    dl, valid_dl = batches_for(sample, seed=0, batch_size=16)
    model = _linear_model(device, 3)
    history = call_student(student.train_model, model, list(dl), list(valid_dl), ref.BasicOptim(model.parameters(), 0.1), 3, ref.mnist_loss)
    assert isinstance(history, (list, tuple)), f"return the list of accuracies, not {type(history).__name__}"
    assert len(history) == 3, f"returned {len(history)} accuracies for 3 epochs: one per epoch"
    values = [float(a) for a in history]
    assert all(0.0 <= a <= 1.0 for a in values), f"accuracies must lie between 0 and 1, got {values}"


@blank("train_model")
def test_train_model_uses_the_batches_it_is_given(student, device):
    """trains on the dl and measures on the valid_dl it is given, not the notebook's: other batches give other results"""
    runs = []
    for seed in (7, 8):
        batches, valid = _synthetic_batches(device, seed)
        model = _linear_model(device, 4)
        history = call_student(student.train_model, model, batches, valid, ref.BasicOptim(model.parameters(), 0.1), 1, ref.mnist_loss)
        runs.append(([p.detach().clone() for p in model.parameters()], _floats(history)))
    (params_a, history_a), (params_b, history_b) = runs
    if all(torch.equal(a, b) for a, b in zip(params_a, params_b)):
        raise AssertionError(
            "ignored the dl it was given: two different training sets gave the same weights (did it use the "
            "notebook's own dl?); loop over the dl argument"
        )
    batches, valid = _synthetic_batches(device, 8)
    other_valid = _synthetic_batches(device, 9)[1]
    model = _linear_model(device, 4)
    history_c = _floats(call_student(student.train_model, model, batches, other_valid, ref.BasicOptim(model.parameters(), 0.1), 1, ref.mnist_loss))
    expected = (_accuracies_after_one_epoch(device, batches, valid), _accuracies_after_one_epoch(device, batches, other_valid))
    if history_b is not None and history_b == history_c and expected[0] != expected[1]:
        raise AssertionError(
            "ignored the valid_dl it was given: two different validation sets gave the same accuracies (did it use "
            "the notebook's own valid_dl?); call validate_epoch(model, valid_dl) with the argument"
        )


def _floats(history: Any) -> list[float] | None:
    try:
        return [float(a) for a in history]
    except (TypeError, ValueError, RuntimeError):
        return None


def _accuracies_after_one_epoch(device, batches, valid) -> list[float]:
    model = _linear_model(device, 4)
    return ref.train_model(model, batches, valid, ref.BasicOptim(model.parameters(), 0.1), 1)


@blank("train_model")
def test_train_model_matches_the_reference_training(student, device):
    """from the same start and batches, ends with the reference's parameters after 3 epochs"""
    batches, valid = _synthetic_batches(device, 5)
    model, twin = _linear_model(device, 4), _linear_model(device, 4)
    before = [p.detach().clone() for p in model.parameters()]
    opt = CountingOptim(model.parameters(), 0.1)
    history = call_student(student.train_model, model, batches, valid, opt, 3, ref.mnist_loss)
    expected = ref.train_model(twin, batches, valid, ref.BasicOptim(twin.parameters(), 0.1), 3)
    _expect_same_training(model, twin, before, opt, None, len(batches), what="after 3 epochs", mistakes={
        "trained only one epoch of 3: call train_epoch inside the loop over range(epochs)": _after_epochs(device, batches, valid, 1),
        "trained one epoch too few: loop over range(epochs)": _after_epochs(device, batches, valid, 2),
        "trained one epoch too many: loop over range(epochs)": _after_epochs(device, batches, valid, 4),
    })
    try:
        got = torch.tensor([float(a) for a in history], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"return a list of accuracies (numbers), one per epoch: {error}") from error
    expect_close(got, torch.tensor(expected, dtype=torch.float32), {
        "measured the accuracy on the training batches: call validate_epoch(model, valid_dl)":
            torch.tensor(_accuracies_on(device, batches, valid, 3, on_training=True), dtype=torch.float32),
    }, what="the returned accuracies (validate_epoch after each epoch)")


@blank("train_model")
def test_train_model_uses_the_given_loss_function(student, device):
    """trains with the loss_func it is given"""
    batches, valid = _synthetic_batches(device, 6)
    model, twin = _linear_model(device, 5), _linear_model(device, 5)
    before = [p.detach().clone() for p in model.parameters()]
    spy, opt = LossSpy(), CountingOptim(model.parameters(), LOSS_FUNC_LR)
    _call_with_spy(student.train_model, model, batches, valid, opt, 1, spy, spy=spy, fix="pass it on to train_epoch")
    ref.train_model(twin, batches, valid, ref.BasicOptim(twin.parameters(), LOSS_FUNC_LR), 1, _mse_loss)
    _expect_same_training(model, twin, before, opt, spy, len(batches), what="after 1 epoch with another loss_func")


def _synthetic_batches(device, seed: int) -> tuple[list, list]:
    """Training and validation batches of 16 from the small synthetic digits generated with ``seed``."""
    dl, valid_dl = batches_for(synthetic_mnist(32, seed=seed).to(device), seed=0, batch_size=16)
    return list(dl), list(valid_dl)


def _after_epochs(device, batches, valid, epochs):
    model = _linear_model(device, 4)
    ref.train_model(model, batches, valid, ref.BasicOptim(model.parameters(), 0.1), epochs)
    return model.weights.detach()


def _accuracies_on(device, batches, valid, epochs, on_training=False):
    """The reference's accuracies after each epoch, measured on the validation (or the training) batches."""
    model = _linear_model(device, 4)
    opt = ref.BasicOptim(model.parameters(), 0.1)
    history = []
    for _ in range(epochs):
        ref.train_epoch(model, batches, opt)
        history.append(ref.validate_epoch(model, batches if on_training else valid))
    return history


def _expect_same_training(model, twin, before, opt, spy, n_batches, what, mistakes=None,
                          fixes=("call train_epoch for each epoch", "pass it on to train_epoch")):
    """Assert ``model`` ends with ``twin``'s parameters; else raise the most specific confirmed cause.

    A cause is named only when observed: the parameters did not change at all, the loss_func ``spy``
    (None when the reference's loss was used) was never called, the optimizer ``opt`` (a ``CountingOptim``)
    was never stepped or never zeroed, or the weights equal a known wrong result in ``mistakes``. Otherwise
    the message says where the weights differ, with how often loss_func and opt.step() were called.
    """
    params, expected = [p.detach() for p in model.parameters()], [p.detach() for p in twin.parameters()]
    if all(close(p, e) for p, e in zip(params, expected)):
        return
    if all(torch.equal(old, p) for old, p in zip(before, params)):
        raise AssertionError(f"never trained: the parameters did not change ({fixes[0]})")
    if spy is not None:
        _expect_called(spy, fixes[1])
    if "step" not in opt.calls:
        raise AssertionError("never called step() on the opt it was given: train with that optimizer, not a new one")
    if "zero_grad" not in opt.calls:
        raise AssertionError("forgot opt.zero_grad(): gradients add up across batches")
    message = likely_mistake(params[0], mistakes or {})
    if message is None:
        name, got, want = next((n, p, e) for n, p, e in zip(("weights", "bias"), params, expected) if not close(p, e))
        message = difference_message(got, want, f"{name} {what}")
        counts = ([f"loss_func {spy.calls}"] if spy is not None else []) + [f"opt.step() {opt.calls.count('step')}"]
        message = f"{message}; it called {' and '.join(c + ' time(s)' for c in counts)}, for {n_batches} batches per epoch"
    raise AssertionError(message[:300])


@blank("train_model")
def test_train_model_reaches_the_calibrated_accuracy(student, device, artifacts):
    """trains linear1 on the MNIST sample to the accuracy the reference reliably reaches"""
    run = calibrated_run(real_sample(device), device, student.train_model)
    artifacts["curves"] = curves_of(run, getattr(student, "mnist_loss", None))
    accuracy = run.final_accuracy
    assert accuracy >= TRAIN_MODEL.threshold, (
        f"validation accuracy {accuracy:.4f} after {TRAIN_MODEL.epochs} epochs is below {TRAIN_MODEL.threshold:.4f}, "
        "which the reference always reaches: check the loop over epochs and batches"
    )
