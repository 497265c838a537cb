"""One writer per course: the course lock, two `autograder grade` runs on one course, and formgrader's writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.grading.course_lock import CourseLocked, course_lock, lock_path
from test_pipeline import ASSIGNMENT, WRONG_SIGN, make_course, put, solved, with_answer

REPO_ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys
from pathlib import Path
from autograder.grading.course_lock import course_lock
with course_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}


def hold_in_child(course: Path) -> subprocess.Popen:
    """A child process holding the course's lock until its stdin closes (or it is killed)."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(course)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=_env(), cwd=REPO_ROOT)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_free_course_is_locked_at_once_and_the_lock_file_says_by_whom(tmp_path):
    with course_lock(tmp_path) as mine:
        written = json.loads(lock_path(tmp_path).read_text())
        assert written["pid"] == os.getpid() == mine["pid"]
        assert written["started"] and written["command"]
    assert lock_path(tmp_path).exists(), "the lock file stays (deleting it would let two runs lock two files)"
    assert lock_path(tmp_path).read_text() == "", "nobody holds it now"


def test_a_second_holder_waits_then_gets_it(tmp_path):
    child = hold_in_child(tmp_path)
    messages, got_it = [], threading.Event()

    def second():
        with course_lock(tmp_path, on_wait=messages.append):
            got_it.set()

    thread = threading.Thread(target=second, daemon=True)
    try:
        thread.start()
        time.sleep(1.0)
        assert not got_it.is_set(), "the second holder must wait while the first holds it"
        assert len(messages) == 1
        assert f"pid {child.pid}" in messages[0] and "waiting for it to finish" in messages[0]
        assert "another `autograder grade` is writing to this course" in messages[0]
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    thread.join(timeout=30)
    assert got_it.is_set(), "the second holder gets the lock once the first lets go"
    assert len(messages) == 1, "the waiting message is given once"


def test_without_wait_a_held_lock_raises_naming_the_holder(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(CourseLocked) as caught:
            with course_lock(tmp_path, wait=False):
                pass
        assert time.monotonic() - started < 5, "refused at once"
        assert f"pid {child.pid}" in str(caught.value)
        assert "another `autograder grade` is writing to the course" in str(caught.value)
        assert caught.value.holder["pid"] == child.pid
        assert isinstance(caught.value, RuntimeError)
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def test_threads_of_one_process_exclude_each_other(tmp_path):
    inside, overlaps = [0], []

    def work():
        with course_lock(tmp_path):
            inside[0] += 1
            overlaps.append(inside[0])
            time.sleep(0.05)
            inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert overlaps == [1, 1, 1, 1]


def test_kill_9_of_the_holder_releases_the_lock(tmp_path):
    child = hold_in_child(tmp_path)
    with pytest.raises(CourseLocked):
        with course_lock(tmp_path, wait=False):
            pass
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    with course_lock(tmp_path, wait=False) as mine:
        assert mine["pid"] == os.getpid()


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ValueError):
        with course_lock(tmp_path):
            raise ValueError("boom")
    with course_lock(tmp_path, wait=False):
        pass


# --- the grader -------------------------------------------------------------------------------------------------


def _course(tmp_path: Path) -> Path:
    return make_course(tmp_path / "course")


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.linear_regression
def test_a_formgrader_write_made_across_register_assignment_is_kept(tmp_path):
    """formgrader keeps one gradebook connection open: a write it makes after the grader registered an
    assignment must land in the course's gradebook, not in a file the grader replaced."""
    from nbgrader.api import Gradebook

    from autograder.grading.pipeline import register_assignment
    from autograder.nbgrader_api import in_course

    course = _course(tmp_path)
    url = f"sqlite:///{course / 'gradebook.db'}"
    release_before = sorted(p.name for p in (course / "release" / ASSIGNMENT).iterdir())
    with in_course(course), Gradebook(url) as formgrader:
        formgrader.update_or_create_student("sam", first_name="Sam")
        (work := tmp_path / "work").mkdir()
        register_assignment(course, ASSIGNMENT, work)
        formgrader.update_or_create_student("late_student", first_name="Late")
        formgrader.update_or_create_student("sam", first_name="Samuel")
        assert [nb.name for nb in formgrader.find_assignment(ASSIGNMENT).notebooks] == [ASSIGNMENT], \
            "the open connection sees the registration: one database"
    with in_course(course), Gradebook(url) as reopened:
        assert {s.id for s in reopened.students} == {"sam", "late_student"}
        assert reopened.find_student("sam").first_name == "Samuel"
        notebook = reopened.find_notebook(ASSIGNMENT, ASSIGNMENT)
        assert notebook.grade_cells, "the assignment's grade cells are registered"
    assert sorted(p.name for p in (course / "release" / ASSIGNMENT).iterdir()) == release_before
    assert not list(course.glob("gradebook.db.*")), "no staged copy of the gradebook is left behind"


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _grade_cli(course: Path, source: Path, log: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(course), "--input", str(source),
               "-j", "1", "--cell-timeout", "60", *extra]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=_env(), cwd=REPO_ROOT)


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.linear_regression
def test_two_grade_runs_on_one_course_lose_and_duplicate_nothing(tmp_path, mnist_folder):
    from nbgrader.api import Gradebook

    from autograder.grading.pipeline import load_results
    from autograder.nbgrader_api import cell_grades, in_course

    course = _course(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    put(first, "alice", solved(course))
    put(first, "bob", solved(course))
    put(first, "carol", with_answer(course, "update", WRONG_SIGN))
    put(second, "dave", solved(course))
    put(second, "erin", with_answer(course, "update", WRONG_SIGN))
    put(second, "bob", solved(course))  # the same student in both batches, unchanged
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # the test holds the lock, so both runs are certainly concurrent and waiting when released
    with course_lock(course):
        runs = [_grade_cli(course, first, logs[0]), _grade_cli(course, second, logs[1])]
        try:
            for log in logs:
                _wait_for(lambda: "waiting for it to finish" in log.read_text(), 180, f"the waiting message in {log.name}")
            for log in logs:
                assert f"pid {os.getpid()}" in log.read_text()
            refused = subprocess.run(
                [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(course), "--input", str(first), "--no-wait"],
                capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, timeout=180,
            )
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "another `autograder grade` is writing to the course" in refused.stderr
            assert f"pid {os.getpid()}" in refused.stderr
            assert all(run.poll() is None for run in runs), "both runs still wait"
        except BaseException:
            for run in runs:
                run.kill()
            raise
    for run, log in zip(runs, logs):
        assert run.wait(timeout=900) == 0, log.read_text()

    expected = {"alice": 10.0, "bob": 10.0, "dave": 10.0}
    results = {result.student: result for result in load_results(course, ASSIGNMENT).submissions}
    assert set(results) == {"alice", "bob", "carol", "dave", "erin"}
    for student in ("carol", "erin"):
        assert results[student].score < 10
        expected[student] = results[student].score
    with in_course(course), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submissions = gradebook.assignment_submissions(ASSIGNMENT)
        assert sorted(s.student_id for s in submissions) == sorted(expected), "exactly one submission per student"
        grade_cells = {cell.name for cell in gradebook.find_notebook(ASSIGNMENT, ASSIGNMENT).grade_cells}
        for submission in submissions:
            for notebook in submission.notebooks:
                names = [grade.name for grade in notebook.grades]
                assert sorted(names) == sorted(grade_cells), f"one grade per cell for {submission.student_id}"
    for student, score in expected.items():
        assert sum(cell.score for cell in cell_grades(course, ASSIGNMENT, student)) == score, student
        assert results[student].score == score
    assert lock_path(course).read_text() == "", "the lock is free after both runs"


def test_release_waits_for_the_course_lock_before_writing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from autograder import cli, release

    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "source").mkdir()
    written = []
    monkeypatch.setattr(release, "regenerate_release", lambda root, only: written.append(time.monotonic()) or [])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.setdefault("result", CliRunner().invoke(cli.main, ["release", "--course", str(tmp_path)])))
        worker.start()
        time.sleep(1.5)
        assert written == [], "release wrote while another process held the course's lock"
        released = time.monotonic()
        holder.stdin.close()
        holder.wait(timeout=30)
        worker.join(timeout=60)
    finally:
        holder.kill()
    assert outcome["result"].exit_code == 0, outcome["result"].output
    assert "waiting for it to finish" in outcome["result"].output
    assert len(written) == 1 and written[0] >= released
