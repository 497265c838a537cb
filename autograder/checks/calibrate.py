"""Calibrate the training thresholds of the hidden checks from the reference solution.

Run ``python -m autograder.checks.calibrate`` (with the MNIST sample provisioned) and copy the printed
``Threshold(...)`` into ``thresholds.py``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from autograder.data import MnistSample, load_mnist_sample


@dataclass(frozen=True)
class Threshold:
    """An accuracy bar derived from reference runs: ``threshold = mean - k * std`` over ``seeds``.

    Attributes:
        epochs, lr: the training setting the check uses.
        check_seed: the seed the check itself trains with.
        seeds: how many reference runs (seeds 0..seeds-1) the numbers come from.
        mean, std, minimum: the reference's final validation accuracies over those runs.
        k: how many standard deviations below the mean the bar sits.
        threshold: the bar itself.
    """

    epochs: int
    lr: float
    check_seed: int
    seeds: int
    mean: float
    std: float
    minimum: float
    k: float
    threshold: float


def calibrate_train_model(sample: MnistSample, epochs: int, lr: float, seeds: int = 10, k: float = 3.0) -> Threshold:
    """Train the reference ``linear1`` with ``seeds`` seeds and derive the bar for ``train_model``.

    The check itself trains with the seed whose final accuracy is nearest the mean, so that a correct
    loop lands mid-distribution, about ``k`` standard deviations above the bar, rather than at an edge.
    """
    from autograder.reference.runs import train_linear1  # torch: not for a process that only reads the thresholds

    finals = [train_linear1(sample, seed=seed, lr=lr, epochs=epochs).final_accuracy for seed in range(seeds)]
    mean, std = statistics.mean(finals), statistics.stdev(finals)
    check_seed = min(range(seeds), key=lambda seed: abs(finals[seed] - mean))
    return Threshold(epochs, lr, check_seed, seeds, round(mean, 5), round(std, 5), round(min(finals), 5), k, round(mean - k * std, 4))


if __name__ == "__main__":
    print(calibrate_train_model(load_mnist_sample(), epochs=3, lr=1.0))
