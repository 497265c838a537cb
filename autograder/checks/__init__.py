"""Hidden checks: compare a student's functions with the reference, in values and gradients.

A notebook's hidden test block calls ``check``::

    from autograder.checks import check
    check("mnist_loss", points=4, mnist_loss=mnist_loss)

It prints one line per check and returns the points earned, so nbgrader gives partial credit.

Which ``check`` that line gets depends on how the notebook runs:

- in hardened grading (``autograder grade``) the student's kernel cannot import this package: the line gets
  the shim of ``autograder/grading/sandbox/check_shim.py``, which sends the blank and the student's objects
  over the data-only channel (``sandbox/peer.py``) to the trusted checker (``sandbox/checker.py``); the checker
  runs ``run_checks`` against proxies of those objects and saves the report the grade is taken from;
- everywhere else (plain ``nbgrader autograde``, the instructor's own notebook runs, the tests) it gets the
  ``check`` below, which runs the checks in the calling process.

The checks of an assignment live in the module (or package, one module per blank) named after it:
``gradient_descent``, ``linear_regression``, ``pixel_similarity``, ``mnist_sgd`` (see ``runner``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, CheckResult

if TYPE_CHECKING:
    import torch

    from autograder.checks.runner import known_blanks, run_checks

__all__ = ["REPORT_MIME_TYPE", "BlankReport", "CheckResult", "check", "known_blanks", "run_checks"]
_RUNNER_NAMES = ("known_blanks", "run_checks")


def __getattr__(name: str) -> Any:
    """``known_blanks`` and ``run_checks``, from ``runner`` when first asked for: it imports torch and pytest,
    which a process that only reads reports (``REPORT_MIME_TYPE``, ``BlankReport``) does not need."""
    if name in _RUNNER_NAMES:
        from autograder.checks import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check(blank: str, points: float, *, device: str | torch.device | None = None, **objects: Any) -> float:
    """Run the hidden checks of ``blank`` on the student's ``objects`` in this process, print the report, return
    the points. (In hardened grading the notebook gets the shim of ``sandbox/check_shim.py`` instead: see above.)

    Args:
        blank: the blank's name, as in the notebook (e.g. ``"mse"``).
        points: the blank's maximum points (the test cell's nbgrader points).
        device: where checks build tensors; defaults to ``autograder.device.get_device()``.
        **objects: the student's functions or classes the blank asks for, by their notebook names.

    Returns:
        The points earned, ``points * passed / total``, as a float (nbgrader's partial credit).
    """
    from autograder.checks.runner import run_checks

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
