"""Shared fixtures: a temporary FASTAI_HOME for the whole session, the real MNIST sample, devices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.data import ARCHIVE_ENV_VAR, DataError, MnistSample, load_mnist_sample, provision_mnist_sample, synthetic_mnist
from autograder.device import available_devices

REPO_ROOT = Path(__file__).resolve().parent.parent


def _clear_fastai_config_cache() -> None:
    try:
        from fastai.data.external import fastai_cfg
    except ImportError:
        return
    fastai_cfg.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def fastai_home(tmp_path_factory: pytest.TempPathFactory):
    """Every test runs with FASTAI_HOME in a temporary folder, never the user's ~/.fastai.

    The real sample is provisioned there up front when ``$MNIST_SAMPLE_ARCHIVE`` names it.
    """
    home = tmp_path_factory.mktemp("fastai_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("FASTAI_HOME", str(home))
    _clear_fastai_config_cache()
    if os.environ.get(ARCHIVE_ENV_VAR):
        try:
            provision_mnist_sample(os.environ[ARCHIVE_ENV_VAR], home=home)
        except DataError:
            pass  # the tests that need it skip with the reason
    yield home
    patch.undo()
    _clear_fastai_config_cache()


@pytest.fixture(scope="session")
def mnist_folder(fastai_home: Path) -> Path:
    """The provisioned real MNIST sample; skips when no archive is given (set MNIST_SAMPLE_ARCHIVE)."""
    archive = os.environ.get(ARCHIVE_ENV_VAR)
    if not archive:
        pytest.skip(f"the real MNIST sample is needed: set {ARCHIVE_ENV_VAR} to mnist_sample.tgz (see README)")
    try:
        return provision_mnist_sample(archive, home=fastai_home)
    except DataError as error:
        pytest.skip(f"the real MNIST sample could not be provisioned: {error}")


@pytest.fixture(scope="session")
def mnist(mnist_folder: Path) -> MnistSample:
    """The real MNIST sample as tensors on the CPU."""
    return load_mnist_sample(mnist_folder)


@pytest.fixture(scope="session")
def tiny_mnist() -> MnistSample:
    """The small deterministic synthetic stand-in, for unit tests that need no real data."""
    return synthetic_mnist(64, seed=0)


DEVICES = [
    pytest.param(device, id=device) for device in ("cpu", "cuda", "mps")
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each device type; GPU cases skip where no such device exists."""
    if request.param not in available_devices():
        pytest.skip(f"no {request.param} device here")
    return request.param
