"""Grades that match the work handed in, through the CLI on a scratch course: resubmissions are regraded and
nothing else, `--student`, one gradebook entry per student after any sequence of runs (kill -9 included),
timeouts named in words, and edited grading metadata graded as released under both graders."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.grading.pipeline import load_results, results_folder
from autograder.grading.results import Status
from autograder.nbgrader_api import autograde, cell_grades, generate_assignment

from test_pipeline import ASSIGNMENT, WRONG_SIGN, make_course, put, solved, with_answer

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

LOOP_AFTER_UPDATE = "while True:\n    pass  # a student's experiment that never ends\n"


def grade_cli(course: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(course), "-j", "2",
               "--cell-timeout", "20", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def submitted(course: Path) -> Path:
    return course / "submitted"


def gradebook_rows(course: Path) -> dict[str, list[tuple[str, float]]]:
    """Every submission of the assignment in the gradebook, with each grade's cell and score."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        rows = {}
        for submission in gradebook.find_assignment(ASSIGNMENT).submissions:
            rows.setdefault(submission.student.id, []).extend(
                (grade.name, float(grade.score)) for nb in submission.notebooks for grade in nb.grades
            )
        return rows


def one_grade_each(course: Path, expected: dict[str, float]) -> None:
    rows = gradebook_rows(course)
    assert sorted(rows) == sorted(expected), rows
    for student, score in expected.items():
        assert [name for name, _ in rows[student]] == ["test_update"], (student, rows[student])
        assert rows[student][0][1] == score, (student, rows[student])
    saved = {r.student: r.score for r in load_results(course, ASSIGNMENT).submissions}
    assert saved == expected


def with_loop_after_the_answer(course: Path) -> nbformat.NotebookNode:
    nb = solved(course)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "update")
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(LOOP_AFTER_UPDATE))
    return nb


def _unchanged(path: Path, mtime_ns: int) -> bool:
    """Whether a result file is still the one written at ``mtime_ns`` (a regrade removes it before recording)."""
    try:
        return path.stat().st_mtime_ns == mtime_ns
    except FileNotFoundError:
        return False


def test_resubmissions_are_regraded_and_nothing_else(tmp_path):
    course = make_course(tmp_path / "course")
    put(submitted(course), "ada", solved(course))
    put(submitted(course), "bob", with_answer(course, "update", WRONG_SIGN))
    (submitted(course) / "carol" / ASSIGNMENT).mkdir(parents=True)
    put(submitted(course), "eve", with_loop_after_the_answer(course))

    first = grade_cli(course)
    assert "4 graded, 0 unchanged (skipped), 0 changed since their last grade (regraded)" in first.stdout, first.stdout
    assert first.returncode == 1, "carol's empty folder cannot be graded"
    assert "some submissions could not be graded" in first.stderr and "could not be graded" not in first.stdout
    assert "\x1b[" not in first.stdout and not any(line.startswith("grading ") for line in first.stdout.splitlines()), \
        "no progress bar or terminal codes in a log"
    results = {r.student: r for r in load_results(course, ASSIGNMENT).submissions}
    assert results["bob"].score < 10 and results["carol"].status == Status.EMPTY
    eve = results["eve"]
    assert eve.status == Status.TIMEOUT and "the 1st code cell after update" in eve.reason and "#" not in eve.reason, eve.reason

    # bob resubmits a fixed notebook, carol hands in late; ada and eve change nothing
    put(submitted(course), "bob", solved(course))
    put(submitted(course), "carol", solved(course))
    second = grade_cli(course)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 graded, 2 unchanged (skipped), 2 changed since their last grade (regraded)" in second.stdout, second.stdout
    one_grade_each(course, {"ada": 10.0, "bob": 10.0, "carol": 10.0, "eve": 10.0})

    third = grade_cli(course)
    assert "0 graded, 4 unchanged (skipped), 0 changed" in third.stdout, third.stdout

    only = grade_cli(course, "--student", "ada", "--student", "bob")
    assert "2 unchanged but regraded on request, 2 not selected (--student)" in only.stdout, only.stdout
    one_grade_each(course, {"ada": 10.0, "bob": 10.0, "carol": 10.0, "eve": 10.0})

    unknown = grade_cli(course, "--student", "nobody")
    assert unknown.returncode == 2 and "no submission of nobody" in unknown.stderr, unknown.stderr
    assert "error" not in unknown.stdout

    # bob breaks his notebook again; a forced rerun is killed mid-batch, then a plain rerun finishes the job
    put(submitted(course), "bob", with_answer(course, "update", WRONG_SIGN))
    command = [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(course), "-j", "1",
               "--cell-timeout", "20", "--force"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = results_folder(course, ASSIGNMENT)
    before = {path: path.stat().st_mtime_ns for path in folder.glob("*.json")}
    deadline = time.time() + 240
    while time.time() < deadline and all(_unchanged(path, mtime) for path, mtime in before.items()):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    last = grade_cli(course)
    assert last.returncode == 0, last.stdout + last.stderr
    results = {r.student: r for r in load_results(course, ASSIGNMENT).submissions}
    assert results["bob"].score < 10, "bob's second resubmission is what counts"
    one_grade_each(course, {student: result.score for student, result in results.items()})
    assert not list(folder.glob("*.tmp"))


def metadata_edits(course: Path) -> dict[str, nbformat.NotebookNode]:
    """Honest, solved notebooks whose grading metadata was edited in the ways students do."""

    def edited(change) -> nbformat.NotebookNode:
        nb = solved(course)
        change(nb)
        return nb

    def cell(nb, grade_id):
        return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)

    def duplicate_test(nb):
        nb.cells.append(copy.deepcopy(cell(nb, "test_update")))

    def answer_worth_ten(nb):
        cell(nb, "update").metadata.nbgrader.update(grade=True, points=10)

    def test_ungraded(nb):
        cell(nb, "test_update").metadata.nbgrader.update(grade=False)

    def test_renamed(nb):
        cell(nb, "test_update").metadata.nbgrader.update(grade_id="test_mine")

    return {"duplicated": edited(duplicate_test), "answer_graded": edited(answer_worth_ten),
            "test_ungraded": edited(test_ungraded), "renamed": edited(test_renamed)}


def test_edited_metadata_is_graded_as_released_by_both_graders(tmp_path):
    course = make_course(tmp_path / "course")
    edits = metadata_edits(course)
    for student, nb in edits.items():
        put(submitted(course), student, nb)
    run = grade_cli(course)
    assert run.returncode == 0, run.stdout + run.stderr
    results = {r.student: r for r in load_results(course, ASSIGNMENT).submissions}
    expected_words = {"duplicated": "test_update duplicated", "answer_graded": "update's grading metadata edited",
                      "test_ungraded": "test_update's grading metadata edited", "renamed": "test_update renamed to test_mine"}
    for student, words in expected_words.items():
        result = results[student]
        assert result.status == Status.TESTS_MODIFIED and words in result.reason, (student, result.reason)
        assert (result.score, result.max_score) == (10.0, 10.0), (student, result.score, result.max_score)
        assert "deleted" not in result.reason, result.reason

    plain = make_course(tmp_path / "plain")
    generate_assignment(plain, ASSIGNMENT)
    for student, nb in edits.items():
        put(submitted(plain), student, nb)
        autograde(plain, ASSIGNMENT, student)
        grades = cell_grades(plain, ASSIGNMENT, student)
        assert [(g.cell, g.score, g.max_score) for g in grades] == [("test_update", 10.0, 10.0)], (student, grades)
