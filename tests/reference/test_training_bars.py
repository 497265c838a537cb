"""The reference reaches the lesson's accuracies on the real MNIST sample, reproducibly."""

from __future__ import annotations

import pytest
import torch

from autograder.reference import runs

pytestmark = [pytest.mark.mnist_sgd]


def test_pixel_similarity_reaches_095(mnist):
    assert runs.pixel_similarity_accuracy(mnist).final_accuracy >= 0.95


@pytest.mark.parametrize("run, bar", [(runs.train_linear1, 0.96), (runs.train_nn_linear, 0.975), (runs.train_simple_net, 0.975)])
def test_training_reaches_the_lessons_accuracy(mnist, run, bar):
    result = run(mnist)
    assert result.final_accuracy >= bar, f"{result.name}: {result.final_accuracy:.4f} < {bar}"


def test_same_seed_gives_identical_parameters(mnist):
    first, second = runs.train_linear1(mnist, seed=3, epochs=2), runs.train_linear1(mnist, seed=3, epochs=2)
    assert all(torch.equal(a, b) for a, b in zip(first.params, second.params))
    other = runs.train_linear1(mnist, seed=4, epochs=2)
    assert not torch.equal(first.params[0], other.params[0])


def test_training_on_the_synthetic_fixture_learns(tiny_mnist):
    result = runs.train_nn_linear(tiny_mnist, seed=0, epochs=10, lr=0.3)
    assert result.final_accuracy >= 0.9
