"""The grader's coordinator never imports torch (about 1.5 CPU s per batch): its kernels and checkers do.

The coordinator lays out the sandboxes, checks that the assignment's data is there, records each executed
notebook, and writes the class report; none of it makes a tensor. Each test runs in a fresh interpreter, where
nothing else has imported torch yet.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import import_module

import pytest

from autograder.checks.declared import CHECK_MODULES, assignment_needs_sample, declared


def _torch_imported_by(code: str, tmp_path) -> bool:
    script = textwrap.dedent(code) + "\nimport sys\nprint('torch' in sys.modules)\n"
    env = {"FASTAI_HOME": str(tmp_path / "fastai"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "True"


def test_the_coordinators_steps_run_without_importing_torch(tmp_path):
    assert not _torch_imported_by("""
        import autograder.cli, autograder.grading.commands, autograder.grading.pipeline, autograder.grading.record
        from autograder.grading import class_insights, preflight
        from autograder.grading.sandbox import layout
        from autograder.grading.sandbox.checker_config import CheckerConfig
        assert class_insights._accuracy_strips([]) == []
        try:
            preflight._require_sample("04_mnist_sgd")  # the sample is not provisioned here: refused, without torch
        except preflight.GradingError as error:
            assert "needs the MNIST sample" in str(error)
        else:
            raise AssertionError("the missing sample was not noticed")
        layout.sandbox_user(isolated=False)
    """, tmp_path)


def test_the_probe_sees_torch_when_a_step_imports_it(tmp_path):
    assert _torch_imported_by("from autograder.checks import runner", tmp_path)


@pytest.mark.parametrize("module_name", CHECK_MODULES)
def test_what_a_check_module_declares_is_read_as_importing_it_would(module_name):
    module = import_module(f"autograder.checks.{module_name}")
    assert declared(module_name, "NEEDS_MNIST_SAMPLE", False) == getattr(module, "NEEDS_MNIST_SAMPLE", False)
    assert declared(module_name, "BLANKS") == tuple(module.BLANKS)
    assert declared(module_name, "NOT_DECLARED_ANYWHERE", "default") == "default"
    assert assignment_needs_sample(f"0{CHECK_MODULES.index(module_name) + 1}_{module_name}") == bool(getattr(module, "NEEDS_MNIST_SAMPLE", False))


def test_a_declaration_that_is_no_literal_is_refused(monkeypatch, tmp_path):
    package = tmp_path / "checks_copy"
    package.mkdir()
    (package / "odd.py").write_text("NEEDS_MNIST_SAMPLE = bool(1)\n")
    monkeypatch.setattr("autograder.checks.declared.find_spec",
                        lambda name: type("Spec", (), {"origin": str(package / "odd.py")})())
    with pytest.raises(ValueError):
        declared("odd", "NEEDS_MNIST_SAMPLE")
