"""Reference for assignment 02_linear_regression: fit ``y = x@a`` by gradient descent."""

from __future__ import annotations

import torch
from torch import Tensor

from autograder.reference.gradient_descent import mse

LESSON_TRUE_A = (3.0, 2.0)
"""The slope and intercept that generate the lesson's data."""

LESSON_START_A = (-1.0, 1.0)
"""The lesson's starting guess for the slope and intercept."""

LESSON_LR = 0.1
LESSON_STEPS = 100


def lesson_data(n: int = 100, seed: int = 42, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Return the lesson's data: ``x`` (n, 2) whose first column is uniform on [-1, 1] and second is ones,
    and ``y = x@(3, 2) + U(0, 1)`` of shape (n,). The second column of ones turns the intercept into a weight.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.ones(n, 2)
    x[:, 0] = torch.rand(n, generator=gen) * 2 - 1
    y = x @ torch.tensor(LESSON_TRUE_A) + torch.rand(n, generator=gen)
    return x.to(device), y.to(device)


def start_params(device: str | torch.device = "cpu") -> Tensor:
    """Return a fresh leaf tensor ``(-1., 1.)`` that requires grad, the lesson's starting point."""
    return torch.tensor(LESSON_START_A, device=device).requires_grad_()


def update(a: Tensor, x: Tensor, y: Tensor, lr: float) -> Tensor:
    """One gradient-descent step for ``y_hat = x@a``.

    Predict, take ``mse(y_hat, y)``, backpropagate, then without autograd ``a.sub_(lr * a.grad)`` and
    ``a.grad.zero_()``.

    Returns:
        The loss before the step (a 0-d tensor).
    """
    y_hat = x @ a
    loss = mse(y_hat, y)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
    return loss


def fit(a: Tensor, x: Tensor, y: Tensor, lr: float = LESSON_LR, steps: int = LESSON_STEPS) -> list[float]:
    """Call ``update`` ``steps`` times and return the loss before each step as floats."""
    return [update(a, x, y, lr).item() for _ in range(steps)]
