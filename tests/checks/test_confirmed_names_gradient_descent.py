"""01_gradient_descent and 02_linear_regression name a mistake only when its known wrong answer alone matches.

Two mistakes can give the same number on some inputs (``(preds - acts).mean()`` and its absolute value agree
whenever the mean is positive); then the value cannot tell them apart, and the checks name neither.
"""

from __future__ import annotations

import torch

from autograder.checks import run_checks
from autograder.checks.confirmed import confirmed_mistake, expect_close_confirmed, used_globals_message


def test_a_value_that_two_mistakes_give_names_neither():
    mistakes = {"forgot .abs()": torch.tensor(1.0), "took the absolute value after averaging": torch.tensor(1.0),
                "forgot .mean()": torch.tensor(4.0)}
    assert confirmed_mistake(1.0, mistakes) == ""
    assert confirmed_mistake(4.0, mistakes) == ": forgot .mean()"
    assert confirmed_mistake(2.0, mistakes) == ""


def test_an_unconfirmed_mistake_is_described_by_its_values():
    mistakes = {"forgot .abs()": torch.tensor(1.0), "took the absolute value after averaging": torch.tensor(1.0)}
    try:
        expect_close_confirmed(torch.tensor(1.0), torch.tensor(2.0), mistakes)
    except AssertionError as error:
        assert str(error) == "the result differs from the reference: expected 2, got 1"
    else:
        raise AssertionError("a wrong value passed")


def test_the_absolute_value_of_the_mean_is_never_called_a_missing_abs():
    def mae_abs_of_the_mean(preds, acts):
        return (preds - acts).mean().abs()

    report = run_checks("mae", 1.0, {"mae": mae_abs_of_the_mean}, device="cpu")
    messages = [r.message for r in report.results if not r.passed]
    assert any("took the absolute value after averaging" in m for m in messages), messages
    assert not any("forgot to take absolute values" in m for m in messages), messages


def test_a_double_relu_that_returns_float32_keeps_every_point():
    """The lesson asks for the sum of two rectified lines and never promises to keep the input's dtype."""

    def double_relu_float(m1, b1, m2, b2, x):
        return (torch.clip(m1 * x + b1, 0.0) + torch.clip(m2 * x + b2, 0.0)).float()

    report = run_checks("double_relu", 1.0, {"double_relu": double_relu_float}, device="cpu")
    assert report.score == 1.0, [(r.name, r.message) for r in report.results if not r.passed]


def test_the_globals_message_names_each_global_read():
    assert used_globals_message(["speed"], "apply_step") == (
        "used the notebook's global `speed` instead of its argument: use the `speed` passed to apply_step")
    assert used_globals_message(["x", "y"], "update").startswith("used the notebook's globals `x` and `y` instead of its arguments")
