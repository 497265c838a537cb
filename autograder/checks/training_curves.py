"""The calibrated training run of ``train_model`` on the MNIST sample, and the curves the feedback draws from it.

One run grades ``train_model`` and gives the feedback its curves, so the figure costs no extra training:
the student's ``train_model`` trains ``linear1`` in the calibrated setting (``TRAIN_MODEL``: plain SGD at lr
1.0, 3 epochs, batches of 256, seed 1). Its loss is the student's ``mnist_loss`` when that gives the reference's
value and gradient on batches of the run's shapes (``matches_reference_loss``), else the reference's, so that a
mistake in the student's loss never costs ``train_model`` points. The optimizer is PyTorch's ``SGD``, whose step
at lr 1.0 is ``BasicOptim``'s bit for bit (``p - 1.0 * g`` is ``p - g``).

In the sandbox, the model, the batches, the ``SGD`` and the loss's recorder cross the channel by value
(``peer_values.py``): the kernel steps, zeroes the gradients and records without a round trip to the checker,
and with the student's own loss a training batch costs none at all; with the reference's loss (which never
leaves the checker) each batch costs one. The recorder keeps each batch's predictions and targets; afterwards
each epoch's predictions are scored with the student's ``mnist_loss`` *and* the reference's, so the figure shows
the student's loss next to the reference's on the same data (a loss without sigmoid, say, reads far from the
reference's line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from autograder.checks.compare import call_student
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.device import seed_everything
from autograder.grading.sandbox.peer_values import LossRecorder
from autograder.reference import mnist_sgd as ref
from autograder.reference.runs import batches_for

NOTEBOOK_EPOCHS = 20
"""How many epochs the notebook itself trains ``linear1`` for (its promise of about 0.97 is after these)."""
RECORDER_ROOM = 2
"""The recorder holds this many times the calls (and values) of a loop that calls the loss once per batch."""
PROBE_SEED = 0
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-7
"""How close a student's ``mnist_loss`` must come to the reference's, value and gradient, to train the run."""


@dataclass
class CalibratedRun:
    """What one calibrated run of a ``train_model`` gave.

    Attributes:
        final_accuracy: the validation accuracy after training, measured with the reference metric.
        returned: what ``train_model`` returned (its accuracies per epoch, if it is right).
        epochs: the predictions and targets of each epoch's batches, concatenated, one pair per epoch.
        own_loss: whether it trained with the ``mnist_loss`` it was given (else with the reference's).
    """

    final_accuracy: float
    returned: Any
    epochs: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    own_loss: bool = False


def matches_reference_loss(loss_func: Callable[..., Any], train_y: Tensor, device) -> bool:
    """Whether ``loss_func`` gives the reference ``mnist_loss``'s value and gradient (within ``LOSS_RTOL``) on a full
    batch and on the run's last, shorter one: predictions drawn across the sigmoid's range, targets drawn from
    ``train_y`` (the run's training labels). Never raises: whatever goes wrong answers False."""
    generator = torch.Generator().manual_seed(PROBE_SEED)
    for size in (ref.BATCH_SIZE, len(train_y) % ref.BATCH_SIZE or ref.BATCH_SIZE):
        rows = torch.randperm(len(train_y), generator=generator)[:size].to(train_y.device)
        predictions, targets = (torch.randn(size, 1, generator=generator) * 4).to(device), train_y[rows]
        try:
            if not _same_value_and_gradient(loss_func, predictions, targets):
                return False
        except Exception:  # noqa: BLE001 - a loss that fails here trains nothing: the reference's trains instead
            return False
    return True


def _same_value_and_gradient(loss_func: Callable[..., Any], predictions: Tensor, targets: Tensor) -> bool:
    expected_at, got_at = predictions.clone().requires_grad_(), predictions.clone().requires_grad_()
    expected = ref.mnist_loss(expected_at, targets)
    expected.backward()
    got = loss_func(got_at, targets.clone())
    if not isinstance(got, Tensor) or got.shape != expected.shape or got.dtype != expected.dtype or not got.requires_grad:
        return False
    got.backward()
    return (
        got_at.grad is not None
        and torch.allclose(got.detach(), expected.detach(), rtol=LOSS_RTOL, atol=LOSS_ATOL)
        and torch.allclose(got_at.grad, expected_at.grad, rtol=LOSS_RTOL, atol=LOSS_ATOL)
    )


def _recorder(loss_func: Callable[..., Any], dl, device) -> LossRecorder:
    """A ``LossRecorder`` of ``loss_func`` with room for ``RECORDER_ROOM`` times the run's calls and predictions."""
    calls, values = RECORDER_ROOM * TRAIN_MODEL.epochs * len(dl), RECORDER_ROOM * TRAIN_MODEL.epochs * len(dl.x)
    return LossRecorder(
        loss_func, torch.zeros(values, device=device), torch.zeros(values, dtype=dl.y.dtype, device=device),
        torch.zeros(calls, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
    )


def calibrated_run(sample, device, train_model: Callable[..., Any], loss_func: Callable[..., Any] | None = None) -> CalibratedRun:
    """Run ``train_model(model, dl, valid_dl, opt, epochs, loss_func)`` in the calibrated setting.

    Args:
        loss_func: the student's ``mnist_loss``: the run trains with it when ``matches_reference_loss``, else (and
            when None) with the reference's.

    Raises:
        AssertionError: ``train_model`` raised (the message names the likely cause).
    """
    dl, valid_dl = batches_for(sample, TRAIN_MODEL.check_seed)
    own_loss = loss_func is not None and loss_func is not ref.mnist_loss and matches_reference_loss(loss_func, dl.y, device)
    seed_everything(TRAIN_MODEL.check_seed)
    model = ref.Linear1(ref.init_params((28 * 28, 1), device=device), ref.init_params(1, device=device))
    recorder = _recorder(loss_func if own_loss else ref.mnist_loss, dl, device)
    opt = torch.optim.SGD(model.parameters(), lr=TRAIN_MODEL.lr)  # BasicOptim's step at lr 1.0, bit for bit
    returned = call_student(train_model, model, dl, valid_dl, opt, TRAIN_MODEL.epochs, recorder)
    batches, per_epoch = recorder.batches(), max(len(dl), 1)
    epochs = [
        (torch.cat([p for p, _ in chunk]), torch.cat([t for _, t in chunk]))
        for chunk in (batches[i : i + per_epoch] for i in range(0, len(batches), per_epoch))
    ]
    return CalibratedRun(ref.validate_epoch(model, valid_dl), returned, epochs, own_loss)


def _loss_value(loss_func: Callable[..., Any], predictions: Tensor, targets: Tensor) -> float | None:
    """``loss_func``'s value on one epoch's predictions, or None when it raises or is not a finite number."""
    try:
        value = float(torch.as_tensor(loss_func(predictions.clone(), targets.clone())).detach().reshape(-1)[0])
    except Exception:  # noqa: BLE001 - a broken loss gives no point on the curve, never a crash of the check
        return None
    return value if math.isfinite(value) else None


def _floats(values: Any) -> list[float | None]:
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError, RuntimeError):
        return []
    return [v if math.isfinite(v) else None for v in floats]


def curves_of(run: CalibratedRun, loss_func: Callable[..., Any] | None, whose: str = "your") -> dict:
    """The feedback's curves from ``run``: per epoch, ``loss_func`` and the reference loss on the same predictions.

    Args:
        run: a calibrated run.
        loss_func: the student's ``mnist_loss``; None (or the reference's) scores with the reference loss alone.
        whose: ``"your"`` for a student's run, ``"the reference"`` for the reference's.

    Returns:
        A JSON-ready dict: ``run`` (the sentence saying what run this is), ``epochs``, ``lr``, ``loss_name``
        (whose ``mnist_loss`` measured ``train_loss``), ``train_loss`` (per epoch, ``loss_func`` on that epoch's
        predictions; None where it failed), ``reference_loss`` (the reference ``mnist_loss`` on the same
        predictions), ``valid_accuracy_returned`` and ``final_accuracy`` (reference metric).
    """
    own_loss = loss_func is not None and loss_func is not ref.mnist_loss
    loss_name = f"{whose} mnist_loss" if own_loss else "the reference mnist_loss"
    reference_loss = [_loss_value(ref.mnist_loss, p, t) for p, t in run.epochs]
    trained_with = f"{whose} mnist_loss, which matches the reference's" if run.own_loss else "the reference mnist_loss"
    sentence = (
        f"{whose[0].upper()}{whose[1:]} train_model trained linear1 for {TRAIN_MODEL.epochs} epochs at lr "
        f"{TRAIN_MODEL.lr:g} with plain SGD (BasicOptim's step) and {trained_with} (the run that grades train_model; the "
        f"notebook trains {NOTEBOOK_EPOCHS} epochs), on the MNIST sample's 3s and 7s in shuffled batches of "
        f"{ref.BATCH_SIZE}. The loss panel scores each epoch's predictions with {loss_name}"
        + (" and with the reference mnist_loss." if own_loss else ".")
    )
    return {
        "run": sentence,
        "epochs": TRAIN_MODEL.epochs,
        "lr": float(TRAIN_MODEL.lr),
        "loss_name": loss_name,
        "train_loss": [_loss_value(loss_func, p, t) for p, t in run.epochs] if own_loss else reference_loss,
        "reference_loss": reference_loss,
        "valid_accuracy_returned": _floats(run.returned) if isinstance(run.returned, (list, tuple)) else [],
        "final_accuracy": float(run.final_accuracy),
    }


def feedback_curves(sample, device, train_model: Callable[..., Any], loss_func: Callable[..., Any] | None = None) -> dict:
    """``curves_of(calibrated_run(...), loss_func)``: for the reference, ``(ref.train_model, ref.mnist_loss)``."""
    whose = "the reference" if train_model is ref.train_model else "your"
    return curves_of(calibrated_run(sample, device, train_model), loss_func, whose)
