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
