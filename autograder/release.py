"""Generate ``release/`` from ``source/`` with nbgrader, and compare a release with a fresh generation."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.course import assignments, check_assignment, notebook, scratch_course
from autograder.nbgrader_api import generate_assignment
from autograder.nbgrader_cells import nbgrader_metadata

STUDENT_REQUIREMENTS = "requirements.txt"


def regenerate_release(root: Path, only: str | None = None) -> list[Path]:
    """Regenerate ``release/<assignment>/`` for every assignment (or ``only`` one) of the course at ``root``.

    Also copies ``source/requirements.txt`` (what students install) to ``release/``.

    Returns:
        The release notebooks written.
    """
    names = [check_assignment(root, only)] if only else assignments(root)
    for name in names:
        generate_assignment(root, name)
    requirements = root / "source" / STUDENT_REQUIREMENTS
    if requirements.exists():
        shutil.copy2(requirements, root / "release" / STUDENT_REQUIREMENTS)
    return [notebook(root, "release", name) for name in names]


@dataclass(frozen=True)
class ReleaseDifference:
    """A release notebook that differs from what ``source/`` generates now."""

    assignment: str
    detail: str


def _cells(path: Path) -> list[tuple[str, str, dict]]:
    nb = nbformat.read(path, as_version=4)
    return [(cell.cell_type, cell.source, nbgrader_metadata(cell)) for cell in nb.cells]


def release_differences(root: Path) -> list[ReleaseDifference]:
    """Regenerate every assignment in a scratch copy of the course and compare with the committed ``release/``.

    Returns:
        One entry per assignment whose committed release differs (cell types, sources or nbgrader metadata);
        empty when ``release/`` is in sync with ``source/``.
    """
    differences = []
    with tempfile.TemporaryDirectory(prefix="autograder-release-") as tmp:
        scratch = scratch_course(root, Path(tmp) / "course")
        for name in assignments(root):
            generate_assignment(scratch, name)
            try:
                committed = _cells(notebook(root, "release", name))
            except Exception as error:  # noqa: BLE001 - a missing or unreadable release is a difference
                differences.append(ReleaseDifference(name, f"release notebook unreadable: {error}"))
                continue
            fresh = _cells(notebook(scratch, "release", name))
            if committed != fresh:
                where = next((i for i, (a, b) in enumerate(zip(committed, fresh)) if a != b), min(len(committed), len(fresh)))
                differences.append(ReleaseDifference(name, f"differs from source/ from cell {where} on"))
    return differences
