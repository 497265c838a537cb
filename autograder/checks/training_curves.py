"""The calibrated training run of ``train_model`` on the MNIST sample, and the curves the feedback draws from it.

One run grades ``train_model`` and gives the feedback its curves, so the figure costs no extra training:
the student's ``train_model`` trains ``linear1`` in the calibrated setting (``TRAIN_MODEL``: plain SGD at lr
1.0, 3 epochs, batches of 256, seed 1) with the reference ``mnist_loss``, so that a mistake in the student's
loss never costs ``train_model`` points. The optimizer is PyTorch's ``SGD``, whose step at lr 1.0 is
``BasicOptim``'s bit for bit (``p - 1.0 * g`` is ``p - g``): it crosses the channel by value
(``peer_values.py``), so a sandboxed kernel steps and zeroes the gradients without a round trip to the checker,
while the reference's ``BasicOptim`` never leaves the checker. The loss that training passes through records
each batch's predictions; afterwards each epoch's predictions are scored with the student's ``mnist_loss``
*and* the reference's, so the figure shows the student's loss next to the reference's on the same data (a loss
without sigmoid, say, reads far from the reference's line).
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
from autograder.reference import mnist_sgd as ref
from autograder.reference.runs import batches_for

NOTEBOOK_EPOCHS = 20
"""How many epochs the notebook itself trains ``linear1`` for (its promise of about 0.97 is after these)."""


class PredictionRecorder:
    """A ``loss_func`` that trains with the reference ``mnist_loss`` and keeps every batch's predictions and targets.

    A plain class, so that a sandboxed student's calls come back to this (the checker's) side.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[Tensor, Tensor]] = []

    def __call__(self, predictions, targets):
        self.batches.append((predictions.detach().clone(), targets.detach().clone()))
        return ref.mnist_loss(predictions, targets)


@dataclass
class CalibratedRun:
    """What one calibrated run of a ``train_model`` gave.

    Attributes:
        final_accuracy: the validation accuracy after training, measured with the reference metric.
        returned: what ``train_model`` returned (its accuracies per epoch, if it is right).
        epochs: the predictions and targets of each epoch's batches, concatenated, one pair per epoch.
    """

    final_accuracy: float
    returned: Any
    epochs: list[tuple[Tensor, Tensor]] = field(default_factory=list)


def calibrated_run(sample, device, train_model: Callable[..., Any]) -> CalibratedRun:
    """Run ``train_model(model, dl, valid_dl, opt, epochs, loss_func)`` in the calibrated setting.

    Raises:
        AssertionError: ``train_model`` raised (the message names the likely cause).
    """
    seed_everything(TRAIN_MODEL.check_seed)
    model = ref.Linear1(ref.init_params((28 * 28, 1), device=device), ref.init_params(1, device=device))
    dl, valid_dl = batches_for(sample, TRAIN_MODEL.check_seed)
    recorder = PredictionRecorder()
    opt = torch.optim.SGD(model.parameters(), lr=TRAIN_MODEL.lr)  # BasicOptim's step at lr 1.0, bit for bit
    returned = call_student(train_model, model, dl, valid_dl, opt, TRAIN_MODEL.epochs, recorder)
    per_epoch = max(len(dl), 1)
    epochs = [
        (torch.cat([p for p, _ in chunk]), torch.cat([t for _, t in chunk]))
        for chunk in (recorder.batches[i : i + per_epoch] for i in range(0, len(recorder.batches), per_epoch))
    ]
    return CalibratedRun(ref.validate_epoch(model, valid_dl), returned, epochs)


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
    sentence = (
        f"{whose[0].upper()}{whose[1:]} train_model trained linear1 for {TRAIN_MODEL.epochs} epochs at lr "
        f"{TRAIN_MODEL.lr:g} with plain SGD (BasicOptim's step) and the reference mnist_loss (the run that grades train_model; the "
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
