"""Measure the CPU cost of every hidden check of one assignment, as a grading kernel pays it.

``python -m autograder.checks.bench [module]`` (default ``mnist_sgd``) imports torch and the check modules
first (a notebook has imported torch long before its test cells run), then times each blank with the
reference solution and prints CPU seconds per blank and in total.
"""

from __future__ import annotations

import sys
import time
from importlib import import_module

from autograder.checks import run_checks


def time_blanks(module_name: str) -> dict[str, float]:
    """CPU seconds of each blank's checks for ``module_name``, the reference as the student."""
    reference = import_module(f"autograder.reference.{module_name}")
    checks = import_module(f"autograder.checks.{module_name}")
    seconds = {}
    for blank in checks.BLANKS:
        start = time.process_time()
        report = run_checks(blank, 1.0, {blank: getattr(reference, blank)})
        seconds[blank] = time.process_time() - start
        if report.score != 1.0:
            raise SystemExit(f"{blank}: the reference did not pass: {report}")
    return seconds


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "mnist_sgd"
    figures = time_blanks(name)
    for blank, cpu in figures.items():
        print(f"{blank:22s} {cpu:6.2f} s CPU")
    print(f"{'total':22s} {sum(figures.values()):6.2f} s CPU")
