"""Demo submissions: solution snippets, filled release notebooks and the five demo students (nothing executed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.course import CONFIG_NAME, CourseError
from autograder.grading.demo import (DEMO_MARKER, HANG, HANGING_BLANKS, WRONG_SNIPPETS, fill, run_demo_course, solution_snippets,
                                     write_demo_submissions)
from autograder.grading.results import Status
from autograder.grading.submissions import collect

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "04_mnist_sgd"
SOURCE = REPO_ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = REPO_ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
STUDENTS = ["ada", "grace", "alan", "edsger", "barbara"]


def answer_cells(nb) -> dict[str, str]:
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}


def read(path: Path):
    return nbformat.read(path, as_version=4)


def without_marker_lines(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def test_snippets_are_the_solved_answer_cells_without_markers() -> None:
    snippets = solution_snippets(SOURCE)
    assert list(snippets) == list(answer_cells(read(RELEASE)))
    for grade_id, snippet in snippets.items():
        assert "BEGIN SOLUTION" not in snippet and "END SOLUTION" not in snippet, grade_id
        assert "NotImplementedError" not in snippet, grade_id
    assert "\n    return 1 / (1 + torch.exp(-x))" in snippets["sigmoid"], "indentation is kept"
    assert "\n        for p in self.params:\n            p.data -= p.grad.data * self.lr" in snippets["BasicOptim"]


def test_filling_every_snippet_reproduces_the_source_answers() -> None:
    filled = fill(RELEASE, solution_snippets(SOURCE))
    source_answers = answer_cells(read(SOURCE))
    assert {k: v for k, v in answer_cells(filled).items()} == {k: without_marker_lines(v) for k, v in source_answers.items()}
    release = read(RELEASE)
    for mine, released in zip(filled.cells, release.cells, strict=True):
        if not mine.metadata.get("nbgrader", {}).get("solution"):
            assert mine == released
    nbformat.validate(filled)


def test_fill_replaces_only_the_named_cells_and_refuses_unknown_ones() -> None:
    filled = answer_cells(fill(RELEASE, {"sigmoid": "def sigmoid(x): return x.sigmoid()"}))
    released = answer_cells(read(RELEASE))
    assert filled["sigmoid"] == "def sigmoid(x): return x.sigmoid()"
    assert {k: v for k, v in filled.items() if k != "sigmoid"} == {k: v for k, v in released.items() if k != "sigmoid"}
    with pytest.raises(ValueError, match="no answer cell test_sigmoid"):
        fill(RELEASE, {"test_sigmoid": "pass"})


def test_wrong_snippets_keep_the_release_cell_around_a_wrong_answer() -> None:
    wrong = WRONG_SNIPPETS[ASSIGNMENT]
    released, solved = answer_cells(read(RELEASE)), solution_snippets(SOURCE)
    assert 2 <= len(wrong) <= 3
    for grade_id, source in wrong.items():
        given = released[grade_id].split("# YOUR CODE HERE")[0]
        assert source.startswith(given), f"{grade_id}: the release cell's lines before the first stub are kept"
        assert source != solved[grade_id] and "NotImplementedError" not in source
        compile(source, grade_id, "exec")
    assert wrong["BasicOptim"].rstrip().endswith("p.grad = None\n            return")
    assert wrong["train_epoch"].endswith("\n    opt.step()\n    opt.zero_grad()"), "stepping once per epoch"
    assert wrong["train_model"].endswith("return validate_epoch(model, valid_dl)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    into = tmp_path_factory.mktemp("demo")
    return into, write_demo_submissions(REPO_ROOT, ASSIGNMENT, into)


def demo_path(into: Path, student: str) -> Path:
    return into / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def test_five_demo_students_with_descriptions(demo: tuple[Path, dict[str, str]]) -> None:
    into, described = demo
    assert list(described) == STUDENTS
    assert all(described[s] for s in STUDENTS)
    assert sorted(p.name for p in into.iterdir()) == sorted(STUDENTS)
    for student in STUDENTS:
        assert demo_path(into, student).is_file()


def test_demo_students_show_what_they_say(demo: tuple[Path, dict[str, str]]) -> None:
    into, _ = demo
    solved, released = solution_snippets(SOURCE), answer_cells(read(RELEASE))
    assert answer_cells(read(demo_path(into, "ada"))) == solved
    grace = answer_cells(read(demo_path(into, "grace")))
    assert grace == {**solved, **WRONG_SNIPPETS[ASSIGNMENT]}
    assert read(demo_path(into, "alan")) == read(RELEASE)
    assert answer_cells(read(demo_path(into, "alan"))) == released

    edsger = answer_cells(read(demo_path(into, "edsger")))
    blank = HANGING_BLANKS[ASSIGNMENT]
    hanging = edsger[blank]
    assert "while True" in hanging and HANG in hanging
    assert hanging.splitlines()[0] == released[blank].splitlines()[0]
    assert hanging.index(HANG) < hanging.index("return"), "the loop comes before the function returns"
    assert [k for k, v in edsger.items() if "while True" in v] == [blank]
    calls = re.compile(rf"(?<![.\w]){blank}\(")
    callers = [k for k, v in edsger.items() if k != blank and calls.search(v.split('"""')[-1])]
    assert callers == [], "no other answer calls the hanging blank"

    with pytest.raises(json.JSONDecodeError):
        json.loads(demo_path(into, "barbara").read_text())
    assert nbformat.writes(read(demo_path(into, "ada"))).startswith(demo_path(into, "barbara").read_text())
    for student in ["ada", "grace", "edsger"]:
        nbformat.validate(read(demo_path(into, student)))


def test_collect_sees_the_demo_as_intended(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    into, _ = demo
    found = {s.student: s for s in collect(into, ASSIGNMENT, f"{ASSIGNMENT}.ipynb", tmp_path, RELEASE)}
    assert sorted(found) == sorted(STUDENTS)
    assert found["barbara"].status == Status.CORRUPT
    assert all(found[s].status is None for s in STUDENTS if s != "barbara")


def test_unknown_assignment(tmp_path: Path) -> None:
    with pytest.raises(CourseError):
        write_demo_submissions(REPO_ROOT, "99_nothing", tmp_path)


def test_demo_course_is_a_fresh_copy_with_incoming_submissions(tmp_path: Path) -> None:
    into = tmp_path / "demo-course"
    described = run_demo_course(REPO_ROOT, ASSIGNMENT, into)
    assert list(described) == STUDENTS
    assert (into / CONFIG_NAME).is_file() and (into / DEMO_MARKER).is_file()
    assert (into / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert (into / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes() == RELEASE.read_bytes()
    assert demo_path(into / "incoming", "ada").is_file()
    (into / "gradebook.db").write_text("stale")
    run_demo_course(REPO_ROOT, ASSIGNMENT, into)
    assert not (into / "gradebook.db").exists(), "an earlier demo course is replaced whole"


def test_demo_course_refuses_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a demo course"):
        run_demo_course(REPO_ROOT, ASSIGNMENT, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
