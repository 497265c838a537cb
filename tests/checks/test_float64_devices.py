"""On a device without float64 (Apple's MPS), no check builds a float64 tensor on that device.

This machine has no MPS, so the test stands one in: the ``meta`` device, with ``device_for`` told that ``meta``
has no float64, exactly as it treats ``mps``. Each blank's checks run there against the reference; a
``TorchDispatchMode`` records every operation whose result is a float64 tensor on ``meta``. Checks stop at their
first operation that needs real values (meta tensors have none), so this covers what each check builds up to
that point: its inputs, which is where float64 tensors are made.
"""

from __future__ import annotations


import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import autograder.checks.compare as compare
from autograder.checks import known_blanks
from autograder.checks.runner import run_checks
from autograder.reference import gradient_descent, linear_regression, mnist_sgd, pixel_similarity

REFERENCES = {
    "gradient_descent": gradient_descent, "linear_regression": linear_regression,
    "pixel_similarity": pixel_similarity, "mnist_sgd": mnist_sgd,
}
META = torch.device("meta")


class Float64On(TorchDispatchMode):
    """Records the operations that return a float64 tensor on ``device``."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device, self.seen = device, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.device == self.device:
                self.seen.append(str(func))
        return out


def _without_float64_on_meta(dtype, device):
    device = torch.device(device)
    return torch.device("cpu") if dtype == torch.float64 and device.type in ("mps", "meta") else device


@pytest.mark.parametrize("blank", sorted(known_blanks()))
def test_no_check_builds_float64_on_a_device_without_float64(blank, monkeypatch):
    monkeypatch.setattr(compare, "device_for", _without_float64_on_meta)
    for module in list(__import__("sys").modules.values()):
        if getattr(module, "device_for", None) is not None and module.__name__.startswith("autograder.checks"):
            monkeypatch.setattr(module, "device_for", _without_float64_on_meta)
    monkeypatch.setattr("autograder.checks.runner.get_device", lambda device=None: META)
    reference = getattr(REFERENCES[known_blanks()[blank]], blank)
    with Float64On(META) as mode:
        run_checks(blank, 1.0, {blank: reference})
    assert not mode.seen, f"the checks of {blank} built float64 tensors on the device: {sorted(set(mode.seen))[:5]}"
