"""The mutants and alternatives of 04_mnist_sgd: wrong solutions the hidden checks must catch, each with its own
named mistake, and correct ones they must pass. The machinery is in ``catalog.py``."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.reference import mnist_sgd as ms

from autograder.data import synthetic_mnist
from autograder.reference.runs import batches_for

from catalog import Catalog

pytestmark = pytest.mark.mnist_sgd

CATALOG = Catalog("mnist_sgd", real_data_blanks={"train_model": ms.train_model})

_NOTEBOOK_DATA = synthetic_mnist(32, seed=0)
_TRAIN_X, _TRAIN_Y = _NOTEBOOK_DATA.xy("train")
XB, YB = _TRAIN_X[:4], _TRAIN_Y[:4]
DL, VALID_DL = (list(batches) for batches in batches_for(_NOTEBOOK_DATA, seed=42, batch_size=16))
"""The notebook's globals ``xb, yb = train_x[:4], train_y[:4]``, ``dl`` and ``valid_dl``, made as the notebook makes
them (from synthetic digits here): what a mutant that reads globals instead of its arguments finds."""


def _on_device_of(model, *tensors):
    """``tensors`` moved to the device of ``model``'s parameters (a notebook's globals sit beside its model)."""
    device = next(iter(model.parameters())).device
    return [t.to(device) for t in tensors]


# ==== mutants =======================================================================================

@CATALOG.mutant("sigmoid", "wrong sign inside exp")
def sigmoid_wrong_sign(x):
    return 1 / (1 + torch.exp(x))


@CATALOG.mutant("sigmoid", "used tanh")
def sigmoid_tanh(x):
    return torch.tanh(x)


@CATALOG.mutant("sigmoid", "forgot the 1 + in the denominator")
def sigmoid_no_one_plus(x):
    return 1 / torch.exp(-x)


@CATALOG.mutant("sigmoid", "sigmoid is 1 / (1 + exp(-x))")
def sigmoid_complement(x):
    return torch.exp(-x) / (1 + torch.exp(-x))


@CATALOG.mutant("sigmoid", "use torch.exp, which works on every element")
def sigmoid_math_exp(x):
    return 1 / (1 + math.exp(-x))


@CATALOG.mutant("sigmoid", "keep the input's dtype")
def sigmoid_float32(x):
    return 1 / (1 + torch.exp(-x.float()))


@CATALOG.mutant("sigmoid", "changed its input x in place")
def sigmoid_in_place(x):
    return x.neg_().exp_().add_(1).reciprocal_()


# ---- 04 mnist sgd: mnist_loss ---------------------------------------------------------------------


@CATALOG.mutant("mnist_loss", "forgot to apply sigmoid")
def mnist_loss_no_sigmoid(predictions, targets):
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


@CATALOG.mutant("mnist_loss", "swapped the two cases")
def mnist_loss_swapped_branches(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, p, 1 - p).mean()


@CATALOG.mutant("mnist_loss", "forgot .mean()")
def mnist_loss_sum(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, 1 - p, p).sum()


@CATALOG.mutant("mnist_loss", "applied sigmoid twice")
def mnist_loss_sigmoid_twice(predictions, targets):
    p = ms.sigmoid(predictions.sigmoid())
    return torch.where(targets == 1, 1 - p, p).mean()


@CATALOG.mutant("mnist_loss", "used accuracy as the loss")
def mnist_loss_is_accuracy(predictions, targets):
    return ((predictions.sigmoid() > 0.5).float() == targets).float().mean()


@CATALOG.mutant("mnist_loss", "used 1 - accuracy as the loss")
def mnist_loss_is_error_rate(predictions, targets):
    return 1 - ((predictions.sigmoid() > 0.5).float() == targets).float().mean()


@CATALOG.mutant("mnist_loss", "not a tensor")
def mnist_loss_item(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets == 1, 1 - p, p).mean().item()


@CATALOG.mutant("mnist_loss", "flattened the targets")
def mnist_loss_flattened_targets(predictions, targets):
    p = predictions.sigmoid()
    return torch.where(targets.view(-1) == 1, 1 - p, p).mean()


@CATALOG.mutant("mnist_loss", "changed its input predictions in place")
def mnist_loss_in_place(predictions, targets):
    p = predictions.sigmoid_()
    return torch.where(targets == 1, 1 - p, p).mean()


# ---- 04 mnist sgd: calc_grad ----------------------------------------------------------------------


@CATALOG.mutant("calc_grad", "call loss.backward()")
def calc_grad_forgot_backward(xb, yb, model, loss_func=ms.mnist_loss):
    return loss_func(model(xb), yb)


@CATALOG.mutant("calc_grad", "ignored the loss_func argument: it was never called")
def calc_grad_ignores_loss_func(xb, yb, model, loss_func=ms.mnist_loss):
    loss = ms.mnist_loss(model(xb), yb)
    loss.backward()
    return loss


@CATALOG.mutant("calc_grad", "cut off from the parameters")
def calc_grad_swapped_arguments(xb, yb, model, loss_func=ms.mnist_loss):
    loss = loss_func(yb, model(xb))
    loss.backward()
    return loss


@CATALOG.mutant("calc_grad", "called backward() on the predictions")
def calc_grad_backward_on_predictions(xb, yb, model, loss_func=ms.mnist_loss):
    preds = model(xb)
    loss = loss_func(preds, yb)
    preds.mean().backward()
    return loss


@CATALOG.mutant("calc_grad", "cut off from the parameters")
def calc_grad_detached_predictions(xb, yb, model, loss_func=ms.mnist_loss):
    loss = loss_func(model(xb).detach(), yb)
    loss.backward()
    return loss


@CATALOG.mutant("calc_grad", "return the loss computed with loss_func")
def calc_grad_fastbook_no_return(xb, yb, model, loss_func=ms.mnist_loss):
    preds = model(xb)
    loss = loss_func(preds, yb)
    loss.backward()


@CATALOG.mutant("calc_grad", "calc_grad changed the parameters' values")
def calc_grad_also_steps(xb, yb, model, loss_func=ms.mnist_loss):
    loss = loss_func(model(xb), yb)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= p.grad
    return loss


@CATALOG.mutant("calc_grad", "ignored the xb and yb it was given")
def calc_grad_reads_the_global_batch(xb, yb, model, loss_func=ms.mnist_loss):
    global_xb, global_yb = _on_device_of(model, XB, YB)
    loss = loss_func(model(global_xb), global_yb)
    loss.backward()
    return loss


# ---- 04 mnist sgd: batch_accuracy -----------------------------------------------------------------


@CATALOG.mutant("batch_accuracy", "thresholded the raw predictions at 0.5")
def batch_accuracy_raw_threshold(xb, yb):
    return ((xb > 0.5) == yb).float().mean()


@CATALOG.mutant("batch_accuracy", "returned the number of correct predictions")
def batch_accuracy_count(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).float().sum()


@CATALOG.mutant("batch_accuracy", "compared the wrong way")
def batch_accuracy_reversed(xb, yb):
    return ((xb.sigmoid() < 0.5) == yb).float().mean()


@CATALOG.mutant("batch_accuracy", "shapes do not match")
def batch_accuracy_flattened_predictions(xb, yb):
    return ((xb.sigmoid() > 0.5).view(-1) == yb).float().mean()


@CATALOG.mutant("batch_accuracy", "took the mean of a True/False tensor")
def batch_accuracy_mean_of_bools(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).mean()


@CATALOG.mutant("batch_accuracy", "changed its input xb in place")
def batch_accuracy_in_place(xb, yb):
    return ((xb.sigmoid_() > 0.5) == yb).float().mean()


# ---- 04 mnist sgd: BasicOptim ---------------------------------------------------------------------


@CATALOG.mutant("BasicOptim", "store list(params)")
class BasicOptimStoresTheGenerator:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.mutant("BasicOptim", "only the first parameter was updated")
class BasicOptimStepsFirstParamOnly:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        p = self.params[0]
        p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.mutant("BasicOptim", "stepped outside torch.no_grad()")
class BasicOptimOutsideNoGrad:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p -= p.grad * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.mutant("BasicOptim", "the parameters did not change")
class BasicOptimRebindsLoopVariable:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        with torch.no_grad():
            for p in self.params:
                p = p - p.grad * self.lr  # noqa: PLW2901 - the mistake: rebinding the loop variable

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.mutant("BasicOptim", "wrong sign in the step")
class BasicOptimWrongSign:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data += p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.mutant("BasicOptim", "zero_grad left the gradients as they were")
class BasicOptimZeroGradRebindsLocal:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            grad = p.grad
            grad = None  # noqa: F841 - the mistake: clears a local name, not p.grad


@CATALOG.mutant("BasicOptim", "zero_grad cleared only some gradients")
class BasicOptimZeroGradReturnsEarly:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None
            return


# ---- 04 mnist sgd: train_epoch --------------------------------------------------------------------


@CATALOG.mutant("train_epoch", "forgot opt.zero_grad()")
def train_epoch_without_zero_grad(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
        opt.step()


@CATALOG.mutant("train_epoch", "called opt.step() 1 times for 4 batches: step once per batch")
def train_epoch_steps_once_per_epoch(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
    opt.step()
    opt.zero_grad()


@CATALOG.mutant("train_epoch", "ignored the loss_func argument: it was never called")
def train_epoch_ignores_loss_func(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model)
        opt.step()
        opt.zero_grad()


def _calc_grad_without_a_default_loss(xb, yb, model, loss_func=None):
    loss = loss_func(model(xb), yb)
    loss.backward()
    return loss


@CATALOG.mutant("train_epoch", "ignored the loss_func argument: it was never called")
def train_epoch_calc_grad_without_loss_func(model, dl, opt, loss_func=None):
    for xb, yb in dl:
        _calc_grad_without_a_default_loss(xb, yb, model)  # loss_func not passed on: calc_grad calls None
        opt.step()
        opt.zero_grad()


@CATALOG.mutant("train_epoch", "called with no gradient")
def train_epoch_zero_grad_before_step(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        ms.calc_grad(xb, yb, model, loss_func)
        opt.zero_grad()
        opt.step()


@CATALOG.mutant("train_epoch", "called opt.step() 1 times for 4 batches: step once per batch")
def train_epoch_first_batch_only(model, dl, opt, loss_func=ms.mnist_loss):
    xb, yb = next(iter(dl))
    ms.calc_grad(xb, yb, model, loss_func)
    opt.step()
    opt.zero_grad()


# ---- 04 mnist sgd: train_model --------------------------------------------------------------------


@CATALOG.mutant("train_model", "returned 2 accuracies for 3 epochs")
def train_model_one_epoch_short(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs - 1):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "returned 4 accuracies for 3 epochs")
def train_model_one_epoch_too_many(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs + 1):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "return the list of accuracies")
def train_model_returns_last_accuracy(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
    return ms.validate_epoch(model, valid_dl)


@CATALOG.mutant("train_model", "never called step() on the opt it was given")
def train_model_makes_its_own_optimizer(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    opt = ms.BasicOptim(model.parameters(), 1.0)
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "forgot opt.zero_grad()")
def train_model_inline_loop_without_zero_grad(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        for xb, yb in dl:
            ms.calc_grad(xb, yb, model, loss_func)
            opt.step()
        history.append(ms.validate_epoch(model, valid_dl))
    return history


# Named on synthetic data too ("never trained"); still real_data, because test_no_sample.py needs one
# train_model mutant that runs the real-sample check's "could not run" path.
@CATALOG.mutant("train_model", "never trained: the parameters did not change", real_data=True)
def train_model_never_trains(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "ignored the loss_func argument: it was never called")
def train_model_ignores_loss_func(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "trained only one epoch of 3")
def train_model_trains_only_the_first_epoch(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for epoch in range(epochs):
        if epoch == 0:
            ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "measured the accuracy on the training batches")
def train_model_validates_on_training_batches(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, dl))
    return history


@CATALOG.mutant("train_model", "ignored the dl it was given")
def train_model_reads_the_global_dl(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, [_on_device_of(model, *batch) for batch in DL], opt, loss_func)
        history.append(ms.validate_epoch(model, valid_dl))
    return history


@CATALOG.mutant("train_model", "ignored the valid_dl it was given")
def train_model_reads_the_global_valid_dl(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        history.append(ms.validate_epoch(model, [_on_device_of(model, *batch) for batch in VALID_DL]))
    return history


# ==== alternatives =================================================================================

@CATALOG.alternative("sigmoid")
def sigmoid_torch(x):
    return torch.sigmoid(x)


@CATALOG.alternative("sigmoid")
def sigmoid_method(x):
    return x.sigmoid()


@CATALOG.alternative("sigmoid")
def sigmoid_exp_over_one_plus_exp(x):
    return torch.exp(x) / (1 + torch.exp(x))


@CATALOG.alternative("sigmoid")
def sigmoid_via_tanh(x):
    return 0.5 * (torch.tanh(x / 2) + 1)


@CATALOG.alternative("sigmoid")
def sigmoid_special_expit(x):
    return torch.special.expit(x)


@CATALOG.alternative("mnist_loss")
def mnist_loss_arithmetic_masks(predictions, targets):
    p = torch.sigmoid(predictions)
    return (targets * (1 - p) + (1 - targets) * p).mean()


@CATALOG.alternative("mnist_loss")
def mnist_loss_distance_to_target(predictions, targets):
    return (targets - predictions.sigmoid()).abs().mean()


@CATALOG.alternative("mnist_loss")
def mnist_loss_where_on_zero(predictions, targets):
    p = predictions.sigmoid()
    return torch.mean(torch.where(targets == 0, p, 1 - p))


@CATALOG.alternative("calc_grad")
def calc_grad_fastbook_returning_the_loss(xb, yb, model, loss_func=ms.mnist_loss):
    preds = model(xb)
    loss = loss_func(preds, yb)
    loss.backward()
    return loss


@CATALOG.alternative("calc_grad")
def calc_grad_walrus(xb, yb, model, loss_func=ms.mnist_loss):
    (loss := loss_func(model(xb), yb)).backward()
    return loss


@CATALOG.alternative("batch_accuracy")
def batch_accuracy_raw_compared_with_zero(xb, yb):
    return ((xb > 0) == yb).float().mean()


@CATALOG.alternative("batch_accuracy")
def batch_accuracy_round(xb, yb):
    return (torch.sigmoid(xb).round() == yb).float().mean()


@CATALOG.alternative("batch_accuracy")
def batch_accuracy_count_over_len(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).sum() / len(yb)


@CATALOG.alternative("BasicOptim")
class BasicOptimNoGradAndZero_:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        with torch.no_grad():
            for p in self.params:
                p -= p.grad * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad.zero_()


@CATALOG.alternative("BasicOptim")
class BasicOptimTupleAndSub_:
    def __init__(self, params, lr):
        self.lr = lr
        self.params = tuple(params)

    @torch.no_grad()
    def step(self, *args, **kwargs):
        for p in self.params:
            p.sub_(self.lr * p.grad)

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


@CATALOG.alternative("train_epoch")
def train_epoch_zero_grad_first(model, dl, opt, loss_func=ms.mnist_loss):
    for xb, yb in dl:
        opt.zero_grad()
        ms.calc_grad(xb, yb, model, loss_func)
        opt.step()


@CATALOG.alternative("train_epoch")
def train_epoch_zero_grad_first_with_a_counter(model, dl, opt, loss_func=ms.mnist_loss):
    for i, (xb, yb) in enumerate(dl):
        opt.zero_grad()
        ms.calc_grad(xb, yb, model, loss_func)
        opt.step()
    return i + 1


@CATALOG.alternative("train_epoch")
def train_epoch_inline_calc_grad(model, dl, opt, loss_func=ms.mnist_loss):
    for batch in dl:
        xb, yb = batch
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()


@CATALOG.alternative("train_model")
def train_model_accuracy_over_all_predictions(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    history = []
    for _ in range(epochs):
        ms.train_epoch(model, dl, opt, loss_func)
        with torch.no_grad():
            preds = torch.cat([model(xb) for xb, _ in valid_dl])
            targets = torch.cat([yb for _, yb in valid_dl])
        history.append(ms.batch_accuracy(preds, targets).item())
    return history


@CATALOG.alternative("train_model")
def train_model_comprehension(model, dl, valid_dl, opt, epochs, loss_func=ms.mnist_loss):
    def one_epoch():
        ms.train_epoch(model, dl, opt, loss_func)
        return ms.validate_epoch(model, valid_dl)

    return [one_epoch() for _ in range(epochs)]


test_mutant_loses_points_with_its_own_named_mistake, test_alternative_passes_every_check = CATALOG.tests()
