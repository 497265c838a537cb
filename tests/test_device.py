"""Device selection: cuda, then mps, then cpu; overridable by argument and environment variable."""

from __future__ import annotations

import pytest
import torch

from autograder.device import DEVICE_ENV_VAR, available_devices, get_device


def test_default_is_the_first_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device().type == available_devices()[0]
    assert available_devices()[-1] == "cpu"


def test_cuda_is_preferred_when_present(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cuda"


def test_environment_variable_overrides(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device() == torch.device("cpu")


def test_argument_wins_over_environment(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "not-a-device")
    assert get_device("cpu") == torch.device("cpu")


def test_unavailable_or_invalid_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "not-a-device")
    with pytest.raises(ValueError, match="not a torch device"):
        get_device()
    if "cuda" not in available_devices():
        with pytest.raises(ValueError, match="not available"):
            get_device("cuda")


def test_no_hard_coded_cuda_calls():
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "autograder"
    offenders = [str(p) for p in package.rglob("*.py") if ".cuda()" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize(
    "dtype, device, expected",
    [
        (torch.float64, "mps", "cpu"),  # Apple's MPS has no float64: those cases of a check run on the CPU
        (torch.float32, "mps", "mps"),
        (torch.float64, "cuda", "cuda"),
        (torch.float64, "cpu", "cpu"),
        (torch.float32, "cuda:1", "cuda:1"),
    ],
)
def test_checks_build_float64_on_the_cpu_only_where_the_device_has_no_float64(dtype, device, expected):
    from autograder.checks.compare import device_for

    assert device_for(dtype, device) == torch.device(expected)
