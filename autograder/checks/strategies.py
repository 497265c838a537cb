"""Hypothesis strategies and settings shared by every check module.

Values are bounded (no NaN, no infinity, |x| <= 10 unless stated) and shapes small, so a check costs
milliseconds; runs are derandomized, so a student sees the same verdict every time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis import strategies as st

from autograder.checks.compare import device_for

# Hypothesis keeps a `.hypothesis/` folder in the current directory by default; checks run inside
# students' folders, so keep it in the temporary directory instead.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "autograder-hypothesis"))

CHECK_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
"""Few, repeatable examples and no shrinking: the message, not the minimal counterexample, helps here."""

DTYPES = (torch.float32, torch.float64)

dtypes = st.sampled_from(DTYPES)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
lengths = st.integers(min_value=3, max_value=12)
"""At least 3 elements: with fewer, several wrong formulas give the same number and the message is ambiguous."""
vector_shapes = st.one_of(st.tuples(lengths), st.tuples(lengths, st.just(1)))
"""Shapes ``(n,)`` and ``(n, 1)``: the two layouts of a batch of scalars in the lesson."""

learning_rates = st.sampled_from([1e-3, 1e-2, 0.1, 0.5])
small_floats = st.floats(min_value=-5, max_value=5, allow_nan=False, allow_infinity=False)


def random_tensor(
    shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device, low: float = -3.0, high: float = 3.0
) -> torch.Tensor:
    """A reproducible uniform tensor in ``[low, high)`` of ``shape`` and ``dtype``, on ``device`` (on the CPU for
    float64 where ``device`` has no float64: see ``compare.device_for``)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low
    return values.to(dtype).to(device_for(dtype, device))
