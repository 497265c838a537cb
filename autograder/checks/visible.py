"""What the gates share: a blank's visible test, evaluated by the checker as the notebook evaluates it.

A gate (``@gate``) repeats the visible test's assertions on the same inputs with the same tolerances, on the
CPU as the notebook does, and on failure names the known mistake the wrong answer matches, as the visible
test's hint does.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from autograder.checks.compare import likely_mistake

VISIBLE_DEVICE = torch.device("cpu")
"""Where the gates build their tensors: the notebook's visible tests build theirs on the CPU."""

ON_THE_VISIBLE_EXAMPLE = "(on the visible test's example)"


def visible_allclose(actual: Any, expected: Tensor, **tolerances: float) -> bool:
    """``torch.allclose(actual, expected, **tolerances)`` as a visible test evaluates it; False where it would raise."""
    try:
        return bool(torch.allclose(actual, expected, **tolerances))
    except (TypeError, RuntimeError):
        return False


def as_number(value: Any, what: str) -> float:
    """``value`` (a number or a one-element tensor) as a float; an AssertionError naming its type otherwise."""
    try:
        return float(value.item() if isinstance(value, Tensor) else value)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        raise AssertionError(f"{what} should be a number, got {type(value).__name__}") from None


def shape_or_type(value: Any) -> str:
    """How a value that should be a tensor is described in a message: its shape, or its type when it is none."""
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def shape_or_type_name(value: Any) -> str:
    """``shape (n, m)`` for a tensor, else the name of its type (e.g. ``float``)."""
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def expect_as_visible(got: Any, expected: Tensor, mistakes: Mapping[str, Tensor], what: str,
                      rtol: float = 1e-5, atol: float = 1e-8, dtype: torch.dtype | None = None,
                      example: str = ON_THE_VISIBLE_EXAMPLE) -> None:
    """The visible test's ``torch.allclose(got, expected, rtol, atol)`` (its defaults unless given), on the CPU.

    Both sides are compared in ``dtype`` (``expected``'s own unless given). On failure, names the first known
    mistake ``got`` matches, else shows the expected and the actual values, followed by ``example``.
    """
    if isinstance(got, Tensor) and got.shape == expected.shape:
        like = dtype or expected.dtype
        if bool(torch.allclose(got.detach().cpu().to(like), expected.to(like), rtol=rtol, atol=atol)):
            return
    named = likely_mistake(got, mistakes)
    if named is not None:
        raise AssertionError(f"{named} {ON_THE_VISIBLE_EXAMPLE}")
    shown = got.detach().cpu().tolist() if isinstance(got, Tensor) else got
    raise AssertionError(f"{what}: expected {expected.tolist()}, got {shown} {example}"[:300])


def expect_number_as_visible(got: Any, expected: float, tolerance: float, mistakes: Mapping[str, Tensor], what: str) -> None:
    """The visible test's ``abs(got - expected) < tolerance`` for a Python number ``got`` (e.g. ``loss.item()``)."""
    if isinstance(got, (int, float)) and abs(got - expected) < tolerance:
        return
    named = likely_mistake(got, mistakes)
    if named is not None:
        raise AssertionError(f"{named} {ON_THE_VISIBLE_EXAMPLE}")
    raise AssertionError(f"{what}: expected {expected:.6f}, got {got} {ON_THE_VISIBLE_EXAMPLE}"[:300])
