"""Every process that grades leaves out the slow optional import of ``autograder.startup``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autograder.grading.sandbox.checker import CheckerConfig
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


def test_the_checkers_warm_up_leaves_hypothesis_no_module_to_read(mnist_folder):
    """Hypothesis reads the constants of every loaded module on a check's first draw (0.2 CPU s); after the
    warm-up, a checker forked from the fork server reads none, for every blank of the MNIST lesson (whose
    ``train_model`` checks train on the real sample)."""
    probe = (
        "import os, sys\n"
        "from autograder.checks.runner import known_blanks, run_checks, warm_up\n"
        "from autograder.reference import mnist_sgd\n"
        "from hypothesis.internal.conjecture import providers\n"
        "known_blanks(); warm_up()\n"
        "read = []\n"
        "reading = providers.is_local_module_file\n"
        "providers.is_local_module_file = lambda file: read.append(file) or reading(file)\n"
        "objects = {name: getattr(mnist_sgd, name) for name in mnist_sgd.__all__}\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    scores = [run_checks(b, 1.0, objects, 'cpu').score for b in "
        "['sigmoid', 'mnist_loss', 'calc_grad', 'batch_accuracy', 'BasicOptim', 'train_epoch', 'train_model']]\n"
        "    print(scores, len(read), flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True).stdout
    assert shown.strip() == f"{[1.0] * 7} 0"


def test_the_nbgrader_workers_warm_up_leaves_the_first_notebook_nothing_to_import_or_compile(tmp_path):
    """Forked nbgrader workers share what the warm-up did: reading, validating and grading a notebook then
    imports no module, compiles no schema validator and configures no mapper."""
    probe = (
        "import sys, nbformat, sqlalchemy.orm\n"
        "from nbformat import validator\n"
        "from autograder.grading import nbgrader_worker\n"
        "import autograder.nbgrader_api\n"
        "nbgrader_worker.warm_up(); before, compiled = set(sys.modules), set(validator.validators)\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "from jupyter_client.localinterfaces import localhost\n"
        "from nbgrader.api import Gradebook, Base\n"
        "unconfigured = [m.class_.__name__ for m in Base.registry.mappers if not m.configured]\n"
        "nb = nbformat.read('release/04_mnist_sgd/04_mnist_sgd.ipynb', as_version=4)\n"
        "nbformat.validate(nb); nbformat.validate(nb, relax_add_props=True)\n"
        "KernelSpecManager().find_kernel_specs(); localhost()\n"
        f"with Gradebook('sqlite:///{tmp_path / 'gradebook.db'}') as gradebook: gradebook.update_or_create_student('s1')\n"
        "print(sorted(set(sys.modules) - before), sorted(set(validator.validators) - compiled, key=str), unconfigured)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True).stdout
    assert shown.strip() == "[] [] []"


def test_a_kernels_first_check_waits_for_a_checker_that_starts_later(tmp_path):
    """The checker starts alongside the kernel; a check made before its socket exists waits, then runs."""
    config = tmp_path / "checker.json"
    CheckerConfig(str(tmp_path / "checker.sock"), str(tmp_path / "reports"), {"mse": 2.0}, "cpu").save(config)
    probe = f"""
import os, subprocess, sys, time
from autograder.grading.sandbox import kernel_boot, peer
from autograder.reference.gradient_descent import mse
late = "sleep 1; exec " + sys.executable + " -m autograder.grading.sandbox.checker {config}"
checker = subprocess.Popen(["sh", "-c", late])
log_fd = os.open({str(tmp_path / "violations.log")!r}, os.O_WRONLY | os.O_CREAT)
kernel_boot._install_shims({str(tmp_path / "checker.sock")!r}, kernel_boot._load_peer(peer.__file__), log_fd)
from autograder.checks import check
started = time.monotonic()
try:
    print("SCORE", check("mse", mse=mse), time.monotonic() - started >= 1.0)
finally:
    checker.kill()
"""
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "SCORE 2.0 True" in shown.stdout, shown.stdout[-2000:] + shown.stderr[-2000:]
