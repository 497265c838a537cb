"""The kernel's audit hook decides a file's path as fast as a folder of thousands of images needs, and as right.

``audit_hook.install`` (through ``kernel_boot._install_audit_hook``) resolves every opened path through its links before it decides. Two
shortcuts spare a notebook that reads the MNIST sample two ``lstat`` calls and a loop over every root per image:
a folder listed once without links (and unchanged since: same device, inode and ctime) has its files resolved
without looking at each name, and a folder with no root inside gets one verdict for all its files. These tests
call the hook as Python's audit machinery would, on folders made for them, and hold both shortcuts to the answer
of the slow path: a link added after the listing is followed, a fresh change is not trusted, the listing is
neither refused nor logged, and a file root does not open its siblings.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from autograder.grading.sandbox import kernel_boot

FILES = 80
SETTLE_SECONDS = 0.05
"""Longer than the file system's clock tick, so that a change after the listing gets a later ctime."""
_armed: list = []
"""The hook under test while it runs: the audit events raised meanwhile (by the hook's own work) reach it, as they
would once installed. This process's real audit hook, added once, forwards them; it cannot be removed."""


def _forward(event: str, args: tuple) -> None:
    if _armed:
        _armed[-1](event, args)


sys.addaudithook(_forward)


class Hook:
    """The audit hook ``_install_audit_hook`` makes for ``readable`` and ``denied`` (its refusal log in
    ``tmp_path``), with every ``lstat`` it makes counted."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readable: list[Path], denied: list[Path]) -> None:
        self.log = tmp_path / "refusals.log"
        self.lstat_calls = 0
        hooks: list = []
        real_lstat = os.lstat

        def counting_lstat(path, *args, **kwargs):
            self.lstat_calls += 1
            return real_lstat(path, *args, **kwargs)

        scratch = tmp_path / "scratch"
        scratch.mkdir()
        with monkeypatch.context() as patched:  # what the hook captures while it is installed
            patched.setattr(os, "lstat", counting_lstat)
            patched.setattr(sys, "addaudithook", hooks.append)
            fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            kernel_boot._install_audit_hook(
                {"scratch": str(scratch), "readable": [str(p) for p in readable], "denied": [str(p) for p in denied],
                 "socket": "", "libraries": []}, fd)
        (self.hook,) = hooks

    def reads(self, path: Path) -> bool:
        """Whether the hook lets a notebook open ``path`` for reading."""
        _armed.append(self.hook)
        try:
            self.hook("open", (str(path), "rb", os.O_RDONLY))
        except PermissionError:
            return False
        finally:
            _armed.pop()
        return True

    def refusals(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def quick_listing(monkeypatch):
    """List a folder after two opens, once it has been unchanged for ``SETTLE_SECONDS``."""
    monkeypatch.setattr(kernel_boot.AUDIT_HOOK, "LIST_AFTER_OPENS", 2)
    monkeypatch.setattr(kernel_boot.AUDIT_HOOK, "SETTLED_NS", int(SETTLE_SECONDS * 1e9))


def images_and_secret(tmp_path: Path) -> tuple[Path, Path]:
    """A readable folder of ``FILES`` images and a denied folder with an answer file."""
    images, secret = tmp_path / "data" / "images", tmp_path / "secret"
    images.mkdir(parents=True)
    secret.mkdir()
    (secret / "answers.txt").write_text("42")
    for index in range(FILES):
        (images / f"{index}.png").write_bytes(b"png")
    return images, secret


def read_every_image(hook: Hook, images: Path) -> None:
    for index in range(FILES):
        assert hook.reads(images / f"{index}.png")


def test_a_listed_folder_costs_no_lstat_per_file_and_a_link_added_later_is_still_followed(tmp_path, monkeypatch, quick_listing):
    images, secret = images_and_secret(tmp_path)
    hook = Hook(tmp_path, monkeypatch, [tmp_path / "data"], [secret])
    time.sleep(SETTLE_SECONDS * 2)
    read_every_image(hook, images)
    hook.lstat_calls = 0
    read_every_image(hook, images)
    assert hook.lstat_calls == 0  # listed without links: each file is its folder's real path plus its name

    time.sleep(SETTLE_SECONDS * 2)
    (images / "leak.png").symlink_to(secret / "answers.txt")  # a notebook cannot make links; native code could
    assert not hook.reads(images / "leak.png")
    assert "answers.txt" in hook.refusals()
    read_every_image(hook, images)  # the folder, changed, is looked at name by name again, and still readable


def test_a_folder_holding_a_link_is_never_taken_for_one_without(tmp_path, monkeypatch, quick_listing):
    images, secret = images_and_secret(tmp_path)
    (images / "leak.png").symlink_to(secret / "answers.txt")
    hook = Hook(tmp_path, monkeypatch, [tmp_path / "data"], [secret])
    time.sleep(SETTLE_SECONDS * 2)
    for _ in range(3):
        read_every_image(hook, images)
        assert not hook.reads(images / "leak.png")
    assert hook.refusals().count("answers.txt") == 3


def test_a_folder_changed_within_the_settling_time_is_not_listed(tmp_path, monkeypatch):
    """A change in the same clock tick as a listing would keep the folder's ctime: a folder changed less than
    ``SETTLED_NS`` ago is looked at name by name, however many of its files are opened."""
    images, secret = images_and_secret(tmp_path)
    monkeypatch.setattr(kernel_boot.AUDIT_HOOK, "LIST_AFTER_OPENS", 2)
    hook = Hook(tmp_path, monkeypatch, [tmp_path / "data"], [secret])
    read_every_image(hook, images)
    hook.lstat_calls = 0
    read_every_image(hook, images)
    assert hook.lstat_calls >= FILES


def test_listing_a_folder_the_notebook_may_not_read_is_neither_refused_nor_logged(tmp_path, monkeypatch, quick_listing):
    """A file may be readable in a folder that is not (the channel's source files, shown in tracebacks): the hook
    lists the folder for itself, and its verdict stays the file's, not the folder's."""
    sources = tmp_path / "sandbox"
    sources.mkdir()
    (sources / "peer.py").write_text("shown in tracebacks")
    (sources / "checker.py").write_text("never shown")
    hook = Hook(tmp_path, monkeypatch, [sources / "peer.py"], [])
    time.sleep(SETTLE_SECONDS * 2)
    for _ in range(5):
        assert hook.reads(sources / "peer.py")
    assert hook.refusals() == ""
    assert not hook.reads(sources / "checker.py")
    assert hook.reads(sources / "peer.py")
    assert "checker.py" in hook.refusals()


def test_a_denied_folder_inside_a_readable_one_keeps_its_files_closed(tmp_path, monkeypatch, quick_listing):
    images, _ = images_and_secret(tmp_path)
    private = images / "private"
    private.mkdir()
    (private / "key.txt").write_text("k")
    hook = Hook(tmp_path, monkeypatch, [tmp_path / "data"], [private])
    time.sleep(SETTLE_SECONDS * 2)
    read_every_image(hook, images)
    assert not hook.reads(private / "key.txt")
    assert not hook.reads(private)
    read_every_image(hook, images)
