"""`bench/class_report.py` builds the class it says and reports the files it wrote."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import class_report  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.mnist_sgd]


def test_the_bench_writes_the_report_of_the_class_it_counts(mnist_folder, tmp_path, capsys):
    home_before = os.environ.get("FASTAI_HOME")
    figures = class_report.main(["--students", "450", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert figures["students"] == 450 and "students" in printed and "index.html" in printed
    assert '"submissions": 450' in (tmp_path / "reports" / "04_mnist_sgd" / "report.json").read_text()
    assert os.environ.get("FASTAI_HOME") == home_before, "the bench's temporary FASTAI_HOME outlived it"
