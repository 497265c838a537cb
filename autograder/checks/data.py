"""The data the MNIST checks use: the real sample when it is provisioned, loaded once per process.

The checks never download it: a check that needs it while it is missing fails with a "could not run" message
(it counts against the blank, so the blank can never get full points), and ``autograder grade`` and
``autograder validate`` refuse to start (``require_sample``).
"""

from __future__ import annotations

import os

from autograder.data import (
    ARCHIVE_ENV_VAR,
    DataError,
    MnistSample,
    check_layout,
    load_mnist_sample,
    mnist_sample_dir,
    provision_mnist_sample,
)

NOT_PROVISIONED = "the MNIST sample is not provisioned; run `autograder provision`"
"""Why a check on the real sample could not run, and what the instructor does about it."""

COULD_NOT_RUN = "could not run"
"""How the message of a check that could not run starts; such a check counts as failed."""

DETAIL_LIMIT = 120

_loaded: dict[str, MnistSample] = {}


class CheckCouldNotRun(Exception):
    """Raised inside a check that cannot run (e.g. the sample is missing); the runner records a failed check."""


def real_sample(device) -> MnistSample:
    """The real MNIST sample on ``device``; fails the calling check ("could not run") when it is not provisioned.

    A check that cannot run counts as failed, never as skipped: a blank whose checks on the real sample
    could not run keeps the points of its other checks but can never get full points. Never downloads.
    A successful load is kept for the rest of the process; a failure is retried on the next call.
    """
    try:
        return _load().to(device)
    except DataError as error:
        detail = str(error)
        detail = detail if len(detail) <= DETAIL_LIMIT else detail[: DETAIL_LIMIT - 3] + "..."
        raise CheckCouldNotRun(f"{COULD_NOT_RUN}: {NOT_PROVISIONED} ({detail})") from None


def _load() -> MnistSample:
    """The sample on the CPU, loaded on the first call that succeeds; raises ``DataError`` when it cannot be.

    Uses the provisioned folder, or provisions it from ``$MNIST_SAMPLE_ARCHIVE`` (a local copy); never downloads.
    """
    if "cpu" not in _loaded:
        folder = mnist_sample_dir()
        if not folder.is_dir() and os.environ.get(ARCHIVE_ENV_VAR):
            folder = provision_mnist_sample()
        _loaded["cpu"] = load_mnist_sample(folder)
    return _loaded["cpu"]


def require_sample(assignment: str) -> None:
    """Raise ``DataError`` when ``assignment``'s checks need the real sample and it is not provisioned.

    Grading without it would score every submission below full points ("could not run"), so a batch
    refuses to start instead. Never provisions or downloads.
    """
    from autograder.checks.declared import assignment_needs_sample

    if not assignment_needs_sample(assignment):
        return
    try:
        check_layout(mnist_sample_dir())
    except DataError as error:
        raise DataError(
            f"{assignment} needs the MNIST sample: {NOT_PROVISIONED} (or pass --data / set {ARCHIVE_ENV_VAR}); {error}"
        ) from error


def preload_real_sample() -> bool:
    """Load the real sample now when it is already provisioned (never provisions or downloads); True if loaded.

    The checkers' fork server calls this, so that every checker forked from it shares the loaded tensors
    instead of reading them again for its ``train_model`` check. It runs on one math thread: a process that
    forks must not have started OpenMP's worker threads, or its children hang in their first parallel operation.
    """
    if "cpu" not in _loaded and mnist_sample_dir().is_dir():
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _load()
        except DataError:
            return False
        finally:
            torch.set_num_threads(threads)
    return "cpu" in _loaded
