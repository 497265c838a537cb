"""matplotlib's font cache is built once per course: for every batch's kernels and for the class report."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from autograder.grading.sandbox import shared_data


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """The folders a font cache is built in from now on (building writes one file there, as matplotlib does)."""
    built: list[Path] = []

    def build(argv, env, **options):
        folder = Path(env["MPLCONFIGDIR"])
        built.append(folder)
        (folder / "fontlist-v390.json").write_text('{"built in": "%s"}' % folder)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(shared_data.subprocess, "run", build)
    return built


def test_a_course_builds_its_font_cache_once_for_all_its_batches(tmp_path, monkeypatch, builds):
    course_cache = tmp_path / "course" / "grading" / ".cache" / "matplotlib"
    monkeypatch.setenv("MPLCONFIGDIR", str(course_cache))
    first = shared_data.stage_matplotlib(tmp_path / "batch1")
    second = shared_data.stage_matplotlib(tmp_path / "batch2")
    assert builds == [course_cache]
    for staged in (first, second):
        assert (staged / "fontlist-v390.json").read_text() == (course_cache / "fontlist-v390.json").read_text()
        assert staged.parent.name.startswith("batch")


def test_a_font_cache_already_there_is_copied_not_built(tmp_path, monkeypatch, builds):
    own = tmp_path / "own"
    own.mkdir()
    (own / "fontlist-v390.json").write_text("{}")
    monkeypatch.setenv("MPLCONFIGDIR", str(own))
    previous = os.umask(0o077)  # an instructor's private umask
    try:
        staged = shared_data.stage_matplotlib(tmp_path / "batch")
    finally:
        os.umask(previous)
    assert builds == [] and (staged / "fontlist-v390.json").read_text() == "{}"
    assert os.stat(staged / "fontlist-v390.json").st_mode & 0o044 == 0o044  # kernels of another user read it


def test_without_a_folder_of_its_own_a_batch_builds_it_in_its_folder(tmp_path, monkeypatch, builds):
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    staged = shared_data.stage_matplotlib(tmp_path / "batch")
    assert builds == [staged] and (staged / "fontlist-v390.json").is_file()
