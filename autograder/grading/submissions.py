"""Collecting the submissions of one assignment, and staging them in nbgrader's layout.

``collect`` accepts three forms of input:

- nbgrader's layout: ``submitted/<student>/<assignment>/*.ipynb`` (``source`` is ``submitted/`` or its parent);
- a flat folder of notebooks named by student: ``alice.ipynb`` or ``alice_<assignment>.ipynb``;
- a ``.zip`` as learning-management systems export it, holding flat notebooks, ``<student>/...ipynb`` folders or
  nbgrader's layout, possibly under one top folder. It is unpacked under ``ZipLimits``: members with absolute
  paths or ``..`` escaping the target, symbolic links and zip bombs are refused.

Every submission found becomes a ``Submission``; one that cannot be graded carries a status and a reason naming
the file. Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``) and macOS ``__MACOSX`` folders are
ignored, as are files other than notebooks.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from autograder.grading.results import Status

NOTEBOOK_SUFFIX = ".ipynb"
IGNORED_FOLDERS = frozenset({"__MACOSX"})
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")
_CHUNK_BYTES = 2**20
_MAX_UNWRAP = 4


class SubmissionError(RuntimeError):
    """The submissions cannot be read at all: a missing input, a refused or unreadable archive, a file that
    names no student, an unreadable release notebook."""


@dataclass(frozen=True)
class ZipLimits:
    """What an archive of submissions may hold.

    Attributes:
        max_total_bytes: uncompressed bytes of all members together.
        max_member_bytes: uncompressed bytes of one member.
        max_members: number of members (files and folders).
        max_ratio: uncompressed / compressed size of one member of at least ``ratio_floor_bytes``.
        ratio_floor_bytes: members smaller than this are not held to ``max_ratio``.
    """

    max_total_bytes: int = 200 * 2**20
    max_member_bytes: int = 50 * 2**20
    max_members: int = 10_000
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 2**20


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
    inspector = _Inspector(assignment, expected_ids, release_notebook)
    root, nbgrader_layout = _submissions_root(folder, assignment)
    found: list[Submission] = []
    first_source: dict[str, str] = {}
    for entry in _visible(root):
        if entry.is_file() and entry.suffix.lower() == NOTEBOOK_SUFFIX:
            submission = inspector.inspect(_flat_student(entry, assignment), entry)
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


def unpack_zip(archive: Path, work_dir: Path, limits: ZipLimits | None = None) -> Path:
    """Unpack ``archive`` into a fresh folder inside ``work_dir``, refusing anything unsafe.

    Every member is checked before anything is written: its path must stay inside the target (no absolute
    path, drive letter or ``..`` escape), it must not be a symbolic link or encrypted, and the sizes declared
    must respect ``limits``. While writing, the bytes actually produced are counted against the same limits.

    Returns:
        The folder holding the archive's contents.

    Raises:
        SubmissionError: the archive is unreadable or refused; the message names the member and the rule.
            Nothing unpacked is left behind.
    """
    limits = limits or ZipLimits()
    name = archive.name
    try:
        opened = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{name} is not a readable zip archive: {error}") from error
    with opened:
        members = opened.infolist()
        if len(members) > limits.max_members:
            raise SubmissionError(f"{name} has {len(members)} members, more than the limit of {limits.max_members}")
        plan = _plan_members(members, name, limits)
        work_dir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix="unzipped-", dir=work_dir))
        try:
            _write_members(opened, plan, target, name, limits)
        except SubmissionError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, EOFError, NotImplementedError) as error:
            shutil.rmtree(target, ignore_errors=True)
            raise SubmissionError(f"{name} cannot be unpacked: {error}") from error
    return target


def _plan_members(members: list[zipfile.ZipInfo], name: str, limits: ZipLimits) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The members to write with their relative path parts, after checking every member."""
    plan = []
    total = 0
    for info in members:
        member = info.filename
        if stat.S_ISLNK(info.external_attr >> 16):
            raise SubmissionError(f"{name}: member {member!r} is a symbolic link; links are refused")
        parts = _safe_parts(member, name)
        if info.flag_bits & 0x1:
            raise SubmissionError(f"{name}: member {member!r} is encrypted")
        if not parts or info.is_dir():
            plan.append((info, parts))
            continue
        if info.file_size > limits.max_member_bytes:
            raise SubmissionError(
                f"{name}: member {member!r} unpacks to {info.file_size} bytes, more than the limit of {limits.max_member_bytes}"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise SubmissionError(f"{name} unpacks to more than the limit of {limits.max_total_bytes} bytes")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise SubmissionError(
                f"{name}: member {member!r} is compressed {ratio:.0f} to 1, more than the limit of {limits.max_ratio:.0f} "
                "to 1 (a zip bomb?)"
            )
        plan.append((info, parts))
    return plan


def _safe_parts(member: str, name: str) -> tuple[str, ...]:
    """The path parts of ``member`` inside the target folder; raises when it would land outside."""
    path = member.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise SubmissionError(f"{name}: member {member!r} has an absolute path")
    normal = posixpath.normpath(path) if path else "."
    parts = PurePosixPath(normal).parts
    if parts and parts[0] == "..":
        raise SubmissionError(f"{name}: member {member!r} escapes the unpacking folder with '..'")
    return parts


def _write_members(
    opened: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], target: Path, name: str, limits: ZipLimits
) -> None:
    root = target.resolve()
    total = 0
    for info, parts in plan:
        if not parts:
            continue
        destination = target.joinpath(*parts)
        if not destination.resolve().is_relative_to(root):
            raise SubmissionError(f"{name}: member {info.filename!r} escapes the unpacking folder")
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with opened.open(info) as member, open(destination, "wb") as out:
            while chunk := member.read(_CHUNK_BYTES):
                written += len(chunk)
                total += len(chunk)
                if written > min(info.file_size, limits.max_member_bytes) or total > limits.max_total_bytes:
                    raise SubmissionError(f"{name}: member {info.filename!r} unpacks to more bytes than allowed")
                out.write(chunk)


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


def _from_folder(folder: Path, assignment: str, expected: str, nbgrader_layout: bool, inspector: "_Inspector") -> Submission:
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
    return inspector.inspect(student, notebooks[0])


def _graded_ids(data: dict) -> tuple[set[str], bool]:
    """The grade_ids of answer and test cells, and whether any cell has nbgrader metadata."""
    ids, any_nbgrader = set(), False
    for cell in data.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
        if not isinstance(meta, dict):
            continue
        any_nbgrader = True
        if (meta.get("solution") or meta.get("grade")) and meta.get("grade_id"):
            ids.add(str(meta["grade_id"]))
    return ids, any_nbgrader


def _release_grade_ids(release_notebook: Path) -> set[str]:
    try:
        ids, _ = _graded_ids(json.loads(Path(release_notebook).read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError) as error:
        raise SubmissionError(f"cannot read the release notebook {release_notebook}: {error}") from error
    if not ids:
        raise SubmissionError(f"the release notebook {release_notebook} has no answer or test cells")
    return ids


class _Inspector:
    """Checks notebooks against one assignment's release notebook."""

    def __init__(self, assignment: str, expected_ids: set[str], release_notebook: Path) -> None:
        self.assignment = assignment
        self.expected_ids = expected_ids
        self.release_notebook = Path(release_notebook)
        self._others: dict[str, set[str]] | None = None

    def inspect(self, student: str, notebook: Path) -> Submission:
        """The submission of ``student`` whose notebook is ``notebook``, with a status when it cannot be graded."""
        status, reason = self._problem(notebook)
        return Submission(student, notebook, status, reason)

    def _problem(self, notebook: Path) -> tuple[Status | None, str]:
        name = notebook.name
        try:
            data = json.loads(notebook.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            return Status.CORRUPT, f"{name} is not a text file: {error}"
        except json.JSONDecodeError as error:
            return Status.CORRUPT, f"{name} is not valid JSON: {error}"
        except OSError as error:
            return Status.CORRUPT, f"{name} cannot be read: {error.strerror or error}"
        if not isinstance(data, dict) or data.get("nbformat") != 4:
            version = data.get("nbformat") if isinstance(data, dict) else None
            return Status.CORRUPT, f"{name} is not an nbformat 4 notebook (nbformat: {version!r})"
        cells = data.get("cells")
        if not isinstance(cells, list) or not all(isinstance(cell, dict) and "cell_type" in cell for cell in cells):
            return Status.CORRUPT, f"{name} has no valid list of cells"
        ids, any_nbgrader = _graded_ids(data)
        if not any_nbgrader:
            return Status.WRONG_ASSIGNMENT, f"{name} has no nbgrader cells: it is not a copy of the {self.assignment} notebook"
        if not ids & self.expected_ids:
            other = self._guess(ids)
            listed = ", ".join(sorted(ids)[:6]) or "none"
            if other:
                reason = f"{name} is a notebook of {other}, not {self.assignment} (its graded cells: {listed})"
            else:
                reason = f"{name} has none of the graded cells of {self.assignment} (its graded cells: {listed})"
            return Status.WRONG_ASSIGNMENT, reason
        return None, ""

    def _guess(self, ids: set[str]) -> str | None:
        """The other assignment of the course whose release notebook shares the most grade_ids with ``ids``."""
        if self._others is None:
            self._others = {}
            release_root = self.release_notebook.parent.parent
            folders = sorted(p for p in release_root.iterdir() if p.is_dir()) if release_root.is_dir() else []
            for folder in folders:
                if folder.name == self.release_notebook.parent.name:
                    continue
                for candidate in folder.glob(f"*{NOTEBOOK_SUFFIX}"):
                    try:
                        self._others[folder.name] = _graded_ids(json.loads(candidate.read_text(encoding="utf-8")))[0]
                    except (OSError, ValueError, AttributeError):
                        continue
        scores = {name: len(ids & other) for name, other in self._others.items()}
        best = max(scores, key=lambda name: scores[name], default=None)
        return best if best is not None and scores[best] > 0 else None
