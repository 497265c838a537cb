"""Every process that grades leaves out the slow optional import of ``autograder.startup``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.startup import SKIPPED_OPTIONAL_MODULES


@pytest.mark.parametrize("module", ["autograder.grading.executors", "autograder.grading.nbgrader_worker"])
def test_importing_a_grading_module_skips_the_slow_optional_imports(module):
    probe = f"import sys, {module}, nbformat; print([sys.modules.get(m, 'absent') for m in {SKIPPED_OPTIONAL_MODULES!r}])"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    assert shown.strip() == str([None] * len(SKIPPED_OPTIONAL_MODULES))


def test_the_checkers_warm_up_leaves_the_first_check_nothing_to_import():
    """The checker warms up while the kernel starts; the first test cell then pays no first-run imports."""
    probe = (
        "import sys\n"
        "from autograder.checks.runner import known_blanks, run_checks, warm_up\n"
        "from autograder.reference import mnist_sgd\n"
        "known_blanks(); warm_up(); before = set(sys.modules)\n"
        "report = run_checks('sigmoid', 1.0, {'sigmoid': mnist_sgd.sigmoid}, 'cpu')\n"
        "print(report.score, sorted(set(sys.modules) - before))\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True).stdout
    assert shown.strip() == "1.0 []"
