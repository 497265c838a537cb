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
    a new gradebook stamped without a new process (``read_schema_head_in_process``) and one SQLAlchemy engine per
    gradebook in this process (``share_engines_in_process``)."""
    read_schema_head_in_process()
    share_engines_in_process()
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
