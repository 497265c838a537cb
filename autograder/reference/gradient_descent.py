"""Reference for assignment 01_gradient_descent: fit a quadratic by gradient descent.

Every function takes its inputs explicitly (no notebook globals), so checks can call it on any data.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor

LESSON_ABC = (3.0, 2.0, 1.0)
"""The true coefficients of the lesson's quadratic, 3x^2 + 2x + 1."""

LESSON_START = (1.1, 1.1, 1.1)
"""The lesson's starting guess for a, b and c."""

ROLLER_COASTER_LR = 1e-5
"""The lesson's learning rate for the roller-coaster example."""


def quad(a: float, b: float, c: float, x: Tensor) -> Tensor:
    """Return ``a*x**2 + b*x + c`` elementwise."""
    return a * x**2 + b * x + c


def mk_quad(a: float, b: float, c: float) -> Callable[[Tensor], Tensor]:
    """Return the one-argument quadratic ``x -> a*x**2 + b*x + c`` (a ``functools.partial`` of ``quad``)."""
    return partial(quad, a, b, c)


def add_noise(x: Tensor, mult: float, add: float, seed: int = 42) -> Tensor:
    """Return ``x * (1 + N(0, mult)) + N(0, add)``, with normal noise drawn from a generator seeded by ``seed``.

    The same ``seed`` always gives the same noise, whatever the global random state.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    mult_noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * mult
    add_noise_ = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * add
    return x * (1 + mult_noise) + add_noise_


def lesson_data(n: int = 20, seed: int = 42, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Return the lesson's noisy samples of 3x^2 + 2x + 1: ``x`` (n, 1) on [-2, 2] and ``y`` (n, 1)."""
    x = torch.linspace(-2, 2, steps=n, device=device)[:, None]
    y = add_noise(mk_quad(*LESSON_ABC)(x), 0.15, 1.5, seed=seed)
    return x, y


def mse(preds: Tensor, acts: Tensor) -> Tensor:
    """Mean squared error: ``mean((preds - acts)**2)`` over every element, as a 0-d tensor."""
    return ((preds - acts) ** 2).mean()


def mae(preds: Tensor, acts: Tensor) -> Tensor:
    """Mean absolute error: ``mean(|preds - acts|)`` over every element, as a 0-d tensor."""
    return (preds - acts).abs().mean()


def quad_mse(params: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Return the mean squared error of the quadratic with coefficients ``params = (a, b, c)`` on ``(x, y)``."""
    f = mk_quad(*params)
    return mse(f(x), y)


def gd_step(params: Tensor, lr: float) -> None:
    """One gradient-descent step: ``params -= lr * params.grad`` in place, without autograd, then clear the grad.

    Requires ``params.grad`` to hold the gradient of the loss. Afterwards ``params`` is the same tensor
    object, still requires grad, and ``params.grad`` is zero (or None) so the next backward starts afresh.
    """
    with torch.no_grad():
        params -= lr * params.grad
    params.grad.zero_()


def fit_quadratic(params: Tensor, x: Tensor, y: Tensor, lr: float = 0.01, steps: int = 10) -> list[float]:
    """Gradient descent on ``quad_mse``: ``steps`` times compute the loss, backpropagate, and ``gd_step``.

    Returns:
        The loss before each step, as Python floats (``len == steps``). ``params`` is updated in place.
    """
    losses = []
    for _ in range(steps):
        loss = quad_mse(params, x, y)
        loss.backward()
        gd_step(params, lr)
        losses.append(loss.item())
    return losses


def rectified_linear(m: float, b: float, x: Tensor) -> Tensor:
    """A line clipped at zero: ``max(m*x + b, 0)``."""
    y = m * x + b
    return torch.clip(y, 0.0)


def double_relu(m1: float, b1: float, m2: float, b2: float, x: Tensor) -> Tensor:
    """The sum of two rectified lines: ``rectified_linear(m1, b1, x) + rectified_linear(m2, b2, x)``."""
    return rectified_linear(m1, b1, x) + rectified_linear(m2, b2, x)


def roller_coaster_data(device: str | torch.device = "cpu", seed: int = 42) -> tuple[Tensor, Tensor]:
    """Return the lesson's roller coaster: ``time`` 0..19 and a noisy quadratic ``speed`` (both shape (20,))."""
    time = torch.arange(0, 20, device=device).float()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    speed = torch.randn(20, generator=gen).to(device) * 3 + 0.75 * (time - 9.5) ** 2 + 1
    return time, speed


def f(t: Tensor, params: Tensor) -> Tensor:
    """The roller coaster's model: ``a*t**2 + b*t + c`` with ``params = (a, b, c)``."""
    a, b, c = params
    return a * (t**2) + (b * t) + c


def apply_step(params: Tensor, time: Tensor, speed: Tensor, lr: float = ROLLER_COASTER_LR) -> Tensor:
    """One step of the roller-coaster fit: predict, ``mse`` against ``speed``, backward, step, clear the grad.

    ``params`` is updated in place by ``-lr * grad`` and its ``grad`` is set to None afterwards.

    Returns:
        The predictions made before the step.
    """
    preds = f(time, params)
    loss = mse(preds, speed)
    loss.backward()
    params.data -= lr * params.grad.data
    params.grad = None
    return preds
