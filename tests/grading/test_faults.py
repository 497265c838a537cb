"""Faults: the grader killed at random points of a batch, a full disk, unwritable output folders.

(a) Ten trials each start ``autograder grade`` on the same small batch of ``01_gradient_descent`` (-j 2), kill
its whole process group with SIGKILL at a seeded random time between 0 and the duration of a clean run, then
run it again without ``--force``. After the rerun every student has exactly one result that parses and one
gradebook submission, with the scores of the clean run, no ``*.tmp`` file is left, the gradebook passes
SQLite's integrity check and no process of either run is still alive. The clean run is measured once (module
fixture) and reused by every trial. (``test_pipeline`` kills one run after its first result; these trials
kill anywhere, including while the gradebook is created.)

(b) A full disk (``shutil.disk_usage`` patched) stops ``grade`` with a clear GradingError before anything is
graded, for the course's disk and for the disk of the grader's scratch folders.

(c) Unwritable output folders, for root: a regular file where ``grading/`` must go, and read-only bind mounts
(in a private mount namespace, so nothing outside the command sees them) of the course, ``grading/``,
``autograded/``, ``submitted/`` and ``gradebook.db``: the CLI exits non-zero before grading, naming the path.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from adversarial import ASSIGNMENT, NOTEBOOK, Context, decoy, partial, solved, stubs
from test_pipeline import make_course

from autograder.grading.pipeline import GradeOptions, GradingError, grade, results_folder
from autograder.grading.results import SubmissionResult
from autograder.grading.worker import Limits
from autograder.nbgrader_api import cell_grades, generate_assignment

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

TRIALS = 10
STUDENTS = {"f_full": solved, "f_partial": partial, "f_stubs": stubs, "f_wrong": decoy}
SOLO = "zz_solo_student"
RUN_TIMEOUT = 900
CELL_TIMEOUT = "300"
"""Generous: these trials are about kills, and a cell timing out on a loaded machine would change a score."""
FAST = GradeOptions(jobs=1, limits=Limits(cell_timeout=60, cpu_seconds=300, memory_mb=4096, wall_seconds=600))


def _write(nb: nbformat.NotebookNode, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def prepare(root: Path, students: dict = STUDENTS) -> Path:
    """A course in ``root/course`` with ``students`` in ``root/incoming`` (nbgrader layout), and ``root/tmp``."""
    course = make_course(root / "course").resolve()
    ctx = Context(course=course, repo=REPO_ROOT, token="faults", outside=root / "outside", home=root / "home")
    for student, build in students.items():
        _write(build(ctx), root / "incoming" / student / ASSIGNMENT / NOTEBOOK)
    (root / "tmp").mkdir()
    (root / "home").mkdir()
    return root


def command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(root / "course"),
            "--input", str(root / "incoming"), "-j", "2", "--cell-timeout", CELL_TIMEOUT, *extra]


def environment(root: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(root / "tmp"), "HOME": str(root / "home"), "COLUMNS": "250"}


def scores(course: Path) -> dict[str, tuple[str, list[tuple[str, float]]]]:
    """Per student: the saved status and cell scores."""
    folder = results_folder(course, ASSIGNMENT)
    found = {}
    for path in sorted(folder.glob("*.json")):
        result = SubmissionResult.load(path)
        found[result.student] = (result.status.value, [(cell.blank, cell.score) for cell in result.cells])
    return found


def processes_under(root: Path) -> list[psutil.Process]:
    """Processes whose command line or working folder lies under ``root`` (workers, kernels, graders)."""
    mark = str(root)
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if mark in " ".join(proc.cmdline()) or proc.cwd().startswith(mark):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def reap(root: Path, grace: float) -> list[str]:
    """Wait up to ``grace`` seconds for the processes under ``root`` to end; kill (by pid) and name the rest."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and processes_under(root):
        time.sleep(0.5)
    left = processes_under(root)
    described = []
    for proc in left:
        try:
            described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}")
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(left, timeout=10)
    return described


@dataclass(frozen=True)
class CleanRun:
    template: Path
    seconds: float
    scores: dict


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, mnist_folder) -> CleanRun:
    """The batch prepared once (copied by every trial) and graded once without interruption, timed."""
    template = prepare(tmp_path_factory.mktemp("faults-template"))
    clean = tmp_path_factory.mktemp("faults-clean") / "run"
    shutil.copytree(template, clean)
    start = time.monotonic()
    run = subprocess.run(command(clean), env=environment(clean), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = scores(clean / "course")
    assert sorted(found) == sorted(STUDENTS)
    assert found["f_full"][0] == "graded" and sum(s for _, s in found["f_full"][1]) == 10
    reap(clean, 5)
    return CleanRun(template, seconds, found)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_killed_at_a_random_point_then_rerun_loses_and_duplicates_nothing(clean_run, tmp_path, trial):
    root = tmp_path / "run"
    shutil.copytree(clean_run.template, root)
    delay = random.Random(6000 + trial).uniform(0, clean_run.seconds)
    first = subprocess.Popen(command(root), env=environment(root), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        killed = True
    folder = results_folder(root / "course", ASSIGNMENT)
    at_kill = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
    print(f"trial {trial}: killed={killed} at {delay:.1f} s of {clean_run.seconds:.1f} s with {at_kill} result(s) saved")

    rerun = subprocess.run(command(root), env=environment(root), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = rerun.stdout[-3000:] + rerun.stderr[-3000:]
    left = reap(root, 15)

    assert rerun.returncode == 0, output
    assert "Traceback (most recent call last)" not in rerun.stdout + rerun.stderr, output
    course = root / "course"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.json" for s in STUDENTS), "one result per student, nothing else"
    assert not list((course / "grading").rglob("*.tmp")), "half-written files under grading/"
    assert scores(course) == clean_run.scores, "the scores of a clean run"
    with sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute(
            "SELECT s.student_id, COUNT(*) FROM submitted_assignment s JOIN assignment a ON s.assignment_id = a.id "
            "WHERE a.name = ? GROUP BY s.student_id", (ASSIGNMENT,)).fetchall()
    assert dict(rows) == {student: 1 for student in STUDENTS}, "one gradebook submission per student"
    for student, (_, cells) in clean_run.scores.items():
        assert [(g.cell.removeprefix("test_"), g.score) for g in cell_grades(course, ASSIGNMENT, student)] == cells
    assert not left, "processes of the killed run or the rerun still alive after the rerun:\n" + "\n".join(left)


# ---------------------------------------------------------------- (b) a full disk


def _low_disk(monkeypatch: pytest.MonkeyPatch, under: Path, free_mib: int = 10) -> None:
    """``shutil.disk_usage`` reports ``free_mib`` MiB free for paths under ``under``, the truth elsewhere."""
    real = shutil.disk_usage
    under = Path(under).resolve()

    def disk_usage(path):
        usage = real(path)
        if Path(path).resolve().is_relative_to(under):
            return usage._replace(free=free_mib * 2**20)
        return usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


def _nothing_graded(course: Path) -> None:
    assert not [p for p in (course / "grading").rglob("*") if p.is_file()], "nothing may be written under grading/"
    assert not (course / "submitted").exists(), "nothing may be staged"
    assert not (course / "autograded").exists()


def test_a_full_course_disk_stops_the_batch_before_grading(tmp_path, monkeypatch):
    root = prepare(tmp_path / "full", {SOLO: stubs})
    course = root / "course"
    _low_disk(monkeypatch, course)
    with pytest.raises(GradingError, match=r"only 10 MiB free") as error:
        grade(course, ASSIGNMENT, root / "incoming", FAST)
    assert str(course) in str(error.value), "the message names the course folder"
    _nothing_graded(course)
    assert not (course / "gradebook.db").exists(), "the gradebook is not created"


def test_the_cli_reports_a_full_disk_clearly(tmp_path, monkeypatch, mnist_folder):
    from click.testing import CliRunner

    from autograder import cli

    root = prepare(tmp_path / "full", {SOLO: stubs})
    course = root / "course"
    _low_disk(monkeypatch, course)
    result = CliRunner().invoke(cli.main, ["grade", ASSIGNMENT, "--course", str(course), "--input", str(root / "incoming"), "-j", "1"])
    assert result.exit_code == 2, result.output
    assert "only 10 MiB free" in result.output and str(course) in result.output, result.output
    assert "Traceback" not in result.output
    _nothing_graded(course)


def test_a_full_scratch_disk_stops_the_batch_before_grading(tmp_path, monkeypatch):
    """Each submission runs in a scratch course in the temporary folder: that disk must have room too."""
    root = prepare(tmp_path / "full", {SOLO: stubs})
    course, scratch = root / "course", root / "tmp"
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _low_disk(monkeypatch, scratch)
    with pytest.raises(GradingError, match=r"free") as error:
        grade(course, ASSIGNMENT, root / "incoming", FAST)
    assert str(scratch) in str(error.value), "the message names the scratch folder"
    _nothing_graded(course)


# ---------------------------------------------------------------- (c) unwritable output folders


def test_the_cli_refuses_a_file_where_the_results_folder_goes(tmp_path, mnist_folder):
    """Extends test_pipeline's API test: through the CLI, with the exit code and the path in the message."""
    from click.testing import CliRunner

    from autograder import cli

    root = prepare(tmp_path / "file", {SOLO: stubs})
    course = root / "course"
    (course / "grading").write_text("a file where a folder must go")
    result = CliRunner().invoke(cli.main, ["grade", ASSIGNMENT, "--course", str(course), "--input", str(root / "incoming"), "-j", "1"])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.output and str(course / "grading") in result.output, result.output
    assert "Traceback" not in result.output
    assert not (course / "submitted").exists()


def _read_only(target: Path, argv: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    """Run ``argv`` with ``target`` bind-mounted read-only over itself, in a private mount namespace."""
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(target), *argv],
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def read_only_mounts(tmp_path_factory) -> None:
    """Skips unless this process may make a read-only bind mount in its own mount namespace (root does)."""
    probe = tmp_path_factory.mktemp("ro-probe")
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command")
    try:
        run = _read_only(probe, ["sh", "-c", "touch \"$0/x\"", str(probe)], dict(os.environ), 30)
    except OSError as error:
        pytest.skip(f"cannot run unshare: {error}")
    if "Read-only" not in run.stderr:
        pytest.skip(f"read-only bind mounts are not available here: {run.stderr.strip()[:200]}")


@pytest.mark.parametrize("target", [".", "grading", "autograded", "submitted", "gradebook.db"])
def test_a_read_only_output_stops_the_cli_before_grading(tmp_path, mnist_folder, read_only_mounts, target):
    root = prepare(tmp_path / "ro", {SOLO: solved})
    course = root / "course"
    generate_assignment(course, ASSIGNMENT)
    for folder in ("grading", "autograded", "submitted"):
        (course / folder).mkdir(exist_ok=True)
    path = (course / target).resolve()
    run = _read_only(path, command(root), environment(root), 300)
    output = run.stdout + run.stderr
    assert run.returncode not in (0, 1), f"exit code {run.returncode}: the batch must not start\n{output[-3000:]}"
    assert str(path) in output, f"the message names {path}:\n{output[-3000:]}"
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    assert SOLO not in run.stdout, f"a submission was graded:\n{output[-3000:]}"
    assert not (results_folder(course, ASSIGNMENT) / f"{SOLO}.json").exists()
