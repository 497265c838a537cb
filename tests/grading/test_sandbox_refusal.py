"""Where no namespace sandbox can be made, ``autograder grade`` refuses, says why, and grades only with --unsafe-no-sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from test_pipeline import make_course

from autograder.grading import pipeline
from autograder.grading.pipeline import GradeOptions, GradingError, sandbox_support
from autograder.grading.sandbox import namespaces
from autograder.grading.worker import Limits


def test_without_bwrap_grading_refuses_and_names_the_reason(monkeypatch):
    monkeypatch.setenv(namespaces.BWRAP_ENV, "/nonexistent/bwrap")
    with pytest.raises(GradingError, match="no namespace sandbox.*bwrap.*not installed.*--unsafe-no-sandbox"):
        sandbox_support(GradeOptions())


def test_unsafe_no_sandbox_grades_without_isolation(monkeypatch):
    monkeypatch.setenv(namespaces.BWRAP_ENV, "/nonexistent/bwrap")
    assert sandbox_support(GradeOptions(unsafe_no_sandbox=True)).isolate is False


def test_unsafe_no_sandbox_turns_the_sandbox_off_even_where_one_can_be_made():
    if not namespaces.probe().available:
        pytest.skip("no namespace sandbox here")
    assert sandbox_support(GradeOptions(unsafe_no_sandbox=True)).isolate is False


def test_kernels_are_isolated_where_a_sandbox_can_be_made():
    if not namespaces.probe().available:
        pytest.skip("no namespace sandbox here")
    options = GradeOptions(limits=replace(Limits(), isolate=False))
    assert sandbox_support(options).isolate is True


def test_the_cli_refuses_with_exit_code_2_and_the_reason(tmp_path):
    course = make_course(tmp_path / "course")
    env = {**os.environ, namespaces.BWRAP_ENV: "/nonexistent/bwrap"}
    done = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", "01_gradient_descent", "--course", str(course)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no namespace sandbox" in done.stderr and "--unsafe-no-sandbox" in done.stderr
    assert not (course / "grading" / "01_gradient_descent").exists() or not any((course / "grading" / "01_gradient_descent").iterdir())


def test_the_refusal_is_checked_before_anything_is_staged():
    source = pipeline.grade.__code__.co_names
    assert source.index("preflight") < source.index("sandbox_support") < source.index("collect")


def test_the_demo_grades_its_own_submissions_without_a_sandbox_and_says_so(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from autograder import cli
    from autograder.grading import commands, demo

    graded = []
    monkeypatch.setattr(pipeline, "no_sandbox_reason", lambda: "bwrap is not installed")
    monkeypatch.setattr(commands, "provision_offline", lambda data, assignments: None)
    monkeypatch.setattr(demo, "run_demo_course", lambda root, assignment, into: {})
    def grade_assignment(**kwargs):
        graded.append(kwargs["unsafe_no_sandbox"])
        raise RuntimeError("graded")

    monkeypatch.setattr(commands, "grade_assignment", grade_assignment)
    result = CliRunner().invoke(cli.main, ["demo", "--into", str(tmp_path / "demo")])
    assert "no namespace sandbox here (bwrap is not installed)" in result.output
    assert graded == [True]
