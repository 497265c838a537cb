"""Hidden checks: compare a student's functions with the reference, in values and gradients.

A notebook's hidden test block calls ``check``::

    from autograder.checks import check
    check("mnist_loss", points=4, mnist_loss=mnist_loss)

It prints one line per check and returns the points earned, so nbgrader gives partial credit.
"""

from __future__ import annotations

from typing import Any

import torch

from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult
from autograder.checks.runner import known_blanks, run_checks

__all__ = ["BlankReport", "CheckResult", "check", "known_blanks", "run_checks"]


def check(blank: str, points: float, *, device: str | torch.device | None = None, **objects: Any) -> float:
    """Run the hidden checks of ``blank`` on the student's ``objects``, print the report, return the points.

    Args:
        blank: the blank's name, as in the notebook (e.g. ``"mse"``).
        points: the blank's maximum points (the test cell's nbgrader points).
        device: where checks build tensors; defaults to ``autograder.device.get_device()``.
        **objects: the student's functions or classes the blank asks for, by their notebook names.

    Returns:
        The points earned, ``points * passed / total``, as a float (nbgrader's partial credit).
    """
    report = run_checks(blank, points, objects, device)
    print(format_report(report))
    return report.score
