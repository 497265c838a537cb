"""The feedback's training curves come from the run that grades train_model, and show the student's loss next to the
reference's on the same predictions: a wrong loss reads far from the reference's line, a right one on it."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import run_checks
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.checks.training_curves import calibrated_run, curves_of, feedback_curves, matches_reference_loss
from autograder.data import load_mnist_sample
from autograder.reference import mnist_sgd as ref

pytestmark = [pytest.mark.mnist_sgd, pytest.mark.real_data]


def loss_without_sigmoid(predictions, targets):
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


@pytest.fixture(scope="module")
def sample(mnist_folder):
    return load_mnist_sample(mnist_folder)


@pytest.fixture(scope="module")
def reference_run(sample):
    return calibrated_run(sample, torch.device("cpu"), ref.train_model)


def test_the_run_is_the_calibrated_one_and_reaches_its_accuracy(reference_run):
    assert len(reference_run.epochs) == TRAIN_MODEL.epochs
    assert reference_run.final_accuracy >= TRAIN_MODEL.threshold
    predictions, targets = reference_run.epochs[0]
    assert predictions.shape == targets.shape and predictions.shape[0] > 10_000  # the whole training set, once per epoch


def test_a_right_loss_lies_on_the_reference_line_and_a_wrong_one_far_from_it(reference_run):
    right = curves_of(reference_run, lambda p, t: ref.mnist_loss(p, t) * 1.0)
    wrong = curves_of(reference_run, loss_without_sigmoid)
    assert right["loss_name"] == wrong["loss_name"] == "your mnist_loss"
    assert right["train_loss"] == pytest.approx(right["reference_loss"], rel=1e-6)
    assert all(abs(w - r) > 0.1 for w, r in zip(wrong["train_loss"], wrong["reference_loss"])), wrong
    assert len(wrong["train_loss"]) == len(wrong["valid_accuracy_returned"]) == TRAIN_MODEL.epochs
    assert "3 epochs" in wrong["run"] and "the notebook trains 20 epochs" in wrong["run"]
    assert "with your mnist_loss and with the reference mnist_loss" in wrong["run"]


def test_a_loss_that_raises_leaves_gaps_not_a_crash(reference_run):
    def broken(predictions, targets):
        raise RuntimeError("not yet")

    curves = curves_of(reference_run, broken)
    assert curves["train_loss"] == [None] * TRAIN_MODEL.epochs
    assert all(value is not None for value in curves["reference_loss"])


def test_without_a_loss_of_the_students_the_reference_loss_is_named(reference_run):
    curves = curves_of(reference_run, None)
    assert curves["loss_name"] == "the reference mnist_loss" and curves["train_loss"] == curves["reference_loss"]


def test_the_check_records_the_students_loss_in_its_artifact(mnist_folder):
    report = run_checks("train_model", 3.0, {"train_model": ref.train_model, "mnist_loss": loss_without_sigmoid}, device="cpu")
    curves = report.artifacts["curves"]
    assert report.score == 3.0, "a wrong mnist_loss never costs train_model points"
    assert curves["loss_name"] == "your mnist_loss"
    assert abs(curves["train_loss"][-1] - curves["reference_loss"][-1]) > 0.1


def test_the_reference_curves_name_the_reference(mnist_folder):
    curves = feedback_curves(load_mnist_sample(mnist_folder), torch.device("cpu"), ref.train_model, ref.mnist_loss)
    assert curves["run"].startswith("The reference train_model") and curves["loss_name"] == "the reference mnist_loss"


RIGHT_LOSSES = {
    "the reference's formula": lambda p, t: torch.where(t == 1, 1 - torch.sigmoid(p), torch.sigmoid(p)).mean(),
    "a distance": lambda p, t: (p.sigmoid() - t).abs().mean(),
    "a sum over the count": lambda p, t: torch.where(t == 1, 1 - p.sigmoid(), p.sigmoid()).sum() / len(t),
}
WRONG_LOSSES = {
    "no sigmoid": loss_without_sigmoid,
    "a sum": lambda p, t: torch.where(t == 1, 1 - p.sigmoid(), p.sigmoid()).sum(),
    "targets swapped": lambda p, t: torch.where(t == 0, 1 - p.sigmoid(), p.sigmoid()).mean(),
    "a Python float": lambda p, t: ref.mnist_loss(p, t).detach().item(),
    "detached": lambda p, t: ref.mnist_loss(p, t).detach(),
    "a gradient cut at the sigmoid": lambda p, t: torch.where(t == 1, 1 - p.sigmoid().detach() + 0 * p, p.sigmoid()).mean(),
    "one value per row": lambda p, t: torch.where(t == 1, 1 - p.sigmoid(), p.sigmoid()),
    "right for full batches only": lambda p, t: ref.mnist_loss(p, t) * (1.0 if len(p) == 256 else 2.0),
    "raises": lambda p, t: 1 / 0,
}


@pytest.mark.parametrize("name", RIGHT_LOSSES)
def test_a_loss_with_the_references_values_and_gradients_may_train_the_run(sample, name):
    assert matches_reference_loss(RIGHT_LOSSES[name], sample.xy("train")[1], torch.device("cpu"))


@pytest.mark.parametrize("name", WRONG_LOSSES)
def test_a_wrong_loss_never_trains_the_run(sample, name):
    assert not matches_reference_loss(WRONG_LOSSES[name], sample.xy("train")[1], torch.device("cpu"))


def test_the_run_trains_with_a_right_student_loss_and_says_so(sample, reference_run):
    calls = []

    def counted(predictions, targets):
        calls.append(len(predictions))
        return ref.mnist_loss(predictions, targets)

    run = calibrated_run(sample, torch.device("cpu"), ref.train_model, counted)
    assert run.own_loss and len(calls) > TRAIN_MODEL.epochs * 48  # the probes, then every training batch
    assert run.final_accuracy == reference_run.final_accuracy  # the same loss: the same training, bit for bit
    for (p, t), (q, u) in zip(run.epochs, reference_run.epochs, strict=True):
        assert torch.equal(p, q) and torch.equal(t, u)
    assert "and your mnist_loss, which matches the reference's (the run that grades" in curves_of(run, counted)["run"]


def test_the_run_trains_with_the_reference_loss_when_the_students_is_wrong(sample, reference_run):
    calls = []

    def counted(predictions, targets):
        calls.append(len(predictions))
        return loss_without_sigmoid(predictions, targets)

    run = calibrated_run(sample, torch.device("cpu"), ref.train_model, counted)
    assert not run.own_loss and len(calls) == 1  # the first probe only
    assert run.final_accuracy == reference_run.final_accuracy
    assert "and the reference mnist_loss (the run that grades" in curves_of(run, counted)["run"]


@pytest.mark.parametrize("name", RIGHT_LOSSES)
def test_a_right_student_loss_moves_the_runs_accuracy_far_less_than_its_spread(sample, reference_run, name):
    """What ``thresholds.py`` says of a student's loss training the run: its rounding costs no student the bar."""
    run = calibrated_run(sample, torch.device("cpu"), ref.train_model, RIGHT_LOSSES[name])
    assert run.own_loss
    assert abs(run.final_accuracy - reference_run.final_accuracy) < TRAIN_MODEL.std / 3
