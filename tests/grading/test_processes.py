"""Owned folders (channels, a batch's work folder, a Dask worker's) are named after the process that made them,
and a batch removes only those of dead makers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading import processes


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _made_by(pid: int, base: Path, prefix: str = processes.CHANNEL_PREFIX) -> Path:
    """An owned folder in ``base`` as process ``pid`` would have made it."""
    mine = processes.owned_folder(prefix, base=base)
    theirs = base / mine.name.replace(f"-{os.getpid()}-", f"-{pid}-", 1)
    mine.rename(theirs)
    return theirs


def test_a_channel_folder_is_short_private_and_names_its_maker(tmp_path):
    folder = processes.channel_folder()
    try:
        assert folder.name.startswith(processes.CHANNEL_PREFIX) and len(str(folder / "ipc" / "k-65535")) < 107
        assert folder.stat().st_mode & 0o777 == 0o700
        assert processes.folder_owner(folder) == os.getpid()
    finally:
        folder.rmdir()


@pytest.mark.parametrize("prefix", processes.OWNED_PREFIXES)
def test_a_batch_removes_the_owned_folders_of_dead_makers_and_keeps_the_live_ones(tmp_path, prefix):
    live = processes.owned_folder(prefix, base=tmp_path)
    (live / "checker.sock").write_text("")
    dead = _made_by(_dead_pid(), tmp_path, prefix)
    (dead / "ipc").mkdir()
    (dead / "ipc" / "k-1").write_text("")
    unknown = tmp_path / f"{prefix}notapid"
    unknown.mkdir()
    other_namespace = tmp_path / f"{prefix}{_dead_pid()}-1-abc"
    other_namespace.mkdir()
    someone_elses = tmp_path / f"autograder-other-{_dead_pid()}-{processes._pid_namespace()}-abc"
    someone_elses.mkdir()
    assert processes.remove_abandoned_folders(tmp_path) == [dead]
    assert not dead.exists()
    assert live.is_dir() and (live / "checker.sock").exists()
    assert unknown.is_dir() and other_namespace.is_dir(), "only folders whose maker is known to have ended go"
    assert someone_elses.is_dir(), "only the grader's own kinds of folder go"


def test_a_temporary_owned_folder_is_private_and_goes_with_its_block(tmp_path):
    with processes.temporary_owned_folder(processes.GRADE_PREFIX, base=tmp_path) as folder:
        (folder / "run").mkdir()
        assert folder.stat().st_mode & 0o777 == 0o700 and processes.folder_owner(folder) == os.getpid()
    assert not folder.exists()
    with pytest.raises(ValueError, match="prefixes"):
        processes.owned_folder("autograder-other-", base=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may remove any folder")
def test_an_owned_folder_that_cannot_be_removed_is_left_without_failing(tmp_path):
    stuck = _made_by(_dead_pid(), tmp_path)
    (stuck / "inner").mkdir()
    (stuck / "inner" / "file").write_text("")
    (stuck / "inner").chmod(0o500)
    try:
        assert processes.remove_abandoned_folders(tmp_path) == []
        assert stuck.is_dir()
    finally:
        (stuck / "inner").chmod(0o700)
