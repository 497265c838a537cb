"""Hidden checks for 01_gradient_descent: mse, mae, gd_step, fit_quadratic, double_relu, apply_step.

One module per blank (``losses`` holds the two losses, mse and mae). Each blank has one gate,
``test_<blank>_passes_the_visible_test`` (the loss blanks share ``test_loss_on_lesson_example``): it runs
exactly the inputs, assertions and tolerances of the blank's visible test in the notebook, on the CPU as the
notebook does. Every other check gives partial credit: random inputs, float64, gradients, other data than the
notebook's globals, inputs left unchanged.
"""

from __future__ import annotations

from autograder.checks.confirmed import (
    call_watching_inputs,
    confirmed_mistake,
    copies,
    expect_close_confirmed,
    expect_inputs_left_alone,
    lesson_global_variants,
    used_globals_message,
)
from autograder.checks.gradient_descent.apply_step import (
    OTHER_COASTER_LR,
    OTHER_COASTER_START,
    VISIBLE_PARAMS_AFTER,
    VISIBLE_START,
    other_coaster_data,
    returned_mistakes,
    step_gradient,
)
from autograder.checks.gradient_descent.double_relu import VISIBLE_RELU_EXAMPLES, relu_mistakes
from autograder.checks.gradient_descent.fit_quadratic import (
    OTHER_START,
    VISIBLE_LOSSES,
    accumulating_losses,
    losses_mistakes,
    other_quadratic_data,
    reference_fit,
)
from autograder.checks.gradient_descent.gd_step import step_mistakes
from autograder.checks.gradient_descent.losses import LOSSES, VISIBLE_LOSS_EXAMPLES, loss_mistakes
from autograder.checks.visible import VISIBLE_DEVICE, as_number, shape_or_type, visible_allclose

BLANKS = ("mse", "mae", "gd_step", "fit_quadratic", "double_relu", "apply_step")
UPDATES_PARAMETERS: tuple[str, ...] = ("gd_step", "fit_quadratic", "apply_step")
"""Blanks that update parameters in place: an in-place error there means a step outside ``torch.no_grad()``."""
NEEDS_MNIST_SAMPLE = False
"""False: no check uses the real MNIST sample (see `declared.assignment_needs_sample`)."""

__all__ = [
    "BLANKS", "LOSSES", "NEEDS_MNIST_SAMPLE", "OTHER_COASTER_LR", "OTHER_COASTER_START", "OTHER_START", "UPDATES_PARAMETERS",
    "VISIBLE_DEVICE", "VISIBLE_LOSSES", "VISIBLE_LOSS_EXAMPLES", "VISIBLE_PARAMS_AFTER", "VISIBLE_RELU_EXAMPLES",
    "VISIBLE_START", "accumulating_losses", "as_number", "call_watching_inputs", "confirmed_mistake", "copies",
    "expect_close_confirmed", "expect_inputs_left_alone", "lesson_global_variants", "loss_mistakes", "losses_mistakes",
    "other_coaster_data", "other_quadratic_data", "reference_fit", "relu_mistakes", "returned_mistakes", "shape_or_type",
    "step_gradient", "step_mistakes", "used_globals_message", "visible_allclose",
]
