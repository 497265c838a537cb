"""A new gradebook is stamped with nbgrader's schema revision without running the ``alembic`` executable."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import nbgrader.api
from nbgrader.dbutil import _temp_alembic_ini

from autograder.nbgrader_api import open_gradebook, read_schema_head_in_process, schema_head


def test_the_schema_head_is_what_alembic_heads_prints():
    with _temp_alembic_ini("sqlite:///gradebook.db") as alembic_ini:
        printed = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", alembic_ini, "heads"],
                                 capture_output=True, text=True, timeout=120, check=True).stdout
    assert schema_head() == printed.split("\n")[0].split(" ")[0]


def test_a_new_gradebook_is_stamped_without_a_new_process(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"nbgrader ran a process: {args}")

    monkeypatch.setattr(nbgrader.api.sp, "check_output", refuse)
    # as in a process that has not opened the course yet, whatever an earlier test of this process did
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: refuse("alembic heads"))
    read_schema_head_in_process.cache_clear()
    with open_gradebook(tmp_path) as gradebook:
        gradebook.add_student("ada")
        gradebook.db.commit()
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema_head(),)]
