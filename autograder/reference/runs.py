"""The lesson's full training runs with the reference solution, for bars, calibration and the demo.

Each run takes the data and a seed explicitly and returns a ``RunResult``; nothing prints here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from autograder.data import MnistSample
from autograder.device import seed_everything
from autograder.reference import mnist_sgd, pixel_similarity
from autograder.reference.mnist_sgd import BasicOptim, Linear1, TensorBatches

LINEAR1_EPOCHS, LINEAR1_LR = 20, 1.0
NN_LINEAR_EPOCHS, NN_LINEAR_LR = 20, 1.0
SIMPLE_NET_EPOCHS, SIMPLE_NET_LR = 40, 0.1


@dataclass
class RunResult:
    """One training run: the validation accuracy after each epoch, the final parameters and the CPU time."""

    name: str
    seed: int
    accuracies: list[float]
    params: list[Tensor] = field(repr=False)
    cpu_seconds: float

    @property
    def final_accuracy(self) -> float:
        return self.accuracies[-1]


def batches_for(sample: MnistSample, seed: int, batch_size: int = mnist_sgd.BATCH_SIZE) -> tuple[TensorBatches, TensorBatches]:
    """Shuffled training batches (order fixed by ``seed``) and in-order validation batches."""
    train_x, train_y = sample.xy("train")
    valid_x, valid_y = sample.xy("valid")
    gen = torch.Generator().manual_seed(seed)
    return (
        TensorBatches(train_x, train_y, batch_size, shuffle=True, generator=gen),
        TensorBatches(valid_x, valid_y, batch_size),
    )


def _train(name: str, model, sample: MnistSample, seed: int, lr: float, epochs: int) -> RunResult:
    start = time.process_time()
    dl, valid_dl = batches_for(sample, seed)
    params = mnist_sgd.params_of(model)
    history = mnist_sgd.train_model(model, dl, valid_dl, BasicOptim(params, lr), epochs)
    return RunResult(name, seed, history, [p.detach().clone() for p in params], time.process_time() - start)


def train_linear1(sample: MnistSample, seed: int = 42, lr: float = LINEAR1_LR, epochs: int = LINEAR1_EPOCHS) -> RunResult:
    """``linear1`` with ``init_params`` weights, trained by ``BasicOptim`` (fastbook: 0.9696 after 20 epochs)."""
    device = sample.images["train", "3"].device
    seed_everything(seed)
    model = Linear1(mnist_sgd.init_params((28 * 28, 1), device=device), mnist_sgd.init_params(1, device=device))
    return _train("linear1", model, sample, seed, lr, epochs)


def train_nn_linear(sample: MnistSample, seed: int = 42, lr: float = NN_LINEAR_LR, epochs: int = NN_LINEAR_EPOCHS) -> RunResult:
    """``nn.Linear(784, 1)`` trained by ``BasicOptim`` (fastbook: 0.9785 after 20 epochs)."""
    seed_everything(seed)
    model = nn.Linear(28 * 28, 1).to(sample.images["train", "3"].device)
    return _train("nn_linear", model, sample, seed, lr, epochs)


def train_simple_net(sample: MnistSample, seed: int = 42, lr: float = SIMPLE_NET_LR, epochs: int = SIMPLE_NET_EPOCHS) -> RunResult:
    """``simple_net`` (784 -> 30 -> ReLU -> 1) trained by ``BasicOptim`` (fastbook: 0.9828 with a Learner)."""
    seed_everything(seed)
    model = mnist_sgd.simple_net().to(sample.images["train", "3"].device)
    return _train("simple_net", model, sample, seed, lr, epochs)


def pixel_similarity_accuracy(sample: MnistSample) -> RunResult:
    """The baseline: distance to the mean training 3 and 7 (fastbook: 0.9511 on the validation set)."""
    start = time.process_time()
    mean3 = pixel_similarity.mean_digit(sample.stack("train", "3"))
    mean7 = pixel_similarity.mean_digit(sample.stack("train", "7"))
    accuracy = pixel_similarity.validation_accuracy(sample.stack("valid", "3"), sample.stack("valid", "7"), mean3, mean7)
    return RunResult("pixel_similarity", 0, [accuracy], [mean3, mean7], time.process_time() - start)


ALL_RUNS = (pixel_similarity_accuracy, train_linear1, train_nn_linear, train_simple_net)


@dataclass(frozen=True)
class RunRow:
    """One line of the reference report: a run's final accuracy against the lesson's bar."""

    name: str
    accuracy: float
    bar: float
    epochs: int
    cpu_seconds: float

    @property
    def meets_bar(self) -> bool:
        return self.accuracy >= self.bar


BARS = {"pixel_similarity": 0.95, "linear1": 0.96, "nn_linear": 0.975, "simple_net": 0.975}
"""The lesson's accuracies that the reference must reach (fastbook: 0.9511, 0.9696, 0.9785, 0.9828)."""


def report_runs(folder, device=None, seed: int = 42) -> list[RunRow]:
    """Load the sample from ``folder`` onto ``device`` and run every lesson run once with ``seed``."""
    from autograder.data import load_mnist_sample
    from autograder.device import get_device

    sample = load_mnist_sample(folder, device=get_device(device))
    results = [pixel_similarity_accuracy(sample)] + [run(sample, seed=seed) for run in ALL_RUNS[1:]]
    return [RunRow(r.name, r.final_accuracy, BARS[r.name], len(r.accuracies) if r.name != "pixel_similarity" else 0, r.cpu_seconds) for r in results]
