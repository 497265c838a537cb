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

__all__ = ["REPORT_MIME_TYPE", "BlankReport", "CheckResult", "check", "known_blanks", "run_checks"]


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
    _attach_report(report)
    return report.score


REPORT_MIME_TYPE = "application/vnd.autograder.report+json"
"""The output type under which a test cell carries its full report, for exports and feedback."""


def _attach_report(report: BlankReport) -> None:
    """Inside a Jupyter kernel, add the report as a display output (invisible in the notebook UI)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display({REPORT_MIME_TYPE: report.to_json()}, raw=True)
