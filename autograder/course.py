"""The course folder: where ``source/``, ``release/`` and ``nbgrader_config.py`` live, and its assignments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

COURSE_ENV_VAR = "AUTOGRADER_COURSE"
CONFIG_NAME = "nbgrader_config.py"


class CourseError(RuntimeError):
    """The course folder or an assignment in it is missing or malformed."""


def find_course_root(start: Path | None = None) -> Path:
    """The course folder: ``$AUTOGRADER_COURSE``, else the first of ``start`` (default: cwd) and its parents
    that holds ``nbgrader_config.py`` and ``source/``.

    Raises:
        CourseError: no such folder.
    """
    if os.environ.get(COURSE_ENV_VAR):
        root = Path(os.environ[COURSE_ENV_VAR]).resolve()
        if not (root / CONFIG_NAME).is_file():
            raise CourseError(f"{COURSE_ENV_VAR}={root} has no {CONFIG_NAME}")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file() and (folder / "source").is_dir():
            return folder
    raise CourseError(f"no course folder (with {CONFIG_NAME} and source/) at or above {here}; set {COURSE_ENV_VAR}")


def assignments(root: Path) -> list[str]:
    """The assignment names: the folders of ``source/`` in name order (e.g. ``01_gradient_descent``)."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def check_assignment(root: Path, assignment: str) -> str:
    """Return ``assignment`` if the course has it, else raise ``CourseError`` listing the known ones."""
    known = assignments(root)
    if assignment not in known:
        raise CourseError(f"unknown assignment {assignment!r}; the course has {', '.join(known)}")
    return assignment


def notebook(root: Path, kind: str, assignment: str) -> Path:
    """The single notebook of ``assignment`` under ``kind`` (``"source"`` or ``"release"``)."""
    found = sorted((root / kind / assignment).glob("*.ipynb"))
    if len(found) != 1:
        raise CourseError(f"expected one notebook in {kind}/{assignment}/, found {len(found)}")
    return found[0]


def scratch_course(root: Path, into: Path) -> Path:
    """Copy the course's configuration and ``source/`` into the empty folder ``into`` and return it.

    nbgrader keeps its state (gradebook, release, submissions) in the course folder, so work that must not
    touch the real course (validation, sync checks) runs in such a copy.
    """
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / CONFIG_NAME, into / CONFIG_NAME)
    shutil.copytree(root / "source", into / "source", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return into
