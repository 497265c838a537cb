"""Reference for assignment 04_mnist_sgd: a linear model and a small net trained by hand-written SGD.

The model ``Linear1`` and the minibatches ``TensorBatches`` are defined with the sandbox's channel
(``peer_values.py``), which sends them to a student's kernel by value; neither is an answer to a blank.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from autograder.grading.sandbox.peer_values import BATCH_SIZE, Linear1, TensorBatches, linear1

__all__ = ["BATCH_SIZE", "BasicOptim", "Linear1", "TensorBatches", "batch_accuracy", "calc_grad", "init_params", "linear1",
           "mnist_loss", "params_of", "sigmoid", "simple_net", "train_epoch", "train_model", "validate_epoch"]

Model = Callable[[Tensor], Tensor]
LossFunc = Callable[[Tensor, Tensor], Tensor]
Batches = Iterable[tuple[Tensor, Tensor]]

def sigmoid(x: Tensor) -> Tensor:
    """The logistic function ``1 / (1 + exp(-x))``, squashing any number into (0, 1)."""
    return 1 / (1 + torch.exp(-x))


def mnist_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean distance between the sigmoid of each prediction and its 0/1 target.

    ``p = sigmoid(predictions)``; the loss is ``mean(where(targets == 1, 1 - p, p))``. Predictions and
    targets have the same shape, e.g. (n, 1).
    """
    predictions = sigmoid(predictions)
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def init_params(size: int | tuple[int, ...], std: float = 1.0, device: str | torch.device = "cpu") -> Tensor:
    """A leaf tensor of shape ``size`` drawn from N(0, std**2) with the global generator, requiring grad."""
    return (torch.randn(size) * std).to(device).requires_grad_()


def calc_grad(xb: Tensor, yb: Tensor, model: Model, loss_func: LossFunc = mnist_loss) -> Tensor:
    """Run ``model`` on ``xb``, take ``loss_func(preds, yb)`` and backpropagate; gradients accumulate into
    the parameters' ``.grad``. Returns the loss (a 0-d tensor)."""
    loss = loss_func(model(xb), yb)
    loss.backward()
    return loss


class BasicOptim:
    """Plain SGD: ``step`` does ``p -= lr * p.grad`` in place for each parameter; ``zero_grad`` clears grads."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs) -> None:
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs) -> None:
        for p in self.params:
            p.grad = None


def train_epoch(model: Model, dl: Batches, opt: BasicOptim, loss_func: LossFunc = mnist_loss) -> None:
    """One pass over ``dl``: for every batch, ``calc_grad``, then ``opt.step()`` and ``opt.zero_grad()``."""
    for xb, yb in dl:
        calc_grad(xb, yb, model, loss_func)
        opt.step()
        opt.zero_grad()


def batch_accuracy(xb: Tensor, yb: Tensor) -> Tensor:
    """Fraction of a batch classified right: ``sigmoid(xb) > 0.5`` compared with the 0/1 targets ``yb``."""
    preds = xb.sigmoid()
    correct = (preds > 0.5) == yb
    return correct.float().mean()


def validate_epoch(model: Model, valid_dl: Batches) -> float:
    """Mean of ``batch_accuracy`` over the validation batches, weighted by batch size, as a float."""
    correct, total = 0.0, 0
    with torch.no_grad():
        for xb, yb in valid_dl:
            correct += batch_accuracy(model(xb), yb).item() * len(xb)
            total += len(xb)
    return correct / total


def train_model(
    model: Model,
    dl: Batches,
    valid_dl: Batches,
    opt: BasicOptim,
    epochs: int,
    loss_func: LossFunc = mnist_loss,
) -> list[float]:
    """``epochs`` times: ``train_epoch``, then ``validate_epoch``. Returns the validation accuracy per epoch."""
    history = []
    for _ in range(epochs):
        train_epoch(model, dl, opt, loss_func)
        history.append(validate_epoch(model, valid_dl))
    return history


def simple_net(hidden: int = 30) -> nn.Sequential:
    """The lesson's small neural net: ``Linear(784, hidden)``, ReLU, ``Linear(hidden, 1)``."""
    return nn.Sequential(nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def params_of(model: Model) -> Sequence[Tensor]:
    """The trainable tensors of ``model``: ``model.parameters()`` as a list."""
    return list(model.parameters())  # type: ignore[attr-defined]
