"""Hidden checks for 01_gradient_descent: mse, mae, gd_step, fit_quadratic, double_relu, apply_step.

Each blank has one gate, ``test_<blank>_passes_the_visible_test`` (the loss blanks share
``test_loss_on_lesson_example``): it runs exactly the inputs, assertions and tolerances of the blank's visible test
in the notebook, on the CPU as the notebook does. Every other check gives partial credit: random inputs,
float64, gradients, other data than the notebook's globals, inputs left unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from autograder.checks.compare import (
    call_student,
    close,
    device_for,
    difference_message,
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
UPDATES_PARAMETERS: tuple[str, ...] = ("gd_step", "fit_quadratic", "apply_step")
"""Blanks that update parameters in place: an in-place error there means a step outside ``torch.no_grad()``."""
NEEDS_MNIST_SAMPLE = False
"""False: no check uses the real MNIST sample (see `runner.assignment_needs_sample`)."""

VISIBLE_DEVICE = torch.device("cpu")
"""Where the gates build their tensors: the notebook's visible tests build theirs on the CPU."""


# ==== shared helpers ================================================================================

def confirmed_mistake(actual: Any, mistakes: Mapping[str, Any]) -> str:
    """``": <message>"`` of the one known mistake whose result ``actual`` matches, or "".

    A mistake is named only when exactly one known wrong answer matches: when two mistakes give the same
    value on these inputs, the value cannot tell them apart and neither is named.
    """
    matching = {message for message, wrong in mistakes.items() if close(actual, torch.as_tensor(wrong))}
    return f": {matching.pop()}" if len(matching) == 1 else ""


def expect_close_confirmed(actual: Any, expected: Tensor, mistakes: Mapping[str, Any] = {}, what: str = "the result") -> None:
    """Assert ``actual`` matches ``expected``; on failure name the one known mistake it matches, else show the values.

    Like ``compare.expect_close``, except that a mistake is named only when no other known mistake gives the
    same result on these inputs (``confirmed_mistake``).
    """
    if close(actual, expected):
        return
    named = confirmed_mistake(actual, mistakes)
    raise AssertionError(named[2:] if named else difference_message(actual, expected, what))


def as_number(value: Any, what: str) -> float:
    """``value`` (a number or a one-element tensor) as a float; an AssertionError naming its type otherwise."""
    try:
        return float(value.item() if isinstance(value, Tensor) else value)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        raise AssertionError(f"{what} should be a number, got {type(value).__name__}") from None


def visible_allclose(actual: Any, expected: Tensor, **tolerances: float) -> bool:
    """``torch.allclose(actual, expected, **tolerances)`` as a visible test evaluates it; False where it would raise."""
    try:
        return bool(torch.allclose(actual, expected, **tolerances))
    except (TypeError, RuntimeError):
        return False


def shape_or_type(value: Any) -> str:
    """How a value that should be a tensor is described in a message: its shape, or its type when it is none."""
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def used_globals_message(names: Sequence[str], blank_name: str) -> str:
    """The message for a function that read the notebook's globals ``names`` instead of its own arguments."""
    if len(names) == 1:
        return (f"used the notebook's global `{names[0]}` instead of its argument: use the `{names[0]}` "
                f"passed to {blank_name}")
    quoted = " and ".join(f"`{name}`" for name in names)
    return f"used the notebook's globals {quoted} instead of its arguments: use the ones passed to {blank_name}"


def lesson_global_variants(given: Mapping[str, Any], lesson: Mapping[str, Any]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Each way a function could read the notebook's globals instead of its arguments.

    Returns, for every non-empty subset of ``lesson``'s names, the subset and ``given`` with those arguments
    replaced by the lesson's values (what a function reading those globals computes with).
    """
    names = list(lesson)
    return [
        (subset, {**given, **{name: lesson[name] for name in subset}})
        for size in range(1, len(names) + 1)
        for subset in itertools.combinations(names, size)
    ]


def copies(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Private copies of ``tensors``, made before a student's function runs (it may change its inputs)."""
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}


def call_watching_inputs(fn: Any, *args: Any, watch: Mapping[str, Tensor], **kwargs: Any) -> Any:
    """``call_student(fn, *args, **kwargs)``, failing with "changed its input <name> in place" when ``fn`` modified
    one of the ``watch``ed inputs, whether it then returned or raised (the in-place change is the cause to report).
    """
    before = copies(watch)
    try:
        result = call_student(fn, *args, **kwargs)
    except AssertionError:
        expect_unchanged(list(before.values()), list(watch.values()), list(watch))
        raise
    expect_unchanged(list(before.values()), list(watch.values()), list(watch))
    return result


def expect_inputs_left_alone(fn: Any, inputs: Sequence[Tensor], names: Sequence[str]) -> None:
    """Call ``fn`` on copies of ``inputs`` and assert it leaves them unchanged.

    Run before a gradient check: there the inputs require grad, and an in-place change of one makes torch
    raise an error about in-place operations on leaves, which would hide the real cause.
    """
    own = [tensor.detach().clone() for tensor in inputs]
    call_watching_inputs(fn, *own, watch=dict(zip(names, own)))


# ==== mse, mae ======================================================================================

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


VISIBLE_LOSS_EXAMPLES = {
    "mse": [
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 5.0]), 5 / 3, 1e-5, "expected 5/3 = 1.6667", "on the lesson's example"),
        (torch.zeros(4, 1), torch.ones(4, 1), 1.0, 1e-6, "expected 1.0", "on columns of shape (4, 1)"),
    ],
    "mae": [
        (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 5.0]), 1.0, 1e-6, "expected 1.0", "on the lesson's example"),
        (torch.tensor([2.0, 0.0]), torch.tensor([1.0, 3.0]), 2.0, 1e-6, "expected 2.0", "on errors of both signs"),
    ],
}
"""The visible test of each loss: (preds, acts, expected, tolerance, message start, example), in the notebook's order."""


@gate
@pytest.mark.parametrize("name", LOSSES)
def test_loss_on_lesson_example(student, name):
    """gives the right number on the lesson's small example"""
    fn = getattr(student, name)
    for index, (preds, acts, expected, tolerance, wanted, example) in enumerate(VISIBLE_LOSS_EXAMPLES[name]):
        result = call_student(fn, preds.clone(), acts.clone())
        if index == 0:
            assert isinstance(result, Tensor), (
                f"{name} should return a tensor, not a Python number: it returned {type(result).__name__}"
            )
            assert result.shape == (), f"{name} should return a 0-d tensor, got shape {tuple(result.shape)}"
        got = as_number(result, f"what {name} returned")
        assert abs(got - expected) < tolerance, (
            f"{wanted}, got {got:.4f} {example}" + confirmed_mistake(got, loss_mistakes(name, preds, acts))
        )


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, dtype=dtypes, seed=seeds)
def test_loss_matches_reference_on_random_inputs(student, device, name, shape, dtype, seed):
    """matches the reference on random (n,) and (n, 1) inputs in float32 and float64, keeping dtype and device"""
    on = device_for(dtype, device)
    preds, acts = random_tensor(shape, seed, dtype, on), random_tensor(shape, seed + 1, dtype, on)
    expected, mistakes = getattr(ref, name)(preds, acts), loss_mistakes(name, preds, acts)
    result = call_watching_inputs(getattr(student, name), preds, acts, watch={"preds": preds, "acts": acts})
    expect_close_confirmed(result, expected, mistakes)
    expect_dtype_and_device(result, preds)


@pytest.mark.parametrize("name", LOSSES)
@CHECK_SETTINGS
@given(shape=vector_shapes, seed=seeds)
def test_loss_gradients_match_reference(student, device, name, shape, seed):
    """has the reference's gradients with respect to preds and acts"""
    on = device_for(torch.float64, device)
    inputs = [random_tensor(shape, seed, torch.float64, on), random_tensor(shape, seed + 1, torch.float64, on)]
    expect_inputs_left_alone(getattr(student, name), inputs, ["preds", "acts"])
    expect_same_gradients(getattr(student, name), getattr(ref, name), inputs, ["preds", "acts"])


@pytest.mark.parametrize("name", LOSSES)
def test_loss_passes_gradcheck(student, device, name):
    """passes torch.autograd.gradcheck in float64"""
    on = device_for(torch.float64, device)
    inputs = [random_tensor((5, 1), 3, torch.float64, on), random_tensor((5, 1), 4, torch.float64, on)]
    expect_inputs_left_alone(getattr(student, name), inputs, ["preds", "acts"])
    expect_gradcheck(getattr(student, name), inputs)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_does_not_modify_its_inputs(student, device, name):
    """leaves its inputs unchanged"""
    preds, acts = random_tensor((6,), 5, torch.float32, device), random_tensor((6,), 6, torch.float32, device)
    call_watching_inputs(getattr(student, name), preds, acts, watch={"preds": preds, "acts": acts})



# ==== gd_step =======================================================================================

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


# ==== fit_quadratic =================================================================================

def accumulating_losses(x, y, lr, steps, device, start=ref.LESSON_START) -> list[float]:
    """What ``fit_quadratic`` returns when the gradient is never reset (it accumulates)."""
    params = torch.tensor(start, device=device).requires_grad_()
    losses = []
    for _ in range(steps):
        loss = ref.quad_mse(params, x, y)
        loss.backward()
        with torch.no_grad():
            params -= lr * params.grad
        losses.append(loss.item())
    return losses


def reference_fit(x, y, lr, steps, device, start=ref.LESSON_START) -> tuple[Tensor, Tensor]:
    """The reference's losses (float64) and final parameters after ``steps`` steps from ``start``."""
    params = torch.tensor(start, device=device).requires_grad_()
    losses = ref.fit_quadratic(params, x, y, lr, steps)
    return torch.tensor(losses, dtype=torch.float64), params.detach()


def losses_mistakes(x, y, lr, steps, device, start=ref.LESSON_START) -> dict[str, Tensor]:
    """The lists of losses the usual wrong loops return, with their messages."""
    return {
        "gradients accumulate across steps: reset params.grad (zero_()) after every step":
            torch.tensor(accumulating_losses(x, y, lr, steps, device, start)),
        "recorded the loss after the step: append the loss computed before stepping":
            torch.tensor(ref.fit_quadratic(torch.tensor(start, device=device).requires_grad_(), x, y, lr, steps + 1)[1:]),
    }


VISIBLE_LOSSES = (18.35, 15.74, 13.58)
"""The losses the visible test expects from the lesson's start for 3 steps at lr 0.01 (within 0.01)."""


def _losses_as_tensor(losses: Any) -> Tensor:
    try:
        return torch.tensor([float(loss) for loss in losses], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"each loss must be a number or a 0-d tensor: {error}") from error


@gate
@blank("fit_quadratic")
def test_fit_quadratic_passes_the_visible_test(student):
    """passes the visible test: 3 steps at lr 0.01 from (1.1, 1.1, 1.1) on the lesson's data"""
    x, y = ref.lesson_data(device=VISIBLE_DEVICE)
    p = torch.tensor([1.1, 1.1, 1.1]).requires_grad_()
    losses = call_student(student.fit_quadratic, p, x.clone(), y.clone(), lr=0.01, steps=3)
    assert isinstance(losses, list) and len(losses) == 3, (
        f"return a list with one loss per step: got {type(losses).__name__}"
        + (f" of length {len(losses)}" if isinstance(losses, (list, tuple)) else "")
    )
    assert all(isinstance(loss, float) for loss in losses), (
        f"the losses should be Python floats: use loss.item() (got {type(losses[0]).__name__})"
    )
    wrong = losses_mistakes(x, y, 0.01, 3, VISIBLE_DEVICE)
    for index, (got, expected, which) in enumerate(zip(losses, VISIBLE_LOSSES, ("first loss (before any step)", "second loss", "third loss"))):
        assert abs(got - expected) < 0.01, (
            f"the {which} should be about {expected}, got {got:.3f}"
            + confirmed_mistake(got, {message: values[index] for message, values in wrong.items()})
        )


@blank("fit_quadratic")
def test_fit_quadratic_returns_the_reference_losses(student, device):
    """returns the loss before each step, as the reference does, for 10 steps from the lesson's start"""
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    losses = call_watching_inputs(student.fit_quadratic, params, x, y, 0.01, 10, watch={"x": x, "y": y})
    assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
    assert len(losses) == 10, f"returned {len(losses)} losses for 10 steps: record one loss per step"
    expected, _ = reference_fit(x, y, 0.01, 10, device)
    wrong = losses_mistakes(x, y, 0.01, 10, device)
    expect_close_confirmed(_losses_as_tensor(losses), expected.float(), wrong, what="the list of losses")


@blank("fit_quadratic")
def test_fit_quadratic_updates_params_like_the_reference(student, device):
    """leaves params where the reference's 10 steps leave them"""
    x, y = ref.lesson_data(device=device)
    params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
    call_watching_inputs(student.fit_quadratic, params, x, y, 0.01, 10, watch={"x": x, "y": y})
    _, expected = reference_fit(x, y, 0.01, 10, device)
    expect_close_confirmed(params.detach(), expected, what="params after fitting")


@blank("fit_quadratic")
def test_fit_quadratic_takes_the_requested_number_of_steps(student, device):
    """takes exactly `steps` steps (checked with 1 and 3) with the given lr"""
    x, y = ref.lesson_data(device=device)
    for steps, lr in ((1, 0.05), (3, 0.001)):
        params = torch.tensor(ref.LESSON_START, device=device).requires_grad_()
        losses = call_watching_inputs(student.fit_quadratic, params, x, y, lr, steps, watch={"x": x, "y": y})
        assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
        assert len(losses) == steps, f"returned {len(losses)} losses for steps={steps}"
        _, expected = reference_fit(x, y, lr, steps, device)
        expect_close_confirmed(params.detach(), expected, what=f"params after {steps} steps at lr={lr}")


def other_quadratic_data(device: torch.device) -> tuple[Tensor, Tensor]:
    """Data other than the lesson's, of the same shape (20, 1): noisy samples of 2x^2 - x + 0.5 on [-1, 3]."""
    x = torch.linspace(-1, 3, steps=20, device=device)[:, None]
    return x, ref.add_noise(ref.quad(2.0, -1.0, 0.5, x), 0.1, 1.0, seed=7)


OTHER_START = (0.5, -0.3, 2.0)
"""Starting parameters other than the lesson's (1.1, 1.1, 1.1)."""


@blank("fit_quadratic")
def test_fit_quadratic_uses_its_arguments(student, device):
    """uses the params, x and y it is given and leaves x and y unchanged (checked with data other than the lesson's)"""
    given = dict(zip(("x", "y"), other_quadratic_data(device)))
    lesson = dict(zip(("x", "y"), ref.lesson_data(device=device)))
    expected_losses, expected_params = reference_fit(given["x"], given["y"], 0.02, 4, device, OTHER_START)
    wrong_losses, wrong_params = {}, {}
    for names, data in lesson_global_variants(given, lesson):
        message = used_globals_message(names, "fit_quadratic")
        wrong_losses[message], wrong_params[message] = reference_fit(data["x"], data["y"], 0.02, 4, device, OTHER_START)
    params = torch.tensor(OTHER_START, device=device).requires_grad_()
    losses = call_watching_inputs(student.fit_quadratic, params, given["x"], given["y"], 0.02, 4, watch=given)
    assert isinstance(losses, (list, tuple)), f"return a list of losses, one per step, not {type(losses).__name__}"
    expect_close_confirmed(params.detach(), expected_params, wrong_params, what="params after 4 steps on other data")
    expect_close_confirmed(_losses_as_tensor(losses), expected_losses.float(), wrong_losses, what="the losses on other data")


# ==== double_relu ===================================================================================

def relu_mistakes(m1, b1, m2, b2, x):
    """The results of the usual wrong versions of ``double_relu``, with their messages."""
    line1, line2 = m1 * x + b1, m2 * x + b2
    return {
        "forgot to clip at zero: each line must go through torch.clip(..., 0.0) (rectified_linear)": line1 + line2,
        "clipped the sum of the two lines: clip each line at zero first (rectified_linear), then add them":
            torch.clip(line1 + line2, 0.0),
        "multiplied the two rectified lines: double_relu adds them": ref.rectified_linear(m1, b1, x) * ref.rectified_linear(m2, b2, x),
        "took the larger of the two lines: double_relu adds them": torch.maximum(ref.rectified_linear(m1, b1, x), ref.rectified_linear(m2, b2, x)),
        "used the same line twice: the second ReLU uses m2 and b2": 2 * ref.rectified_linear(m1, b1, x),
    }


VISIBLE_RELU_EXAMPLES = (
    ((1.0, -1.0, 2.0, 1.0), (-1.0, 0.0, 2.0), (0.0, 1.0, 6.0)),
    ((1.0, 0.0, -1.0, 0.0), (-2.0, 0.0, 3.0), (2.0, 0.0, 3.0)),
)
"""The visible test's examples: (m1, b1, m2, b2), x and the expected result, in the notebook's order."""


@gate
@blank("double_relu")
def test_double_relu_passes_the_visible_test(student):
    """passes the visible test: two lines with their bends at x = 1 and x = -0.5, then |x| as two ReLUs"""
    for index, (coefficients, x, expected) in enumerate(VISIBLE_RELU_EXAMPLES):
        x, expected = torch.tensor(x), torch.tensor(expected)
        out = call_student(student.double_relu, *coefficients, x.clone())
        if index == 0:
            global_x = {used_globals_message(("x",), "double_relu"): ref.double_relu(*coefficients, ref.lesson_data()[0])}
            assert isinstance(out, Tensor) and out.shape == (3,), (
                f"double_relu should return one value per element of x, shape (3,), got {shape_or_type(out)}"
                + confirmed_mistake(out, global_x)
            )
        assert visible_allclose(out, expected), (
            f"expected {expected.tolist()}, got {out.tolist() if isinstance(out, Tensor) else out!r}"
            + confirmed_mistake(out, relu_mistakes(*coefficients, x))
        )


def _close_in_its_own_precision(result: Any, expected: Tensor, mistakes: Mapping[str, Tensor], what: str = "the result") -> None:
    """``expect_close``, at the tolerances of the result's dtype when it is a float32 tensor.

    The lesson asks for a sum of two rectified lines and never promises to keep the input's dtype, so a result
    cast to float32 (``.float()``) is compared at float32's tolerances.
    """
    if isinstance(result, Tensor) and result.dtype == torch.float32:
        expected = expected.float()
    expect_close_confirmed(result, expected, mistakes, what=what)


@blank("double_relu")
@CHECK_SETTINGS
@given(m1=small_floats, b1=small_floats, m2=small_floats, b2=small_floats, dtype=dtypes, seed=seeds)
def test_double_relu_matches_reference(student, device, m1, b1, m2, b2, dtype, seed):
    """adds two rectified lines, for random slopes and intercepts, in float32 and float64"""
    x = random_tensor((9,), seed, dtype, device_for(dtype, device))
    expected, mistakes = ref.double_relu(m1, b1, m2, b2, x), relu_mistakes(m1, b1, m2, b2, x)
    result = call_watching_inputs(student.double_relu, m1, b1, m2, b2, x, watch={"x": x})
    _close_in_its_own_precision(result, expected, mistakes)


@blank("double_relu")
def test_double_relu_uses_its_argument_x(student, device):
    """uses the x it is given (checked with x other than the notebook's global x)"""
    x = torch.linspace(-3, 3, 7, device=device)
    lesson_x, _ = ref.lesson_data(device=device)
    coefficients = (1.5, -0.5, -2.0, 1.0)
    expected = ref.double_relu(*coefficients, x)
    result = call_watching_inputs(student.double_relu, *coefficients, x, watch={"x": x})
    _close_in_its_own_precision(result, expected, {
        used_globals_message(("x",), "double_relu"): ref.double_relu(*coefficients, lesson_x),
        **relu_mistakes(*coefficients, x),
    })


@blank("double_relu")
def test_double_relu_gradient_with_respect_to_x(student, device):
    """has the reference's gradient with respect to x"""
    x = random_tensor((11,), 7, torch.float64, device_for(torch.float64, device))
    expect_same_gradients(lambda t: student.double_relu(1.5, -0.5, -2.0, 1.0, t),
                          lambda t: ref.double_relu(1.5, -0.5, -2.0, 1.0, t), [x], ["x"])


# ==== apply_step ====================================================================================

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
