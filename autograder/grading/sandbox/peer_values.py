"""Objects that cross the channel by value: classes whose code both ends have, sent field by field.

Part of the channel (``peer.py``, which loads this file by path in the kernel): standalone, it needs only torch.
The reference (``autograder.reference.mnist_sgd``) defines its model and its batches here, since lent as
handles they made ``train_model``'s check cross the channel for every batch: ``next(dl)`` (the batch's bytes),
``model(xb)`` and, in the validation loop, both again. Sent by value, the kernel has its own ``Linear1`` and
``TensorBatches``; only the calls of the checker's loss function still cross (and of an optimizer other than a
plain ``SGD``), as the reference's answers to the blanks must stay on the checker's side.

- ``Linear1``: its parameters are leaf tensors that require grad, so they are *tracked* (``peer_tracking.py``):
  both copies of the model share them, values and gradients, as one object would.
- ``TensorBatches``: the receiver gets copies of its tensors, and a generator in the sender's generator's
  state, so its passes draw the orders the sender's next passes would. They are copies: the sender's
  generator does not advance, and a change to the receiver's tensors is not sent back.

- ``torch.optim.SGD`` with nothing but a learning rate (one parameter group, no momentum, dampening, weight decay,
  Nesterov or maximizing, no state): the receiver builds its own over its copies of the parameters, so that
  ``opt.step()`` and ``opt.zero_grad()`` in a student's loop cost no round trip. Any other optimizer, or an SGD with
  more settings, is lent as a handle.

None of them answers a blank: the lesson gives ``linear1``, ``TensorBatches`` is this kit's batching (the lesson
uses fastai's ``DataLoader``), and ``SGD`` is PyTorch's (the reference's ``BasicOptim`` stays on the checker's side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor

BATCH_SIZE = 256


def linear1(xb: Tensor, weights: Tensor, bias: Tensor) -> Tensor:
    """The linear model ``xb @ weights + bias``: (n, 784) @ (784, 1) + (1,) -> (n, 1)."""
    return xb @ weights + bias


class Linear1:
    """``linear1`` bound to its parameters: a callable model with a ``parameters()`` list, like ``nn.Linear``."""

    def __init__(self, weights: Tensor, bias: Tensor) -> None:
        self.weights, self.bias = weights, bias

    def __call__(self, xb: Tensor) -> Tensor:
        return linear1(xb, self.weights, self.bias)

    def parameters(self) -> list[Tensor]:
        return [self.weights, self.bias]


@dataclass
class TensorBatches:
    """Minibatches sliced straight from tensors already on the device (no per-item Python work).

    Iterating yields ``(x[idx], y[idx])`` for consecutive slices of ``batch_size`` rows. With ``shuffle``,
    each pass draws a new permutation from ``generator``, so a seeded generator repeats the same order.
    """

    x: Tensor
    y: Tensor
    batch_size: int = BATCH_SIZE
    shuffle: bool = False
    generator: torch.Generator | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, self.batch_size):
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size


PLAIN_SGD = {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False}
"""The settings of an SGD sent by value: PyTorch's defaults, apart from the learning rate."""


def _plain_sgd(value: torch.optim.SGD) -> bool:
    if len(value.param_groups) != 1 or value.state:
        return False
    group = value.param_groups[0]
    return (all(group.get(name) == setting and type(group.get(name)) is type(setting) for name, setting in PLAIN_SGD.items())
            and type(group.get("lr")) is float and not group.get("differentiable") and not group.get("fused"))


COPIED_FIELDS = {"x", "y", "generator"}
"""Fields sent as copies, never written back to the sender (``TensorBatches``' data: tens of megabytes)."""


class MalformedValue(ValueError):
    """What arrived for a by-value object is not one: the channel refuses the message."""


def fields_of(value: Any) -> dict[str, Any] | None:
    """The fields to send for ``value`` if its class is exactly ``Linear1``, ``TensorBatches`` or a plain ``SGD``,
    else None (a subclass, whose code the other end may lack, is lent as a handle)."""
    if type(value) is Linear1:
        return {"weights": value.weights, "bias": value.bias}
    if type(value) is TensorBatches:
        generator = value.generator
        return {"x": value.x, "y": value.y, "batch_size": value.batch_size, "shuffle": value.shuffle,
                "generator": None if generator is None else generator.get_state()}
    if type(value) is torch.optim.SGD and _plain_sgd(value):
        return {"params": list(value.param_groups[0]["params"]), "lr": value.param_groups[0]["lr"]}
    return None


def rebuild(name: str, fields: dict[str, Any]) -> Any:
    """The receiver's object of class ``name`` from the fields ``fields_of`` gave; ``MalformedValue`` if they
    are not what such an object holds."""
    if name == "Linear1" and set(fields) == {"weights", "bias"}:
        if all(isinstance(fields[key], Tensor) for key in fields):
            return Linear1(fields["weights"], fields["bias"])
    elif name == "TensorBatches" and set(fields) == {"x", "y", "batch_size", "shuffle", "generator"}:
        x, y, size, shuffle, state = (fields[key] for key in ("x", "y", "batch_size", "shuffle", "generator"))
        if (isinstance(x, Tensor) and isinstance(y, Tensor) and x.dim() > 0 and y.dim() > 0 and len(x) == len(y)
                and type(size) is int and size > 0 and type(shuffle) is bool):
            return TensorBatches(x, y, size, shuffle, _generator(state))
    elif name == "SGD" and set(fields) == {"params", "lr"}:
        params, lr = fields["params"], fields["lr"]
        if (isinstance(params, list) and params and all(isinstance(p, Tensor) and p.is_leaf and p.requires_grad for p in params)
                and type(lr) is float and math.isfinite(lr) and lr >= 0):
            return torch.optim.SGD(params, lr=lr)
    raise MalformedValue(f"malformed {name[:40]!r} value")


def _generator(state: Any) -> torch.Generator | None:
    if state is None:
        return None
    if not isinstance(state, Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
        raise MalformedValue("malformed generator state")
    generator = torch.Generator()
    try:
        generator.set_state(state.cpu())
    except RuntimeError as error:
        raise MalformedValue(f"malformed generator state: {error}") from error
    return generator
