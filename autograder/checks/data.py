"""The data the MNIST checks use: the real sample when it can be provisioned, loaded once per process."""

from __future__ import annotations

import pytest
import torch

from autograder.data import DataError, MnistSample, load_mnist_sample, mnist_sample_dir

_loaded: dict[str, MnistSample] = {}


def real_sample(device) -> MnistSample:
    """The real MNIST sample on ``device``; skips the calling check (it does not count) when unavailable.

    A successful load is kept for the rest of the process; a failure is retried on the next call.
    """
    try:
        return _load().to(device)
    except DataError as error:
        pytest.skip(f"the MNIST sample is not available to the grader: {error}")


def _load() -> MnistSample:
    """The sample on the CPU, loaded on the first call that succeeds; raises ``DataError`` when it cannot be."""
    if "cpu" not in _loaded:
        _loaded["cpu"] = load_mnist_sample()
    return _loaded["cpu"]


def preload_real_sample() -> bool:
    """Load the real sample now when it is already provisioned (never provisions or downloads); True if loaded.

    The checkers' fork server calls this, so that every checker forked from it shares the loaded tensors
    instead of reading them again for its ``train_model`` check. It runs on one math thread: a process that
    forks must not have started OpenMP's worker threads, or its children hang in their first parallel operation.
    """
    if "cpu" not in _loaded and mnist_sample_dir().is_dir():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _load()
        except DataError:
            return False
        finally:
            torch.set_num_threads(threads)
    return "cpu" in _loaded
