"""Unpacking a ``.zip`` of submissions, as learning-management systems export it, refusing anything unsafe.

Members with absolute paths or ``..`` escaping the target, symbolic links, encrypted members and zip bombs
(``ZipLimits``) are refused before anything is written, and the bytes actually written are counted against the
same limits. ``SubmissionError`` is also what ``submissions.collect`` raises for input it cannot read at all.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_CHUNK_BYTES = 2**20


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
