"""Hidden checks for 04_mnist_sgd: sigmoid, mnist_loss, calc_grad, batch_accuracy, BasicOptim, train_epoch, train_model.

One module per blank, named after it (``basic_optim`` for ``BasicOptim``); ``inputs`` builds what they share
(batches, small models, the visible tests' toy problem) and ``spies`` watches a student's training (the
loss_func spy, the counting optimizer). The gates (``@gate``) repeat each blank's visible test: the same small
inputs the test cell builds (PyTorch's ``SGD`` and binary cross-entropy where the test cell uses them), the same
assertions and tolerances. The other checks add random inputs, float64, gradients, several parameters,
counterfactual runs (are the arguments used at all?), state (what must stay unchanged) and training on the real
MNIST sample.
"""

from __future__ import annotations

from autograder.checks.mnist_sgd.basic_optim import (
    VISIBLE_AFTER_STEP,
    ZERO_GRAD_DID_NOTHING,
    ZERO_GRAD_STOPPED,
    optimizer_step_mistakes,
    visible_optim_parameters,
)
from autograder.checks.mnist_sgd.batch_accuracy import accuracy_mistakes
from autograder.checks.mnist_sgd.calc_grad import CALC_GRAD_CHANGED_PARAMETERS
from autograder.checks.mnist_sgd.inputs import bce, image_batch, linear_model, loss_inputs, toy_model, visible_toy_data
from autograder.checks.mnist_sgd.mnist_loss import loss_mistakes, visible_loss_examples
from autograder.checks.mnist_sgd.sigmoid import USED_A_PYTHON_NUMBER, sigmoid_mistakes
from autograder.checks.mnist_sgd.spies import (
    LOSS_FUNC_LR,
    STEP_WITHOUT_GRADIENT,
    CountingSGD,
    LossSpy,
    call_with_spy,
    expect_called,
    expect_same_training,
    mse_loss,
)
from autograder.checks.mnist_sgd.train_epoch import VISIBLE_AFTER_EPOCH, train_epoch_mistakes
from autograder.checks.visible import ON_THE_VISIBLE_EXAMPLE, expect_as_visible, expect_number_as_visible

BLANKS = ("sigmoid", "mnist_loss", "calc_grad", "batch_accuracy", "BasicOptim", "train_epoch", "train_model")
UPDATES_PARAMETERS: tuple[str, ...] = ("BasicOptim", "train_epoch", "train_model")
"""Blanks that update parameters in place: an in-place error there means a step outside ``torch.no_grad()``."""
NEEDS_MNIST_SAMPLE = True
"""True: a check uses the real MNIST sample, so `autograder grade` and `validate` refuse to start without it."""

__all__ = [
    "BLANKS", "CALC_GRAD_CHANGED_PARAMETERS", "LOSS_FUNC_LR", "NEEDS_MNIST_SAMPLE", "ON_THE_VISIBLE_EXAMPLE",
    "STEP_WITHOUT_GRADIENT", "UPDATES_PARAMETERS", "USED_A_PYTHON_NUMBER", "VISIBLE_AFTER_EPOCH", "VISIBLE_AFTER_STEP",
    "ZERO_GRAD_DID_NOTHING", "ZERO_GRAD_STOPPED", "CountingSGD", "LossSpy", "accuracy_mistakes", "bce", "call_with_spy",
    "expect_as_visible", "expect_called", "expect_number_as_visible", "expect_same_training", "image_batch",
    "linear_model", "loss_inputs", "loss_mistakes", "mse_loss", "optimizer_step_mistakes", "sigmoid_mistakes",
    "toy_model", "train_epoch_mistakes", "visible_loss_examples", "visible_optim_parameters", "visible_toy_data",
]
