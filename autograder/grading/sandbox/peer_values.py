"""Objects that cross the channel by value: classes whose code both ends have, sent field by field.

Part of the channel (``peer.py``, which loads this file by path in the kernel): standalone, it needs only torch.
The reference (``autograder.reference.mnist_sgd``) defines its model and its batches here, since lent as
handles they made ``train_model``'s check cross the channel for every batch: ``next(dl)`` (the batch's bytes),
``model(xb)`` and, in the validation loop, both again. Sent by value, the kernel has its own ``Linear1`` and
``TensorBatches``; only the calls of the checker's loss function still cross (and of an optimizer other than a
plain ``SGD`` or a ``CountingSGD``), as the reference's answers to the blanks must stay on the checker's side.
With a student's own loss inside a ``LossRecorder``, nothing crosses while the loop trains.

- ``Linear1``: its parameters are leaf tensors that require grad, so they are *tracked* (``peer_tracking.py``):
  both copies of the model share them, values and gradients, as one object would.
- ``TensorBatches``: the receiver gets copies of its tensors, and a generator in the sender's generator's
  state, so its passes draw the orders the sender's next passes would. They are copies: the sender's
  generator does not advance, and a change to the receiver's tensors is not sent back.

- ``torch.optim.SGD`` with nothing but a learning rate (one parameter group, no momentum, dampening, weight decay,
  Nesterov or maximizing, no state): the receiver builds its own over its copies of the parameters, so that
  ``opt.step()`` and ``opt.zero_grad()`` in a student's loop cost no round trip. Any other optimizer, or an SGD with
  more settings, is lent as a handle.
- ``CountingSGD``: the checks' optimizer, SGD's step with the lesson's optimizer interface (``params``, ``lr``)
  and a record of its ``step`` and ``zero_grad`` calls, a call argument written back to the sender. The receiver's
  copy is the receiver's to write: the record tells what its code called, and the parameters, which stay shared,
  what the training did.

- ``LossRecorder``: a loss function that copies each batch's predictions and targets into buffers, then calls the
  loss function it wraps. The receiver's copy records in its own buffers, which are call arguments: they are
  written back to the sender's when the call returns. The loss it wraps crosses as any object does: the
  kernel's own function (a student's ``mnist_loss`` sent back to the kernel) runs there without a round trip,
  the checker's (the reference's) stays a handle, one round trip per batch.

None of them answers a blank: the lesson gives ``linear1``, ``TensorBatches`` is this kit's batching (the lesson
uses fastai's ``DataLoader``), ``SGD`` is PyTorch's (the reference's ``BasicOptim`` stays on the checker's side),
``CountingSGD`` does that ``SGD``'s step, and ``LossRecorder`` computes nothing but what the loss it wraps returns.
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


class LossRecorder:
    """A ``loss_func`` that records every call's predictions and targets, then returns ``loss_func``'s loss.

    Calls are recorded one after the other, flattened: ``predictions`` and ``targets`` (1-D buffers of the same
    length) hold their values, ``sizes`` each recorded call's number of values and ``count`` (one element) the
    number of calls recorded. A call that no longer fits in the buffers, or whose predictions and targets differ
    in size, is not recorded (the loss is still returned).
    """

    def __init__(self, loss_func: Any, predictions: Tensor, targets: Tensor, sizes: Tensor, count: Tensor) -> None:
        self.loss_func, self.predictions, self.targets, self.sizes, self.count = loss_func, predictions, targets, sizes, count
        self.filled = int(sizes[: int(count[0])].sum())

    def __call__(self, predictions: Tensor, targets: Tensor) -> Any:
        self._record(predictions, targets)
        return self.loss_func(predictions, targets)

    def _record(self, predictions: Any, targets: Any) -> None:
        if not isinstance(predictions, Tensor) or not isinstance(targets, Tensor):
            return
        calls, values, labels = int(self.count[0]), predictions.detach().reshape(-1), targets.detach().reshape(-1)
        size = len(values)
        if size != len(labels) or calls >= len(self.sizes) or self.filled + size > len(self.predictions):
            return
        with torch.no_grad():
            self.predictions[self.filled : self.filled + size] = values
            self.targets[self.filled : self.filled + size] = labels
            self.sizes[calls] = size
            self.count[0] = calls + 1
        self.filled += size

    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """The recorded calls' predictions and targets, each a column ``(size, 1)`` of its own."""
        recorded, start = [], 0
        for size in self.sizes[: int(self.count[0])].tolist():
            part = slice(start, start + size)
            recorded.append((self.predictions[part].reshape(-1, 1).clone(), self.targets[part].reshape(-1, 1).clone()))
            start += size
        return recorded


STEP_WITHOUT_GRADIENT = "opt.step() was called with no gradient: call calc_grad before opt.step()"
STEP, ZERO_GRAD = 1, 2
CALL_NAMES = {STEP: "step", ZERO_GRAD: "zero_grad"}
CALLS_KEPT = 64
"""How many of a ``CountingSGD``'s first calls it keeps in order (its counts go on past them)."""


class CountingSGD:
    """Plain SGD with the lesson's optimizer interface (``params``, ``lr``, ``step``, ``zero_grad``) that records
    its calls.

    ``step`` does ``p -= p.grad * lr`` for each parameter, as PyTorch's SGD with a learning rate alone does; called
    while a parameter has no gradient, it changes nothing and raises ``AssertionError(STEP_WITHOUT_GRADIENT)``.
    ``zero_grad`` sets the gradients to None. ``record`` (int64, ``3 + CALLS_KEPT``) holds the number of ``step``
    calls, of ``zero_grad`` calls, of calls kept, then the first ``CALLS_KEPT`` calls in order (``STEP``,
    ``ZERO_GRAD``); it is a call argument, written back to the sender when the call returns.
    """

    def __init__(self, params: Any, lr: float, record: Tensor | None = None) -> None:
        self.params, self.lr = list(params), lr
        self.record = torch.zeros(3 + CALLS_KEPT, dtype=torch.int64) if record is None else record

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._note(STEP)
        if any(p.grad is None for p in self.params):
            raise AssertionError(STEP_WITHOUT_GRADIENT)
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args: Any, **kwargs: Any) -> None:
        self._note(ZERO_GRAD)
        for p in self.params:
            p.grad = None

    def _note(self, call: int) -> None:
        kept = int(self.record[2])
        with torch.no_grad():
            self.record[call - 1] += 1
            if kept < CALLS_KEPT:
                self.record[3 + kept] = call
                self.record[2] = kept + 1

    @property
    def steps(self) -> int:
        """How many times ``step`` was called."""
        return int(self.record[0])

    @property
    def zero_grads(self) -> int:
        """How many times ``zero_grad`` was called."""
        return int(self.record[1])

    @property
    def calls(self) -> list[str]:
        """The first ``CALLS_KEPT`` calls, in order: ``"step"`` or ``"zero_grad"``."""
        return [CALL_NAMES.get(code, "?") for code in self.record[3 : 3 + int(self.record[2])].tolist()]


PLAIN_SGD = {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False}
"""The settings of an SGD sent by value: PyTorch's defaults, apart from the learning rate."""


def _plain_sgd(value: torch.optim.SGD) -> bool:
    if len(value.param_groups) != 1 or value.state:
        return False
    group = value.param_groups[0]
    return (all(group.get(name) == setting and type(group.get(name)) is type(setting) for name, setting in PLAIN_SGD.items())
            and type(group.get("lr")) is float and not group.get("differentiable") and not group.get("fused"))


RECORDER_FIELDS = ("loss_func", "predictions", "targets", "sizes", "count")
COPIED_FIELDS = {"x", "y", "generator"}
"""Fields sent as copies, never written back to the sender (``TensorBatches``' data: tens of megabytes)."""


class MalformedValue(ValueError):
    """What arrived for a by-value object is not one: the channel refuses the message."""


def fields_of(value: Any) -> dict[str, Any] | None:
    """The fields to send for ``value`` if its class is exactly ``Linear1``, ``TensorBatches``, a plain ``SGD``,
    ``LossRecorder`` or a ``CountingSGD`` that ``rebuild`` accepts, else None (a subclass, whose code the other end
    may lack, is lent as a handle, and so is a ``CountingSGD`` the other end would refuse, such as one whose learning
    rate is an int)."""
    if type(value) is Linear1:
        return {"weights": value.weights, "bias": value.bias}
    if type(value) is TensorBatches:
        generator = value.generator
        return {"x": value.x, "y": value.y, "batch_size": value.batch_size, "shuffle": value.shuffle,
                "generator": None if generator is None else generator.get_state()}
    if type(value) is torch.optim.SGD and _plain_sgd(value):
        return {"params": list(value.param_groups[0]["params"]), "lr": value.param_groups[0]["lr"]}
    if type(value) is LossRecorder:
        return {name: getattr(value, name) for name in RECORDER_FIELDS}
    if type(value) is CountingSGD and _sgd_settings(value.params, value.lr) and _counting_record(value.record):
        return {"params": list(value.params), "lr": value.lr, "record": value.record}
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
        if _sgd_settings(params, lr):
            return torch.optim.SGD(params, lr=lr)
    elif name == "LossRecorder" and set(fields) == set(RECORDER_FIELDS):
        if _recorder_buffers(*(fields[key] for key in RECORDER_FIELDS[1:])):
            return LossRecorder(*(fields[key] for key in RECORDER_FIELDS))
    elif name == "CountingSGD" and set(fields) == {"params", "lr", "record"}:
        params, lr, record = fields["params"], fields["lr"], fields["record"]
        if _sgd_settings(params, lr) and _counting_record(record):
            return CountingSGD(params, lr, record)
    raise MalformedValue(f"malformed {name[:40]!r} value")


def _sgd_settings(params: Any, lr: Any) -> bool:
    """Whether these are an SGD's parameters (leaf tensors that require grad) and learning rate (finite, >= 0)."""
    return (isinstance(params, list) and bool(params) and all(isinstance(p, Tensor) and p.is_leaf and p.requires_grad for p in params)
            and type(lr) is float and math.isfinite(lr) and lr >= 0)


def _counting_record(record: Any) -> bool:
    """Whether ``record`` is a ``CountingSGD``'s: int64, ``3 + CALLS_KEPT`` long, counts >= 0, at most ``CALLS_KEPT`` kept."""
    if not isinstance(record, Tensor) or record.dtype != torch.int64 or record.shape != (3 + CALLS_KEPT,):
        return False
    return bool((record[:3] >= 0).all()) and int(record[2]) <= CALLS_KEPT


def _recorder_buffers(predictions: Any, targets: Any, sizes: Any, count: Any) -> bool:
    """Whether these are a ``LossRecorder``'s buffers: 1-D values and labels of one length, 1-D integer sizes, and a
    count of one element that the sizes and values can hold."""
    if not all(isinstance(buffer, Tensor) and buffer.dim() == 1 for buffer in (predictions, targets, sizes, count)):
        return False
    if len(predictions) != len(targets) or sizes.dtype != torch.int64 or count.dtype != torch.int64 or len(count) != 1:
        return False
    calls = int(count[0])
    return 0 <= calls <= len(sizes) and bool((sizes[:calls] >= 0).all()) and int(sizes[:calls].sum()) <= len(predictions)


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
