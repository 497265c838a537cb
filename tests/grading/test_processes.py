"""Owned folders (channels, a batch's work folder, a Dask worker's) are named after the process that made them,
and a batch removes only those of dead makers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from owned_folders import dead_pid, made_by

from autograder.grading import processes


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
    dead = made_by(dead_pid(), tmp_path, prefix)
    (dead / "ipc").mkdir()
    (dead / "ipc" / "k-1").write_text("")
    unknown = tmp_path / f"{prefix}notapid"
    unknown.mkdir()
    other_namespace = tmp_path / f"{prefix}{dead_pid()}-1-abc"
    other_namespace.mkdir()
    someone_elses = tmp_path / f"autograder-other-{dead_pid()}-{processes._pid_namespace()}-abc"
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
    stuck = made_by(dead_pid(), tmp_path)
    (stuck / "inner").mkdir()
    (stuck / "inner" / "file").write_text("")
    (stuck / "inner").chmod(0o500)
    try:
        assert processes.remove_abandoned_folders(tmp_path) == []
        assert stuck.is_dir()
    finally:
        (stuck / "inner").chmod(0o700)


FAMILY = """
import subprocess, sys, threading, time
sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
parent_of_one = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(%r); time.sleep(120)" % (sleeper,)]
def from_a_thread():
    subprocess.Popen(parent_of_one)  # a child of this thread, which then keeps running
    time.sleep(120)
threading.Thread(target=from_a_thread, daemon=True).start()
subprocess.Popen(sleeper)
time.sleep(120)
"""


@pytest.fixture
def family():
    """A process with a child of its main thread, and a child of another thread that has a child of its own."""
    import psutil

    parent = subprocess.Popen([sys.executable, "-c", FAMILY])
    root = psutil.Process(parent.pid)
    deadline = time.monotonic() + 30
    while len(root.children(recursive=True)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield root
    processes.kill([root, *root.children(recursive=True)])
    parent.wait()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_tree_read_from_proc_is_the_one_psutil_finds(family, monkeypatch):
    expected = sorted(proc.pid for proc in [family, *family.children(recursive=True)])
    assert len(expected) == 4
    assert processes._proc_lists_children()
    assert sorted(proc.pid for proc in processes.tree(family)) == expected
    monkeypatch.setattr(processes, "_proc_lists_children", lambda: False)
    assert sorted(proc.pid for proc in processes.tree(family)) == expected, "the psutil fallback finds the same"


def test_the_tree_of_an_ended_process_is_empty():
    import psutil

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    proc = psutil.Process(child.pid)
    child.wait()
    assert processes.tree(proc) == [] and processes.tree_of(child.pid) == []
