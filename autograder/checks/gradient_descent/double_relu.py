"""Hidden checks of double_relu (01_gradient_descent): the sum of two rectified lines."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from hypothesis import given
from torch import Tensor

from autograder.checks.compare import call_student, device_for, expect_same_gradients
from autograder.checks.confirmed import call_watching_inputs, confirmed_mistake, expect_close_confirmed, used_globals_message
from autograder.checks.runner import blank, gate
from autograder.checks.strategies import CHECK_SETTINGS, dtypes, random_tensor, seeds, small_floats
from autograder.checks.visible import shape_or_type, visible_allclose
from autograder.reference import gradient_descent as ref

BLANKS = ("double_relu",)


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
