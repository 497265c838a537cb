"""The feedback's training curves come from the run that grades train_model, and show the student's loss next to the
reference's on the same predictions: a wrong loss reads far from the reference's line, a right one on it."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import run_checks
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.checks.training_curves import calibrated_run, curves_of, feedback_curves
from autograder.data import load_mnist_sample
from autograder.reference import mnist_sgd as ref

pytestmark = [pytest.mark.mnist_sgd, pytest.mark.real_data]


def loss_without_sigmoid(predictions, targets):
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


@pytest.fixture(scope="module")
def reference_run(mnist_folder):
    return calibrated_run(load_mnist_sample(mnist_folder), torch.device("cpu"), ref.train_model)


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
