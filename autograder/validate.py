"""Prove an assignment: its reference solution gets full points and its untouched stubs get zero.

Runs real ``nbgrader autograde`` on two submissions in a scratch copy of the course: the source notebook
(solutions filled in) and the release notebook (stubs untouched).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.course import assignments, check_assignment, notebook, scratch_course
from autograder.nbgrader_api import CellGrade, autograde, cell_grades, generate_assignment

REFERENCE_STUDENT, STUBS_STUDENT = "reference-solution", "untouched-stubs"


@dataclass(frozen=True)
class Validation:
    """The autograded cells of the reference and of the stubs for one assignment, and the time it took."""

    assignment: str
    reference: list[CellGrade]
    stubs: list[CellGrade]
    seconds: float

    @property
    def max_score(self) -> float:
        return sum(cell.max_score for cell in self.reference)

    @property
    def reference_passes(self) -> bool:
        return bool(self.reference) and all(cell.score == cell.max_score for cell in self.reference)

    @property
    def stubs_score_zero(self) -> bool:
        return bool(self.stubs) and all(cell.score == 0 for cell in self.stubs)

    @property
    def ok(self) -> bool:
        return self.reference_passes and self.stubs_score_zero


def _submit(course: Path, student: str, assignment: str, source_notebook: Path) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source_notebook, folder / source_notebook.name)


def validate_assignment(root: Path, assignment: str) -> Validation:
    """Autograde the reference and the untouched stubs of ``assignment`` in a scratch course.

    Raises:
        DataError: the assignment's checks need the MNIST sample and it is not provisioned (without it the
            reference could not get full points); nothing is downloaded.
    """
    from autograder.checks.data import require_sample

    check_assignment(root, assignment)
    require_sample(assignment)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as tmp:
        course = scratch_course(root, Path(tmp) / "course")
        generate_assignment(course, assignment)
        source_nb = notebook(course, "source", assignment)
        _submit(course, REFERENCE_STUDENT, assignment, source_nb)
        _submit(course, STUBS_STUDENT, assignment, notebook(course, "release", assignment))
        grades = {}
        for student in (REFERENCE_STUDENT, STUBS_STUDENT):
            autograde(course, assignment, student)
            grades[student] = cell_grades(course, assignment, student)
    return Validation(assignment, grades[REFERENCE_STUDENT], grades[STUBS_STUDENT], time.perf_counter() - start)


def validate(root: Path, only: str | None = None) -> list[Validation]:
    """Validate every assignment of the course (or ``only`` one); refuses before the first when one needs the
    MNIST sample and it is not provisioned (``DataError``)."""
    from autograder.checks.data import require_sample

    names = [only] if only else assignments(root)
    for name in names:
        check_assignment(root, name)
        require_sample(name)
    return [validate_assignment(root, name) for name in names]
