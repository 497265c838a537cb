"""``autograder gradescope ASSIGNMENT``: the zip Gradescope asks for, to grade one assignment there.

The zip holds ``setup.sh`` and ``run_autograder`` at its root, the kit's package (grading pipeline, hidden checks,
reference solution) under ``lib/``, the course's configuration and the assignment's source and release notebooks
under ``course/``, the pinned environment, and the MNIST sample (``--data``) or the URL setup downloads it from
(``--data-url``). Its layout once unpacked is ``autograder.gradescope.container``'s.
"""

from __future__ import annotations

import importlib.metadata
import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import autograder
from autograder.course import CONFIG_NAME, CourseError, check_assignment, find_course_root
from autograder.gradescope.container import DATA_ARCHIVE, ZIP_CONFIG, ZipConfig
from autograder.gradescope.scripts import RUN_AUTOGRADER, SETUP_SH

CONSTRAINTS = Path(".ci") / "constraints.txt"
SKIPPED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints"})
EXECUTABLE = 0o755
READABLE = 0o644


class BuildError(RuntimeError):
    """The zip cannot be built (unknown assignment, no MNIST sample for an assignment that needs it, no constraints)."""


@dataclass(frozen=True)
class BuiltZip:
    """The zip written: its path, size in bytes, and members with their uncompressed sizes."""

    path: Path
    size: int
    members: list[tuple[str, int]]


def requirements() -> str:
    """The kit's own dependencies (no extras), one a line, as pip reads them."""
    wanted = [line for line in importlib.metadata.requires("autograder") or [] if "extra ==" not in line]
    return "\n".join(wanted) + "\n"


def constraints_file(course_root: Path) -> Path:
    """The pinned versions: ``.ci/constraints.txt`` of the course, else of the clone the package runs from.

    Raises:
        BuildError: neither exists.
    """
    for base in (course_root, Path(autograder.__file__).resolve().parents[1]):
        if (base / CONSTRAINTS).is_file():
            return base / CONSTRAINTS
    raise BuildError(f"no {CONSTRAINTS} in {course_root} nor beside the autograder package: the zip pins its environment with it")


def _package_files() -> list[tuple[Path, str]]:
    package = Path(autograder.__file__).resolve().parent
    found = []
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
            found.append((path, f"lib/autograder/{relative.as_posix()}"))
    return found


def _course_files(course_root: Path, assignment: str) -> list[tuple[Path, str]]:
    """nbgrader_config.py, the assignment's source notebooks, and every assignment's release notebooks (no hidden
    tests: they let a notebook of another assignment be named as such)."""
    found = [(course_root / CONFIG_NAME, f"course/{CONFIG_NAME}")]
    for path in sorted((course_root / "source" / assignment).glob("*.ipynb")):
        found.append((path, f"course/source/{assignment}/{path.name}"))
    for path in sorted((course_root / "release").glob("*/*.ipynb")):
        found.append((path, f"course/release/{path.parent.name}/{path.name}"))
    return found


def _archive_bytes(data: Path) -> bytes:
    """``data`` as a .tgz: the file itself, or a folder in the MNIST_SAMPLE layout packed as ``mnist_sample/``.

    Raises:
        BuildError: ``data`` does not exist.
    """
    if data.is_file():
        return data.read_bytes()
    if not data.is_dir():
        raise BuildError(f"--data {data} does not exist")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(data, arcname="mnist_sample", filter=lambda info: None if info.name.endswith(".pt") else info)
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, content: bytes, mode: int = READABLE) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, content)


def _needs_sample(assignment: str) -> bool:
    from autograder.checks.declared import assignment_needs_sample

    return assignment_needs_sample(assignment)


def build_zip(course_root: Path, assignment: str, out: Path, data: Path | None = None, config: ZipConfig | None = None) -> BuiltZip:
    """Write the Gradescope autograder zip of ``assignment`` to ``out``.

    Args:
        course_root: the course (``nbgrader_config.py``, ``source/``, ``release/``).
        assignment: the assignment to grade.
        out: the zip to write (its folder is created if needed).
        data: the MNIST sample (a .tgz or an unpacked folder) to ship in the zip; None: not shipped.
        config: what ``source/gradescope.json`` says (``config.data_url``: where setup downloads the sample when
            ``data`` is None); default: the assignment with default limits.

    Raises:
        BuildError: unknown assignment, missing release notebook or constraints, or an assignment whose checks
            need the MNIST sample with neither ``data`` nor ``config.data_url``.
    """
    config = config or ZipConfig(assignment)
    try:
        check_assignment(course_root, assignment)
    except CourseError as error:
        raise BuildError(str(error)) from error
    if not list((course_root / "release" / assignment).glob("*.ipynb")):
        raise BuildError(f"release/{assignment}/ has no notebook: run `autograder release` first")
    if data is None and config.data_url is None and _needs_sample(assignment):
        raise BuildError(f"{assignment} needs the MNIST sample: ship it with --data PATH or give --data-url URL")
    files = [*_package_files(), *_course_files(course_root, assignment), (constraints_file(course_root), "constraints.txt")]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), EXECUTABLE)
        _add(archive, "run_autograder", RUN_AUTOGRADER.encode(), EXECUTABLE)
        _add(archive, ZIP_CONFIG, config.to_json().encode())
        _add(archive, "requirements.txt", requirements().encode())
        for path, name in files:
            _add(archive, name, path.read_bytes())
        if data is not None:
            _add(archive, f"data/{DATA_ARCHIVE}", _archive_bytes(Path(data)))
    with zipfile.ZipFile(out) as archive:
        members = [(info.filename, info.file_size) for info in archive.infolist()]
    return BuiltZip(out, out.stat().st_size, members)


def main(*, assignment: str, course: Path | None = None, out: Path | None = None, data: Path | None = None,
         data_url: str | None = None, data_sha256: str | None = None, limits: dict[str, int] | None = None) -> BuiltZip:
    """Build the zip of ``assignment`` of the course at or above ``course`` (default: the current folder).

    Args:
        out: the zip's path (default ``autograder.zip`` in the current folder).
        data: the MNIST sample to ship (takes precedence over ``data_url``).
        data_url, data_sha256: where setup downloads the sample, and the digest it checks.
        limits: per-submission limits other than the defaults (``cell_timeout``, ``cpu_seconds``, ``memory_mb``).

    Raises:
        BuildError, CourseError: as ``build_zip`` and ``find_course_root``.
    """
    root = find_course_root(course)
    config = ZipConfig(assignment, None if data is not None else data_url, None if data is not None else data_sha256, dict(limits or {}))
    return build_zip(root, assignment, out or Path("autograder.zip"), data, config)
