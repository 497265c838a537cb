"""Before a batch starts: the assignment exists, every output can be written, the disks have room, the MNIST sample
is there when the checks need it, and a namespace sandbox can be made for the kernels.

Everything here only looks: nothing is graded, staged or written (but a probe file, removed at once).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from autograder.course import check_assignment
from autograder.grading.results import results_folder
from autograder.nbgrader_api import GRADEBOOK

MIN_FREE_BYTES = 200 * 2**20


class GradingError(RuntimeError):
    """The batch cannot start (bad assignment, unwritable or full output folder, unreadable input)."""


def _check_free_space(folder: Path, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise GradingError(f"only {free // 2**20} MiB free on the disk of {what} {folder}; need at least {MIN_FREE_BYTES // 2**20} MiB")


def _check_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise GradingError(f"cannot write to {folder}: {error.strerror or error}") from error


def _check_writable_file(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as error:
        raise GradingError(f"cannot write to {path}: {error.strerror or error}") from error


def preflight(course_root: Path, assignment: str) -> None:
    """Refuse to start when the assignment is unknown, an output cannot be written, or the MNIST sample it needs is missing.

    Checked before anything is graded or staged: free space on the course's disk and on the disk of the
    scratch folders (``tempfile.gettempdir()``), and write access to the course, ``grading/<assignment>/``,
    the scratch folder, and, where they exist, ``submitted/``, ``autograded/`` and ``gradebook.db``.

    Raises:
        GradingError: the reason, naming the path.
        CourseError: the course has no such assignment.
    """
    check_assignment(course_root, assignment)
    scratch = Path(tempfile.gettempdir())
    _check_free_space(course_root, "the course")
    _check_free_space(scratch, "the scratch folder")
    for folder in (course_root, results_folder(course_root, assignment), scratch):
        _check_writable_folder(folder)
    for name in ("submitted", "autograded"):
        if (course_root / name).is_dir():
            _check_writable_folder(course_root / name)
    if (course_root / GRADEBOOK).exists():
        _check_writable_file(course_root / GRADEBOOK)
    _require_sample(assignment)


def _require_sample(assignment: str) -> None:
    """Refuse (never download) when the assignment's checks need the MNIST sample and it is not provisioned."""
    from autograder.checks.data import require_sample
    from autograder.data import DataError

    try:
        require_sample(assignment)
    except DataError as error:
        raise GradingError(str(error)) from error


NO_SANDBOX = ("no namespace sandbox can be made for the notebooks' kernels: {reason}. Without one, a notebook's native code "
              "(torch.from_file, numpy.fromfile, mmap) can read the reference solution and the gradebook and write into the course. "
              "Fix that, or grade a cohort you trust with --unsafe-no-sandbox")


def no_sandbox_reason() -> str | None:
    """Why no namespace sandbox can be made for a kernel here, or None when one can."""
    from autograder.grading.sandbox import namespaces

    support = namespaces.probe(read_only=namespaces.python_paths())
    return None if support.available else support.reason
