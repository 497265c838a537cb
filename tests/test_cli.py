"""The CLI forwards to the package and reports bad input clearly.

Each command's library function is replaced by a recorder: the test checks the keyword arguments the CLI
forwards, what it prints and its exit code, without grading anything.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from autograder import cli
from autograder.grading import commands
from autograder.grading.worker import Limits


def test_provision_reports_a_missing_archive(tmp_path):
    result = CliRunner().invoke(cli.main, ["provision", "--data", str(tmp_path / "missing.tgz"), "--force"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_validate_rejects_an_unknown_assignment(tmp_path, monkeypatch, mnist_folder):
    result = CliRunner().invoke(cli.main, ["validate", "--assignment", "99_nothing"])
    assert result.exit_code == 2
    assert "unknown assignment" in result.output


def test_release_outside_a_course_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOGRADER_COURSE", raising=False)
    result = CliRunner().invoke(cli.main, ["release"])
    assert result.exit_code == 2 and "no course folder" in result.output


def test_train_forwards_to_report_runs(monkeypatch, tmp_path):
    from autograder.reference import runs

    calls = {}

    def fake_report(folder, device=None, seed=42):
        calls.update(folder=folder, device=device, seed=seed)
        return [runs.RunRow("linear1", 0.97, 0.96, 20, 1.0)]

    monkeypatch.setattr("autograder.data.provision_mnist_sample", lambda data: tmp_path)
    monkeypatch.setattr(runs, "report_runs", fake_report)
    result = CliRunner().invoke(cli.main, ["train", "--device", "cpu", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert calls == {"folder": tmp_path, "device": "cpu", "seed": 7}
    assert "0.9700" in result.output


@dataclass
class _Batch:
    all_gradable: bool = True
    submissions: list = field(default_factory=list)


@dataclass
class _Report:
    page: Path
    csv: Path
    json: Path


def _report(root: Path) -> _Report:
    folder = root / "reports" / "02_linear_regression"
    return _Report(folder / "index.html", folder / "mistakes.csv", folder / "report.json")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """An empty course folder: ``nbgrader_config.py`` and ``source/``."""
    (tmp_path / "source").mkdir()
    (tmp_path / "nbgrader_config.py").write_text("")
    return tmp_path.resolve()


@pytest.fixture
def calls(monkeypatch) -> dict:
    """The keyword arguments each replaced library function was called with, by name."""
    found: dict = {}
    monkeypatch.setattr(commands, "provision_offline", lambda **kwargs: found.setdefault("provision_offline", kwargs))
    return found


def _record(monkeypatch, calls: dict, name: str, returns) -> None:
    def recorder(**kwargs):
        calls[name] = kwargs
        return returns

    monkeypatch.setattr(commands, name, recorder)


def test_grade_forwards_every_option(course, calls, monkeypatch, tmp_path):
    outcome = commands.GradeOutcome(_Batch(all_gradable=False), _report(course))
    _record(monkeypatch, calls, "grade_assignment", outcome)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    args = ["grade", "02_linear_regression", "--course", str(course), "--input", str(incoming), "-j", "3", "--force",
            "--student", "ada", "--student", "alan", "--cell-timeout", "7", "--memory-limit", "512", "--no-wait",
            "--unsafe-no-sandbox", "--data", str(tmp_path / "sample.tgz")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1, result.output
    assert "class report: " in result.output and "some submissions could not be graded" in result.output
    assert calls["provision_offline"] == {"data": tmp_path / "sample.tgz", "assignments": ["02_linear_regression"]}
    forwarded = calls["grade_assignment"]
    assert callable(forwarded.pop("listener"))
    assert forwarded == {
        "course_root": course, "assignment": "02_linear_regression", "source": incoming, "jobs": 3, "force": True,
        "students": ("ada", "alan"), "limits": Limits(cell_timeout=7, memory_mb=512), "executor": "local",
        "scheduler": None, "wait": False, "unsafe_no_sandbox": True,
    }


def test_grade_exits_0_when_every_submission_was_graded(course, calls, monkeypatch):
    _record(monkeypatch, calls, "grade_assignment", commands.GradeOutcome(_Batch(), _report(course)))
    result = CliRunner().invoke(cli.main, ["grade", "02_linear_regression", "--course", str(course)])
    assert result.exit_code == 0, result.output
    assert calls["grade_assignment"]["limits"] == Limits() and calls["grade_assignment"]["wait"] is True


def test_grade_turns_a_grading_error_into_exit_2(course, calls, monkeypatch):
    from autograder.grading.pipeline import GradingError

    def refuse(**kwargs):
        raise GradingError("cannot write to the course")

    monkeypatch.setattr(commands, "grade_assignment", refuse)
    result = CliRunner().invoke(cli.main, ["grade", "02_linear_regression", "--course", str(course)])
    assert result.exit_code == 2 and "cannot write to the course" in result.output


def test_report_forwards_and_prints_the_files(course, calls, monkeypatch):
    _record(monkeypatch, calls, "write_report", _report(course))
    result = CliRunner().invoke(cli.main, ["report", "02_linear_regression", "--course", str(course)])
    assert result.exit_code == 0, result.output
    assert calls["write_report"] == {"course_root": course, "assignment": "02_linear_regression"}
    assert "mistakes.csv and report.json" in result.output


def test_report_without_graded_submissions_exits_2(course, calls, monkeypatch):
    _record(monkeypatch, calls, "write_report", None)
    result = CliRunner().invoke(cli.main, ["report", "02_linear_regression", "--course", str(course)])
    assert result.exit_code == 2 and "no graded submissions of 02_linear_regression" in result.output


@pytest.mark.parametrize("submissions, exit_code", [(2, 0), (0, 2)])
def test_export_forwards_and_names_the_grades_csv(course, calls, monkeypatch, submissions, exit_code):
    exports = commands.Exports(course / "exports" / "02_linear_regression" / "grades.csv", submissions)
    _record(monkeypatch, calls, "write_exports", exports)
    result = CliRunner().invoke(cli.main, ["export", "02_linear_regression", "--course", str(course)])
    assert result.exit_code == exit_code, result.output
    assert calls["write_exports"] == {"course_root": course, "assignment": "02_linear_regression"}
    if submissions:
        assert "wrote exports/02_linear_regression/grades.csv" in result.output and "Gradescope" not in result.output
    else:
        assert "no graded submissions of 02_linear_regression" in result.output


@pytest.mark.parametrize("pages, exit_code", [(["a.html", "b.html"], 0), ([], 2)])
def test_feedback_provisions_then_forwards(course, calls, monkeypatch, tmp_path, pages, exit_code):
    _record(monkeypatch, calls, "write_feedback", pages)
    args = ["feedback", "04_mnist_sgd", "--course", str(course), "--data", str(tmp_path / "sample")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == exit_code, result.output
    assert calls["provision_offline"] == {"data": tmp_path / "sample", "assignments": ["04_mnist_sgd"]}
    assert calls["write_feedback"] == {"course_root": course, "assignment": "04_mnist_sgd"}
    assert ("wrote 2 feedback page(s) under feedback/" in result.output) == bool(pages)


def test_demo_forwards_and_prints_what_it_wrote(course, calls, monkeypatch, tmp_path):
    into = tmp_path / "demo"
    demo_course = commands.DemoCourse(into, {"ada": "every blank solved"}, None)
    outcome = commands.DemoOutcome(demo_course, _Batch(all_gradable=False), into / "exports" / "grades.csv",
                                   [into / "feedback" / "ada.html"], _report(into))

    def run_demo(**kwargs):
        calls["run_demo"] = kwargs
        kwargs["listener"]("demo", demo_course)
        return outcome

    monkeypatch.setattr(commands, "run_demo", run_demo)
    result = CliRunner().invoke(cli.main, ["demo", "--course", str(course), "--into", str(into), "-j", "2"],
                                env={"MNIST_SAMPLE_ARCHIVE": None})
    assert result.exit_code == 0, result.output
    assert calls["provision_offline"] == {"data": None, "assignments": ["04_mnist_sgd"]}
    forwarded = calls["run_demo"]
    assert callable(forwarded.pop("listener"))
    assert forwarded == {"course_root": course, "assignment": "04_mnist_sgd", "into": into, "jobs": 2}
    text = " ".join(result.output.split())
    assert f"demo course: {into}" in text and "ada every blank solved" in text
    assert "exports: " in text and "feedback: 1 page(s)" in text and "class report: " in text


def test_demo_fails_when_the_corrupt_submission_went_unreported(course, calls, monkeypatch, tmp_path):
    outcome = commands.DemoOutcome(commands.DemoCourse(tmp_path, {}, None), _Batch(all_gradable=True), tmp_path / "grades.csv",
                                   [], _report(tmp_path))
    _record(monkeypatch, calls, "run_demo", outcome)
    result = CliRunner().invoke(cli.main, ["demo", "--course", str(course)])
    assert result.exit_code == 2 and "corrupted submission was not reported" in result.output


def test_the_cli_and_the_report_readers_start_without_torch():
    """``autograder --help`` and the commands that make no tensors skip torch's import (seconds); so does reading a
    report's MIME type or the sample's layout, which the exports and feedback do."""
    code = ("import sys, autograder.cli, autograder.data\nfrom autograder.checks import REPORT_MIME_TYPE, BlankReport\n"
            "print(sorted(name for name in ('torch', 'pytest', 'hypothesis') if name in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"
