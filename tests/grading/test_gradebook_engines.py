"""The openings of one gradebook in one process share one SQLAlchemy engine and nbgrader's checks of its tables, and
still read the file afresh."""

from __future__ import annotations

import os
import shutil

from autograder.nbgrader_api import SHARED_ENGINES, open_gradebook


def _students(root) -> list[str]:
    with open_gradebook(root) as gradebook:
        return sorted(student.id for student in gradebook.students)


def _add_student(root, student: str) -> None:
    with open_gradebook(root) as gradebook:
        gradebook.add_student(student)
        gradebook.db.commit()


def test_openings_of_one_gradebook_share_one_engine(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with open_gradebook(tmp_path / "a") as first:
        engine = first.engine
    with open_gradebook(tmp_path / "a") as again, open_gradebook(tmp_path / "b") as other:
        assert again.engine is engine
        assert other.engine is not engine


def test_a_gradebook_replaced_between_openings_is_read_afresh(tmp_path):
    course, elsewhere = tmp_path / "course", tmp_path / "elsewhere"
    course.mkdir(), elsewhere.mkdir()
    _add_student(course, "ada")
    _add_student(elsewhere, "grace")
    assert _students(course) == ["ada"]
    shutil.copy2(elsewhere / "gradebook.db", course / "replacing.db")
    os.replace(course / "replacing.db", course / "gradebook.db")  # a new file: a connection kept open would see the old one
    assert _students(course) == ["grace"]


def test_a_process_keeps_a_bounded_number_of_engines(tmp_path):
    courses = [tmp_path / f"course{i}" for i in range(SHARED_ENGINES + 1)]
    for course in courses:
        course.mkdir()
        _add_student(course, "ada")
    with open_gradebook(courses[0]) as gradebook:  # the least recently used: its engine was let go
        assert [student.id for student in gradebook.students] == ["ada"]
        first = gradebook.engine
    for course in courses[1:]:
        _students(course)
    with open_gradebook(courses[0]) as gradebook:
        assert gradebook.engine is not first


def test_a_forked_child_makes_its_own_engine(tmp_path):
    with open_gradebook(tmp_path) as gradebook:
        inherited = gradebook.engine
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only with an engine of its own that reads the gradebook
        try:
            with open_gradebook(tmp_path) as child:
                os._exit(0 if child.engine is not inherited and child.students == [] else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _table_checks(monkeypatch) -> list[str]:
    """The URLs of the gradebooks whose tables nbgrader checks (``create_all``) from now on."""
    import nbgrader.api

    calls, create_all = [], nbgrader.api.Base.metadata.create_all
    monkeypatch.setattr(nbgrader.api.Base.metadata, "create_all", lambda bind, **kw: (calls.append(str(bind.url)), create_all(bind=bind, **kw))[1])
    return calls


def test_a_gradebook_opened_again_in_a_process_skips_nbgraders_checks(tmp_path, monkeypatch):
    _add_student(tmp_path, "ada")  # the first opening in this process: checked
    checks = _table_checks(monkeypatch)
    _add_student(tmp_path, "grace")
    assert _students(tmp_path) == ["ada", "grace"]
    assert checks == []


def test_a_gradebook_replaced_or_emptied_is_checked_again(tmp_path, monkeypatch):
    import sqlite3

    _add_student(tmp_path, "ada")
    checks = _table_checks(monkeypatch)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE unrelated (x INTEGER)").connection.commit()
    os.replace(other, tmp_path / "gradebook.db")  # another file, without nbgrader's tables
    assert _students(tmp_path) == []  # the tables were made: the opening checked the new file
    (tmp_path / "gradebook.db").write_bytes(b"")  # the same file, emptied
    _add_student(tmp_path, "grace")
    assert _students(tmp_path) == ["grace"]
    assert len(checks) == 2


def test_a_forked_child_checks_a_gradebook_again(tmp_path):
    _add_student(tmp_path, "ada")
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only when its first opening ran nbgrader's checks
        try:
            import nbgrader.api

            calls = []
            create_all = nbgrader.api.Base.metadata.create_all
            nbgrader.api.Base.metadata.create_all = lambda bind, **kw: (calls.append(1), create_all(bind=bind, **kw))[1]
            os._exit(0 if _students(tmp_path) == ["ada"] and calls == [1] else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
