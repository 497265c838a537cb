"""The inputs the checks of 04_mnist_sgd build: batches of predictions and targets, small linear models and
batches of 28 x 28 images, and the visible tests' toy problem with its loss (``bce``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.checks.strategies import random_tensor
from autograder.reference import mnist_sgd as ref


def loss_inputs(n: int, seed: int, dtype: torch.dtype, device) -> tuple[Tensor, Tensor]:
    """Random (n, 1) predictions in [-4, 4] and (n, 1) targets of 0 and 1, in ``dtype``."""
    predictions = random_tensor((n, 1), seed, dtype, device, -4, 4)
    targets = (random_tensor((n, 1), seed + 1, torch.float64, device, 0, 1) > 0.5).to(dtype)
    return predictions, targets


def linear_model(device, seed=0, dtype=torch.float32):
    """A small ``Linear1``: weights ~ N(0, 0.01^2), so predictions start near 0 and a few steps change them."""
    gen = torch.Generator().manual_seed(seed)
    weights = (torch.randn(28 * 28, 1, generator=gen, dtype=dtype) * 0.01).to(device).requires_grad_()
    bias = torch.randn(1, generator=gen, dtype=dtype).to(device).requires_grad_()
    return ref.Linear1(weights, bias)


def image_batch(device, n=16, seed=0, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """``n`` random flattened 28 x 28 images in [0, 1] and their (n, 1) targets of 0 and 1."""
    xb = random_tensor((n, 28 * 28), seed, dtype, device, 0, 1)
    yb = (random_tensor((n, 1), seed + 1, torch.float64, device, 0, 1) > 0.5).to(dtype)
    return xb, yb


def bce(predictions: Tensor, targets: Tensor) -> Tensor:
    """The visible tests' loss_func: PyTorch's binary cross-entropy on raw predictions (``bce`` in the notebook)."""
    return F.binary_cross_entropy_with_logits(predictions, targets.float())


def visible_toy_data(device) -> tuple[Tensor, Tensor]:
    """The visible tests' toy "images" with 2 pixels: a 3 ([2, 0], target 1) and a 7 ([0, 2], target 0)."""
    return torch.tensor([[2.0, 0.0], [0.0, 2.0]], device=device), torch.tensor([[1], [0]], device=device)


def toy_model(device) -> tuple[Any, Tensor, Tensor]:
    """The visible tests' ``Linear1`` for the toy data, from zero weights (2, 1) and bias (1,): (model, w, b)."""
    w, b = torch.zeros(2, 1, device=device).requires_grad_(), torch.zeros(1, device=device).requires_grad_()
    return ref.Linear1(w, b), w, b
