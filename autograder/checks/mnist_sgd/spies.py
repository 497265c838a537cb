"""What watches a student's training in the checks of 04_mnist_sgd.

``LossSpy`` counts the calls of the loss_func it is given as, ``CountingSGD`` (``peer_values.py``) steps as the
reference's ``BasicOptim`` and records ``step`` and ``zero_grad``, and ``expect_same_training`` compares a student's
training with the reference's, naming a cause only when one of them observed it. ``LossSpy`` is a plain class, so
that a sandboxed student's calls come back to the checker's side; ``CountingSGD`` crosses the channel by value, so
that a training loop steps without a round trip, and its record of the calls is written back when the call returns.
"""

from __future__ import annotations

import torch

from autograder.checks.compare import INSTRUMENT_VERDICTS, call_student, close, difference_message, likely_mistake
from autograder.grading.sandbox.peer_values import STEP_WITHOUT_GRADIENT, CountingSGD


def mse_loss(predictions, targets):
    """Another loss than the notebook's: the mean squared error of the raw predictions."""
    return ((predictions - targets) ** 2).mean()


LOSS_FUNC_LR = 1e-3
"""Learning rate of the checks that train with ``mse_loss``: larger ones make its training diverge (values ~1e4)."""


class LossSpy:
    """``mse_loss`` that counts its calls: given as loss_func, it shows whether a student's function used it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, predictions, targets):
        self.calls += 1
        return mse_loss(predictions, targets)


def expect_called(spy: LossSpy, fix: str) -> None:
    """Assert the student's function called the loss_func it was given (``spy``) at least once."""
    if spy.calls == 0:
        raise AssertionError(f"ignored the loss_func argument: it was never called; {fix}")


def call_with_spy(fn, *args, spy: LossSpy, fix: str):
    """``call_student(fn, *args)``; a call of None in place of the never-called ``spy`` is named as such."""
    try:
        return call_student(fn, *args)
    except AssertionError as error:
        if spy.calls == 0 and str(error).startswith("called None as a function"):
            raise AssertionError(f"ignored the loss_func argument: it was never called, None was called instead; {fix}") from error
        raise


INSTRUMENT_VERDICTS.add(STEP_WITHOUT_GRADIENT)


def expect_same_training(model, twin, before, opt, spy, n_batches, what, mistakes=None,
                         fixes=("call train_epoch for each epoch", "pass it on to train_epoch")):
    """Assert ``model`` ends with ``twin``'s parameters; else raise the most specific confirmed cause.

    A cause is named only when observed: the parameters did not change at all, the loss_func ``spy``
    (None when the reference's loss was used) was never called, the optimizer ``opt`` (a ``CountingSGD``)
    was never stepped or never zeroed, or the weights equal a known wrong result in ``mistakes``. Otherwise
    the message says where the weights differ, with how often loss_func and opt.step() were called.
    """
    params, expected = [p.detach() for p in model.parameters()], [p.detach() for p in twin.parameters()]
    if all(close(p, e) for p, e in zip(params, expected)):
        return
    if all(torch.equal(old, p) for old, p in zip(before, params)):
        raise AssertionError(f"never trained: the parameters did not change ({fixes[0]})")
    if spy is not None:
        expect_called(spy, fixes[1])
    if opt.steps == 0:
        raise AssertionError("never called step() on the opt it was given: train with that optimizer, not a new one")
    if opt.zero_grads == 0:
        raise AssertionError("forgot opt.zero_grad(): gradients add up across batches")
    message = likely_mistake(params[0], mistakes or {})
    if message is None:
        name, got, want = next((n, p, e) for n, p, e in zip(("weights", "bias"), params, expected) if not close(p, e))
        message = difference_message(got, want, f"{name} {what}")
        counts = ([f"loss_func {spy.calls}"] if spy is not None else []) + [f"opt.step() {opt.steps}"]
        message = f"{message}; it called {' and '.join(c + ' time(s)' for c in counts)}, for {n_batches} batches per epoch"
    raise AssertionError(message[:300])
