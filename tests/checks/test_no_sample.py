"""Without the MNIST sample, a check that needs it cannot run, and a check that cannot run is never a pass.

Each test here runs with ``FASTAI_HOME`` pointing at an empty folder and no ``MNIST_SAMPLE_ARCHIVE``:

* the checks on the real sample fail with a "could not run" message (they count against the blank, so a
  wrong solution still loses points and not even the reference gets full points), as they do inside the
  kernel under plain ``nbgrader autograde``, where the hidden test cells call ``check(...)``;
* ``grade`` (``preflight``), ``validate`` and the CLI refuse to start, with exit code 2, before anything is
  graded, and never try to download the sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from catalog import all_mutants

import autograder.checks.data as checks_data
import autograder.data as data
from autograder import cli
from autograder.checks import check, run_checks
from autograder.checks.data import NOT_PROVISIONED, require_sample
from autograder.checks.report import format_report
from autograder.checks.declared import assignment_needs_sample
from autograder.checks.runner import _ChecksPlugin
from autograder.course import scratch_course
from autograder.grading import commands
from autograder.data import ARCHIVE_ENV_VAR, DataError
from autograder.grading.pipeline import GradingError, GradeOptions, grade, preflight
from autograder.reference import mnist_sgd as ms
from autograder.reference import pixel_similarity as ps
from autograder.validate import validate, validate_assignment

REPO_ROOT = Path(__file__).resolve().parents[2]
MUTANTS = all_mutants()
REAL_DATA_MUTANTS = [pytest.param(m, id=m.id) for m in MUTANTS if m.real_data]
REFERENCES = {"validation_accuracy": ps.validation_accuracy, "train_model": ms.train_model}
SAMPLE_ASSIGNMENTS = ("03_pixel_similarity", "04_mnist_sgd")


def _clear_fastai_config_cache() -> None:
    try:
        from fastai.data.external import fastai_cfg
    except ImportError:
        return
    fastai_cfg.cache_clear()


@pytest.fixture
def no_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty FASTAI_HOME, no archive, an empty cache of loaded tensors, and any download attempt an error."""
    home = tmp_path / "empty_fastai_home"
    home.mkdir()
    monkeypatch.setenv("FASTAI_HOME", str(home))
    monkeypatch.delenv(ARCHIVE_ENV_VAR, raising=False)
    monkeypatch.setattr(checks_data, "_loaded", {})  # the session's loaded sample comes back afterwards

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download the MNIST sample")

    monkeypatch.setattr(data, "_download_with_fastai", no_network)
    _clear_fastai_config_cache()
    yield home
    _clear_fastai_config_cache()
    assert not (home / "data").exists(), "something provisioned or downloaded the sample"


def _could_not_run(report) -> list[str]:
    return [r.message for r in report.results if not r.passed and r.message.startswith("could not run")]


# ---- the checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", REAL_DATA_MUTANTS)
def test_a_mutant_caught_only_on_the_real_sample_still_loses_points(wrong, no_sample):
    report = run_checks(wrong.blank, 1.0, wrong.objects, device="cpu")
    assert not report.error, report.error
    messages = _could_not_run(report)
    assert messages and all(NOT_PROVISIONED in message for message in messages), format_report(report)
    assert report.score < 1.0, format_report(report)
    lines = format_report(report).splitlines()
    assert any(line.startswith("  FAIL ") and f": could not run: {NOT_PROVISIONED}" in line for line in lines), lines


def test_the_real_data_mutants_are_the_ones_expected():
    assert {m.blank for m in MUTANTS if m.real_data} == set(REFERENCES)


@pytest.mark.parametrize("blank", sorted(REFERENCES))
def test_the_reference_cannot_get_full_points_without_the_sample(blank, no_sample):
    report = run_checks(blank, 2.0, {blank: REFERENCES[blank]}, device="cpu")
    assert not report.error, report.error
    assert len(_could_not_run(report)) == 1, format_report(report)
    assert not report.failed_gates, "the check that could not run is not a gate: the other checks keep their points"
    assert 0.0 < report.score < 2.0, format_report(report)
    assert report.passed == report.total - 1


def test_inside_the_kernel_check_prints_could_not_run_and_gives_partial_points(no_sample, capsys):
    """What a hidden test cell does under plain ``nbgrader autograde``."""
    score = check("validation_accuracy", points=2, device="cpu", validation_accuracy=ps.validation_accuracy)
    out = capsys.readouterr()
    assert 0.0 < score < 2.0
    assert f"could not run: {NOT_PROVISIONED}" in out.out
    assert "checks passed" in out.out.splitlines()[0] and "/2 points" in out.out.splitlines()[0]
    assert out.err == ""


def test_a_skipped_check_is_recorded_as_a_failure_never_dropped():
    """Guard in the runner: a check that calls ``pytest.skip`` (in setup or in its body) counts against the blank."""
    import torch

    plugin = _ChecksPlugin("x", None, torch.device("cpu"))

    class Report:
        def __init__(self, when):
            self.when, self.passed, self.failed, self.skipped = when, False, False, True
            self.longrepr = ("file.py", 3, "Skipped: the data is not here")

    class Item:
        name = "test_x"

        def function(self):
            """checks x"""

        def get_closest_marker(self, name):
            return None

    for when in ("setup", "call"):
        hook = plugin.pytest_runtest_makereport(Item(), None)
        next(hook)
        with pytest.raises(StopIteration):
            hook.send(Report(when))
    assert [(r.name, r.passed, r.message) for r in plugin.results] == [
        ("checks x", False, "could not run: the data is not here")
    ] * 2


# ---- refusing to start --------------------------------------------------------------------------


def test_which_assignments_need_the_sample():
    assert [assignment_needs_sample(a) for a in ("01_gradient_descent", "02_linear_regression", *SAMPLE_ASSIGNMENTS)] == [
        False, False, True, True,
    ]
    assert not assignment_needs_sample("99_nothing")


def test_require_sample_refuses_only_what_needs_it(no_sample):
    require_sample("01_gradient_descent")
    for assignment in SAMPLE_ASSIGNMENTS:
        with pytest.raises(DataError, match="the MNIST sample is not provisioned; run `autograder provision`"):
            require_sample(assignment)


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = scratch_course(REPO_ROOT, tmp_path / "course")
    shutil.copytree(REPO_ROOT / "release", root / "release")
    return root


@pytest.mark.parametrize("assignment", SAMPLE_ASSIGNMENTS)
def test_preflight_and_grade_refuse_to_start(course, assignment, no_sample):
    with pytest.raises(GradingError, match=f"{assignment} needs the MNIST sample: {NOT_PROVISIONED}"):
        preflight(course, assignment)
    with pytest.raises(GradingError, match=NOT_PROVISIONED):
        grade(course, assignment, options=GradeOptions(jobs=1))
    assert not (course / "submitted").exists() and not (course / "gradebook.db").exists()


def test_preflight_lets_an_assignment_that_needs_no_sample_start(course, no_sample):
    preflight(course, "01_gradient_descent")


def test_validate_refuses_to_start(course, no_sample):
    with pytest.raises(DataError, match=NOT_PROVISIONED):
        validate_assignment(course, "03_pixel_similarity")
    with pytest.raises(DataError, match=NOT_PROVISIONED):
        validate(course)  # before validating the assignments that need no sample
    assert not (course / "gradebook.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["grade", "03_pixel_similarity"],
        ["grade", "04_mnist_sgd"],
        ["validate", "--assignment", "04_mnist_sgd"],
        ["validate"],
        ["feedback", "04_mnist_sgd"],
    ],
    ids=lambda args: "-".join(args),
)
def test_the_cli_refuses_with_exit_2_and_never_downloads(course, args, no_sample):
    result = CliRunner().invoke(cli.main, [*args, "--course", str(course)], env={ARCHIVE_ENV_VAR: None})
    assert result.exit_code == 2, result.output
    assert NOT_PROVISIONED in " ".join(result.output.split()), result.output
    assert not (course / "gradebook.db").exists()


def test_the_cli_grades_an_assignment_that_needs_no_sample_without_provisioning(course, no_sample, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "provision_mnist_sample", lambda source: calls.append(source))
    monkeypatch.setattr(commands, "grade_assignment", lambda **kwargs: calls.append("graded") or _Graded())
    result = CliRunner().invoke(cli.main, ["grade", "01_gradient_descent", "--course", str(course)], env={ARCHIVE_ENV_VAR: None})
    assert result.exit_code == 0, result.output
    assert calls == ["graded"], "no --data: nothing provisioned, nothing downloaded"


def test_the_cli_provisions_from_data_then_starts(course, no_sample, monkeypatch, tmp_path):
    """With ``--data`` the sample is provisioned from that local copy first, so the refusal does not apply."""
    from PIL import Image

    local = tmp_path / "local_sample"
    for split in data.SPLITS:
        for digit in data.DIGITS:
            (local / split / digit).mkdir(parents=True)
            Image.new("L", (28, 28)).save(local / split / digit / "0.png")
    calls = []
    monkeypatch.setattr(commands, "grade_assignment", lambda **kwargs: calls.append("graded") or _Graded())
    result = CliRunner().invoke(cli.main, ["grade", "03_pixel_similarity", "--course", str(course), "--data", str(local)])
    assert result.exit_code == 0, result.output
    assert calls == ["graded"] and (no_sample / "data" / "mnist_sample" / "train" / "3" / "0.png").is_file()
    shutil.rmtree(no_sample / "data")  # the fixture checks that nothing else provisioned it


class _AllGradable:
    all_gradable = True


class _Report:
    page = "reports/index.html"


class _Graded:
    batch = _AllGradable()
    report = _Report()
