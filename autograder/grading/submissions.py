"""Collecting the submissions of one assignment, and staging them in nbgrader's layout.

``collect`` accepts three forms of input:

- nbgrader's layout: ``submitted/<student>/<assignment>/*.ipynb`` (``source`` is ``submitted/`` or its parent);
- a flat folder of notebooks named by student: ``alice.ipynb`` or ``alice_<assignment>.ipynb``;
- a ``.zip`` as learning-management systems export it, holding flat notebooks, ``<student>/...ipynb`` folders or
  nbgrader's layout, possibly under one top folder. It is unpacked under ``ZipLimits``: members with absolute
  paths or ``..`` escaping the target, symbolic links and zip bombs are refused (``archives``).

Every submission found becomes a ``Submission``; one that cannot be graded carries a status and a reason naming
the file (``inspection``). Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``) and macOS ``__MACOSX`` folders are
ignored, as are files other than notebooks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from autograder.grading.archives import SubmissionError, ZipLimits, unpack_zip
from autograder.grading.inspection import NOTEBOOK_SUFFIX, NotebookInspector, graded_ids
from autograder.grading.results import Status

IGNORED_FOLDERS = frozenset({"__MACOSX"})
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_UNWRAP = 4


@dataclass
class Submission:
    """One student's submission of one assignment.

    Attributes:
        student: the student id, made of ``[A-Za-z0-9_.-]`` only.
        notebook: the one notebook to grade; ``None`` when there is none.
        status: ``None`` when the notebook can be graded, else why not (``CORRUPT``, ``MISSING``,
            ``WRONG_ASSIGNMENT``, ``EMPTY``).
        reason: a sentence naming the file and the problem, when ``status`` is set.
    """

    student: str
    notebook: Path | None
    status: Status | None = None
    reason: str = ""

    @property
    def gradable(self) -> bool:
        """Whether the notebook is to be executed and scored."""
        return self.notebook is not None and (self.status is None or self.status.gradable)


def student_id(raw: str) -> str:
    """``raw`` (a folder or file name) as a student id: runs of characters outside ``[A-Za-z0-9_.-]`` become
    ``_``, and leading or trailing ``.``, ``_`` and ``-`` are dropped (``"Alice Smith"`` -> ``"Alice_Smith"``).

    Raises:
        SubmissionError: nothing is left.
    """
    cleaned = _UNSAFE_ID_CHARACTERS.sub("_", raw.strip()).strip("._-")
    if not cleaned:
        raise SubmissionError(f"{raw!r} names no student: name each submission after its student")
    return cleaned


def collect(
    source: Path,
    assignment: str,
    expected_notebook: str,
    work_dir: Path,
    release_notebook: Path,
    limits: ZipLimits | None = None,
) -> list[Submission]:
    """Find every submission of ``assignment`` in ``source`` and say which can be graded.

    Args:
        source: a folder (nbgrader's layout, ``submitted/`` itself, or a flat folder of notebooks) or a ``.zip``.
        assignment: the assignment's name, e.g. ``"04_mnist_sgd"``.
        expected_notebook: the notebook name nbgrader expects, e.g. ``"04_mnist_sgd.ipynb"``; among several
            notebooks of one student, the one with this name is graded.
        work_dir: where a ``.zip`` is unpacked (created if missing; a fresh folder is made inside it).
        release_notebook: ``release/<assignment>/<assignment>.ipynb``; its answer and test cells' grade_ids tell
            this assignment's notebooks from others'.
        limits: the limits for a ``.zip`` (default: ``ZipLimits()``).

    Returns:
        One ``Submission`` per student, sorted by student. A student found twice keeps the first; the later one
        has status ``MISSING`` with reason "duplicate student id ...".

    Raises:
        SubmissionError: ``source`` is missing or neither a folder nor a zip, the archive is refused or
            unreadable, a file names no student, or the release notebook cannot be read.
    """
    source = Path(source)
    if source.is_dir():
        folder = source
    elif source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)):
        folder = unpack_zip(source, Path(work_dir), limits)
    elif source.exists():
        raise SubmissionError(f"{source} is neither a folder nor a .zip archive of submissions")
    else:
        raise SubmissionError(f"{source} does not exist")
    expected_ids = _release_grade_ids(release_notebook)
    inspector = NotebookInspector(assignment, expected_ids, release_notebook)
    root, nbgrader_layout = _submissions_root(folder, assignment)
    found: list[Submission] = []
    first_source: dict[str, str] = {}
    for entry in _visible(root):
        if entry.is_file() and entry.suffix.lower() == NOTEBOOK_SUFFIX:
            submission = _inspected(inspector, _flat_student(entry, assignment), entry)
        elif entry.is_dir():
            submission = _from_folder(entry, assignment, expected_notebook, nbgrader_layout, inspector)
        else:
            continue
        if submission.student in first_source:
            submission = Submission(
                submission.student, None, Status.MISSING,
                f"duplicate student id {submission.student}: {entry.name} and {first_source[submission.student]} "
                f"both name this student; only {first_source[submission.student]} is graded",
            )
        else:
            first_source[submission.student] = entry.name
        found.append(submission)
    return sorted(found, key=lambda submission: submission.student)


def stage(submissions: Iterable[Submission], course_root: Path, assignment: str, expected_notebook: str) -> None:
    """Copy each gradable submission's notebook to ``course_root/submitted/<student>/<assignment>/<expected_notebook>``.

    A misnamed notebook is renamed on the way (nbgrader grades only the expected name). A notebook that already
    is that file is left alone. A ``timestamp.txt`` beside a notebook in nbgrader's layout is copied with it
    (nbgrader reads lateness from it). Submissions with an ungradable status or no notebook are skipped.

    Raises:
        OSError: a copy failed.
    """
    for submission in submissions:
        if not submission.gradable:
            continue
        notebook = Path(submission.notebook)
        target_folder = Path(course_root) / "submitted" / submission.student / assignment
        target = target_folder / expected_notebook
        target_folder.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and os.path.samefile(notebook, target)):
            copy_replacing(notebook, target)
        timestamp = notebook.parent / "timestamp.txt"
        if notebook.parent.name == assignment and timestamp.is_file():
            target_timestamp = target_folder / "timestamp.txt"
            if not (target_timestamp.exists() and os.path.samefile(timestamp, target_timestamp)):
                copy_replacing(timestamp, target_timestamp)


def copy_replacing(source: Path, target: Path) -> None:
    """Copy ``source``'s bytes to ``target`` through a new file renamed over it: a read-only ``target`` (as
    nbgrader leaves the files it collects) is replaced, not refused, when grading runs as an ordinary user."""
    staged = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def _visible(folder: Path) -> list[Path]:
    """The entries of ``folder`` that may hold submissions, in name order."""
    return sorted(
        (entry for entry in folder.iterdir() if not entry.name.startswith(".") and entry.name not in IGNORED_FOLDERS),
        key=lambda entry: entry.name,
    )


def _visible_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, outside hidden and ignored folders, without following links to folders."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in IGNORED_FOLDERS)
        found.extend(Path(current) / f for f in sorted(files) if not f.startswith("."))
    return found


def _submissions_root(folder: Path, assignment: str) -> tuple[Path, bool]:
    """The folder whose entries are the students, and whether it is nbgrader's layout.

    Descends into ``submitted/`` when there is one, and through a single top folder that holds student folders
    or several notebooks (as archives often wrap their contents).
    """
    for _ in range(_MAX_UNWRAP):
        if (folder / "submitted").is_dir():
            folder = folder / "submitted"
            break
        entries = _visible(folder)
        if len(entries) == 1 and entries[0].is_dir() and _holds_students(entries[0], assignment):
            folder = entries[0]
            continue
        break
    nbgrader_layout = any(entry.is_dir() and (entry / assignment).is_dir() for entry in _visible(folder))
    return folder, nbgrader_layout


def _holds_students(folder: Path, assignment: str) -> bool:
    entries = _visible(folder)
    if any(entry.is_dir() and entry.name != assignment for entry in entries):
        return True
    return sum(entry.is_file() and entry.suffix.lower() == NOTEBOOK_SUFFIX for entry in entries) > 1


def _flat_student(notebook: Path, assignment: str) -> str:
    """The student of a notebook in a flat folder: its stem without a trailing ``_<assignment>``.

    Raises:
        SubmissionError: nothing names the student (e.g. ``<assignment>.ipynb``).
    """
    stem = notebook.stem
    suffix = f"_{assignment}"
    if stem.lower() == assignment.lower():
        stem = ""
    elif stem.lower().endswith(suffix.lower()):
        stem = stem[: -len(suffix)]
    try:
        return student_id(stem)
    except SubmissionError as error:
        raise SubmissionError(f"cannot tell whose notebook {notebook.name} is: name it <student>{NOTEBOOK_SUFFIX}") from error


def _from_folder(folder: Path, assignment: str, expected: str, nbgrader_layout: bool, inspector: NotebookInspector) -> Submission:
    """The submission in one student's folder."""
    student = student_id(folder.name)
    if nbgrader_layout:
        search = folder / assignment
        if not search.is_dir():
            if not _visible_files(folder):
                return Submission(student, None, Status.EMPTY, f"{folder.name}/ holds no files")
            return Submission(student, None, Status.MISSING, f"{folder.name}/ has no {assignment}/ folder")
        notebooks = [p for p in _visible(search) if p.is_file() and p.suffix.lower() == NOTEBOOK_SUFFIX]
        where = f"{folder.name}/{assignment}/"
    else:
        search = folder
        notebooks = [p for p in _visible_files(folder) if p.suffix.lower() == NOTEBOOK_SUFFIX]
        where = f"{folder.name}/"
    if not notebooks:
        files = _visible_files(search)
        if not files:
            return Submission(student, None, Status.EMPTY, f"{where} holds no files")
        names = ", ".join(str(p.relative_to(search)) for p in files[:10])
        return Submission(student, None, Status.MISSING, f"no notebook in {where} (found: {names})")
    if len(notebooks) > 1:
        named = [p for p in notebooks if p.name == expected]
        if len(named) != 1:
            names = ", ".join(str(p.relative_to(search)) for p in notebooks)
            reason = f"{len(notebooks)} notebooks in {where} and not one named {expected}: {names}"
            return Submission(student, None, Status.MISSING, reason)
        notebooks = named
    return _inspected(inspector, student, notebooks[0])


def _release_grade_ids(release_notebook: Path) -> set[str]:
    try:
        ids, _ = graded_ids(json.loads(Path(release_notebook).read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError) as error:
        raise SubmissionError(f"cannot read the release notebook {release_notebook}: {error}") from error
    if not ids:
        raise SubmissionError(f"the release notebook {release_notebook} has no answer or test cells")
    return ids


def _inspected(inspector: NotebookInspector, student: str, notebook: Path) -> Submission:
    """The submission of ``student`` whose notebook is ``notebook``, with a status when it cannot be graded."""
    status, reason = inspector.problem(notebook)
    return Submission(student, notebook, status, reason)
