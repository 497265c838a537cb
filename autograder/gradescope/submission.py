"""The student's upload under Gradescope's ``submission/``, as one submission the pipeline can collect.

Gradescope puts whatever the student uploaded in ``/autograder/submission/``: a notebook of any name, several files,
folders, or a zip. ``stage_upload`` copies its regular files (no links; hidden and ``__MACOSX`` folders left out),
unpacks each zip with the pipeline's safe unpacking (no absolute paths, ``..``, links or zip bombs), and lays every
file out flat in nbgrader's layout, ``<into>/submission/<assignment>/``. The pipeline's ``collect`` then picks the
notebook (the only one, or the one named like the assignment) and says what is wrong with it (corrupt, another
assignment's, none at all).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from autograder.grading.submissions import IGNORED_FOLDERS, unpack_zip

STUDENT = "submission"
"""The student id the one submission is graded under (its folder's name in messages: ``submission/``)."""


def _files(folder: Path) -> list[Path]:
    """The regular files under ``folder``, in name order, outside hidden and ignored folders, links not followed."""
    found = []
    for current, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".") and name not in IGNORED_FOLDERS
                               and not os.path.islink(os.path.join(current, name)))
        found += [Path(current) / name for name in sorted(files) if not name.startswith(".")]
    return [path for path in found if path.is_file() and not path.is_symlink()]


def _free_name(folder: Path, name: str) -> Path:
    """``folder / name``, or ``folder / "<n>_<name>"`` when that is taken."""
    target, count = folder / name, 1
    while target.exists():
        target, count = folder / f"{count}_{name}", count + 1
    return target


def stage_upload(uploaded: Path, into: Path, assignment: str) -> Path:
    """Lay the upload out as ``into/submission/<assignment>/<files>``, zips unpacked; returns ``into`` (the pipeline's
    input folder). An upload without files leaves ``into/submission/`` empty (the pipeline's ``empty_submission``).

    Raises:
        SubmissionError: a zip is unreadable or refused (the message names it and the rule).
    """
    student = into / STUDENT
    student.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="upload-", dir=into) as tmp:
        unpacked = Path(tmp)
        files = []
        for path in _files(uploaded) if uploaded.is_dir() else []:
            files += _files(unpack_zip(path, unpacked)) if path.suffix.lower() == ".zip" else [path]
        if files:
            (student / assignment).mkdir()
        for path in files:
            shutil.copyfile(path, _free_name(student / assignment, path.name))
    return into
