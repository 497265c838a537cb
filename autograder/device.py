"""Device selection and seeding: one place that decides where tensors live and how runs repeat."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_ENV_VAR = "AUTOGRADER_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Return the device types usable here, always including ``"cpu"`` (e.g. ``["cuda", "cpu"]``)."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if _mps_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the device for reference tensors.

    Args:
        device: an explicit choice (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); wins over everything.

    Returns:
        ``device`` if given, else the value of ``$AUTOGRADER_DEVICE`` if set, else the first of
        cuda, mps, cpu that is available.

    Raises:
        ValueError: if the requested device is not a valid torch device or is not available here.
    """
    requested = device if device is not None else os.environ.get(DEVICE_ENV_VAR) or None
    if requested is None:
        return torch.device(available_devices()[0])
    try:
        chosen = torch.device(requested)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{requested!r} is not a torch device (from {DEVICE_ENV_VAR} or device=)") from error
    if chosen.type not in available_devices():
        raise ValueError(
            f"device {str(chosen)!r} was requested but is not available here; available: {available_devices()}"
        )
    return chosen


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (every device) so that a run can be repeated exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """Return a torch random generator on ``device`` seeded with ``seed``, independent of the global one."""
    return torch.Generator(device=device).manual_seed(seed)
