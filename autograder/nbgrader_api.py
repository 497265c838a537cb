"""A thin layer over nbgrader's Python API, run from a given course folder."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from autograder.course import CONFIG_NAME

if TYPE_CHECKING:
    from nbgrader.api import Gradebook


class NbgraderError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's log."""


@contextlib.contextmanager
def in_course(root: Path) -> Iterator[None]:
    """Run inside ``root`` with this interpreter's ``bin/`` first on PATH (nbgrader runs ``alembic`` from PATH),
    a new gradebook stamped without a new process (``read_schema_head_in_process``), one SQLAlchemy engine per
    gradebook in this process (``share_engines_in_process``) and each gradebook file's tables and course checked
    once per process (``check_gradebooks_once_in_process``)."""
    read_schema_head_in_process()
    share_engines_in_process()
    check_gradebooks_once_in_process()
    previous_cwd, previous_path = Path.cwd(), os.environ.get("PATH", "")
    bin_dir = str(Path(sys.executable).parent)
    os.chdir(root)
    os.environ["PATH"] = bin_dir + os.pathsep + previous_path
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        os.environ["PATH"] = previous_path


@functools.cache
def schema_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read from nbgrader's migration scripts with
    alembic's API: what ``alembic heads`` prints first."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:///gradebook.db") as alembic_ini:
        return ScriptDirectory.from_config(Config(alembic_ini)).get_heads()[0]


@functools.cache
def read_schema_head_in_process() -> None:
    """Make nbgrader stamp each gradebook it creates with ``schema_head()``.

    nbgrader's ``Gradebook`` learns the revision by running the ``alembic heads`` executable
    (``nbgrader.api.get_alembic_version``): a new Python process that imports alembic and nbgrader, about
    2 CPU seconds per gradebook created (a batch creates one when it builds the template gradebook of a new
    or changed assignment). The same revision is read here once per process, in about a tenth of a second.
    """
    import nbgrader.api

    nbgrader.api.get_alembic_version = schema_head


SHARED_ENGINES = 8
"""How many gradebooks' engines a process keeps (``share_engines_in_process``): the course's, a batch's scratch ones."""


@functools.cache
def share_engines_in_process() -> None:
    """Make every nbgrader ``Gradebook`` of one database, in this process, use one SQLAlchemy engine.

    nbgrader opens a new ``Gradebook``, with a new engine, for each step that touches the database (about ten
    for one submission's autograde), and SQLAlchemy keeps its compiled statements per engine, so each opening
    compiled all of its queries anew, most of the CPU of opening a gradebook and reading a submission's grades.
    A shared engine keeps them compiled. Nothing else is kept: ``Gradebook.close`` disposes of the engine's
    connections, so a database file replaced between two openings is read afresh. Engines are per process (a
    forked child makes its own) and per URL; the ``SHARED_ENGINES`` most recently used are kept.
    """
    import threading
    from collections import OrderedDict

    import nbgrader.api

    create_engine, engines, lock = nbgrader.api.create_engine, OrderedDict(), threading.Lock()

    def shared_engine(url, **options):
        key = (os.getpid(), str(url), tuple(sorted(options.items())))
        with lock:
            if key not in engines:
                engines[key] = create_engine(url, **options)
                while len(engines) > SHARED_ENGINES:
                    engines.popitem(last=False)[1].dispose()
            engines.move_to_end(key)
            return engines[key]

    nbgrader.api.create_engine = shared_engine


def gradebook_file(db_url: str) -> tuple[str, int, int] | None:
    """(path, device, inode) of the SQLite file an absolute ``sqlite:///`` URL names; None for any other URL, or a
    file that is missing or empty (an empty file is a new gradebook, not a checked one whose inode came again)."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(db_url)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read is left to nbgrader
        return None
    if url.get_backend_name() != "sqlite" or not url.database or not os.path.isabs(url.database):
        return None
    try:
        found = os.stat(url.database)
    except OSError:
        return None
    return (url.database, found.st_dev, found.st_ino) if found.st_size else None


@functools.cache
def check_gradebooks_once_in_process() -> None:
    """Make an nbgrader ``Gradebook`` opened again on a gradebook file this process has opened before skip the
    checks that opening already made: that every table exists (creating the missing ones, and stamping a new
    file's schema revision) and that its course has a row.

    nbgrader runs those checks at every opening (about ten per submission, in the grading worker and again in
    the coordinator): several queries and a commit each time, about a third of opening a gradebook. Tables and
    courses are never dropped, so once checked they stay. The file is known by its device and inode: a file
    replaced since (another gradebook moved over it) is checked again, as is every file in a forked child.
    """
    import threading

    import nbgrader.api
    from sqlalchemy.orm import scoped_session, sessionmaker

    gradebook, checked, lock = nbgrader.api.Gradebook, set(), threading.Lock()
    open_and_check = gradebook.__init__

    def open_checked_once(self, db_url: str, course_id: str = "default_course", authenticator=None) -> None:
        found = gradebook_file(db_url)
        key = (os.getpid(), found, course_id)
        with lock:
            known = found is not None and key in checked
        if not known:
            open_and_check(self, db_url, course_id, authenticator)
            found = gradebook_file(db_url)  # a file the checks created
            if found is not None:
                with lock:
                    checked.add((os.getpid(), found, course_id))
            return
        self.engine = nbgrader.api.create_engine(db_url, echo=False, future=True)
        self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
        self.course_id, self.authenticator = course_id, authenticator

    gradebook.__init__ = open_checked_once


GRADEBOOK = "gradebook.db"
VALIDATE_ONCE = {"NotebookExporter": {"optimistic_validation": True}}
"""nbconvert validates the notebook against its schema after each of a converter's preprocessors (nine when
autograding); with this, once after the last. A notebook a step made invalid is still refused, and nbformat
validates it again when it is written."""


def gradebook_url(root: Path) -> str:
    """The SQLAlchemy URL of the course's gradebook, ``sqlite:///<root>/gradebook.db``."""
    return f"sqlite:///{Path(root) / GRADEBOOK}"


@contextlib.contextmanager
def open_gradebook(root: Path) -> Iterator[Gradebook]:
    """The course's nbgrader ``Gradebook`` (``gradebook.db`` of ``root``, created if missing), open inside the course.

    Yields:
        The open gradebook; it is closed on leaving, and nothing is committed but what its callers commit.
    """
    from nbgrader.api import Gradebook

    with in_course(root), Gradebook(gradebook_url(root)) as gradebook:
        yield gradebook


def make_api(root: Path, overrides: dict | None = None):
    """An ``NbGraderAPI`` for the course at ``root``, configured by its ``nbgrader_config.py``.

    Args:
        overrides: extra configuration, ``{"Execute": {"timeout": 60}}``, applied over the file's.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG_NAME, path=str(root)).load_config() if (root / CONFIG_NAME).exists() else Config()
    if overrides:
        config.merge(Config(overrides))
    config.CourseDirectory.root = str(root)
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def autograde_with(api, converter: type, assignment: str, student: str) -> dict:
    """``api.autograde(assignment, student, force=True, create=True)`` with ``converter`` (an ``Autograde``
    subclass) in place of nbgrader's ``Autograde``; returns nbgrader's result (``success``, ``error``, ``log``)."""
    from nbgrader.utils import capture_log, temp_attrs

    with temp_attrs(api.coursedir, assignment_id=assignment, student_id=student):
        app = converter(coursedir=api.coursedir, parent=api)
        app.force, app.create_student = True, True
        return capture_log(app)


def _checked(result: dict, what: str) -> dict:
    if not result.get("success"):
        raise NbgraderError(f"{what} failed: {result.get('error') or ''}\n{result.get('log') or ''}".strip())
    return result


def generate_assignment(root: Path, assignment: str) -> None:
    """``nbgrader generate_assignment ASSIGNMENT --force`` in the course at ``root``."""
    with in_course(root):
        _checked(make_api(root).generate_assignment(assignment, force=True, create=True), f"generate_assignment {assignment}")


def autograde(root: Path, assignment: str, student: str) -> None:
    """``nbgrader autograde ASSIGNMENT --student STUDENT --force`` in the course at ``root``."""
    with in_course(root):
        _checked(make_api(root).autograde(assignment, student, force=True, create=True), f"autograde {assignment} for {student}")


@dataclass(frozen=True)
class CellGrade:
    """One autograded test cell's score from the gradebook."""

    notebook: str
    cell: str
    score: float
    max_score: float


def cell_grades(root: Path, assignment: str, student: str) -> list[CellGrade]:
    """The autograded cells' scores of one submission, read from the course's gradebook."""
    with open_gradebook(root) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        return [
            CellGrade(nb.name, grade.name, float(grade.score), float(grade.max_score))
            for nb in submission.notebooks
            for grade in nb.grades
            if grade.auto_score is not None or grade.cell_type == "code"
        ]
