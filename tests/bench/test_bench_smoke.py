"""`bench/grading_throughput.py --smoke`: every row runs once and produces numbers; nothing about time."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "grading_throughput.py"
SECTIONS = (
    "## Machine", "## Command", "## Submissions", "## Grading", "## Ratios", "## Reference training vs the fastbook loop",
    "## Bars", "## 200 submissions", "## Dask executor", "## Where the time goes",
)
GRADING_ROWS = ("bare", "nbgrader", "j1", "j2", "j1_all", "j2_all", "j1_unsafe", "j2_unsafe")

pytestmark = [pytest.mark.slow, pytest.mark.notebooks, pytest.mark.mnist_sgd]


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, mnist_folder) -> tuple[dict, str, str]:
    folder = tmp_path_factory.mktemp("bench")
    report, figures = folder / "report.md", folder / "figures.json"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--data", str(mnist_folder), "--out", str(report), "--json", str(figures)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert run.returncode == 0, f"the smoke run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return json.loads(figures.read_text()), report.read_text(), run.stdout


def test_every_grading_row_produced_numbers(smoke):
    figures = smoke[0]
    assert figures["smoke"] and figures["n"] == 2
    for key in GRADING_ROWS:
        row = figures["rows"][key]
        assert row["n"] == 2 and row["exit_code"] == 0, key
        for name in ("wall", "median", "per_submission", "throughput", "peak_worker_mb", "peak_total_mb"):
            assert number(row[name]), (key, name, row[name])
        assert len(row["latencies"]) == 2 and all(number(v) for v in row["latencies"]), key


def test_graded_rows_agree_on_scores(smoke):
    rows = smoke[0]["rows"]
    for key in ("nbgrader", "j1", "j2", "j1_all", "j2_all", "j1_unsafe", "j2_unsafe"):
        assert set(rows[key]["scores"]) == {"student000", "student001"}, key
        assert rows[key]["scores"]["student000"] == 20 and rows[key]["scores"]["student001"] < 20, key
        assert rows[key]["scores"] == rows["nbgrader"]["scores"], key


def test_ratios_training_and_extrapolation_are_numbers(smoke):
    figures = smoke[0]
    for name in ("j2_all_vs_nbgrader_throughput", "j1_all_vs_bare_wall", "j1_all_vs_bare_imports_once_wall",
                 "j2_vs_j2_all_throughput", "j2_vs_j2_unsafe_throughput", "fastbook_vs_reference_training"):
        assert number(figures["ratios"][name]), name
    assert math.isfinite(figures["ratios"]["sandbox_cost_j1_median_s"])  # a difference in seconds: may be <= 0 in a smoke run
    training = figures["training"]
    for name in ("reference_seconds", "fastbook_seconds", "reference_accuracy", "fastbook_accuracy", "ratio"):
        assert number(training[name]), name
    assert training["matches_train_linear1"]
    assert number(figures["extrapolation"]["minutes"])
    verdicts = {bar["name"]: bar["passed"] for bar in figures["bars"]}
    assert sum(verdict is not None for verdict in verdicts.values()) >= 3


def test_the_lesson_row_measures_the_floor_and_the_200_row_grades_its_own_submissions(smoke):
    figures = smoke[0]
    for part in ("all", "graded", "graded_checks"):
        assert number(figures["lesson"][part]["cpu"]), part
    assert figures["lesson"]["all"]["cpu"] > figures["lesson"]["graded"]["cpu"]
    assert number(figures["budget"]["needed"]) and number(figures["budget"]["ratio"])
    big = figures["rows"]["j2_200"]
    assert big["n"] == 3 and big["statuses"] == {"graded": 3} and number(big["peak_total_mb"])
    assert all(number(v) for v in figures["rows"]["bare"]["startup"])


def test_otter_and_profile_rows_measured_or_skipped_with_a_note(smoke):
    figures, _, stdout = smoke
    if "otter" in figures["rows"]:
        assert figures["rows"]["otter"]["scores"] == pytest.approx(figures["rows"]["nbgrader"]["scores"], abs=1e-4)
    else:
        assert figures["notes"]["otter"].startswith("skipped") and "otter" in stdout
    if figures["profile"]:
        assert figures["profile_n"] == 2 and any(role["role"] == "kernel" for role in figures["profile"])
    else:
        assert figures["notes"]["profile"].startswith("skipped")


def test_dask_row_measured_or_skipped_with_a_note(smoke):
    figures, _, stdout = smoke
    if "dask" in figures["rows"]:
        assert number(figures["rows"]["dask"]["wall"]) and number(figures["rows"]["local_j2"]["wall"])
        assert number(figures["ratios"]["dask_vs_local_wall"]) and figures["dask"]["workers"] >= 1
    else:
        assert figures["notes"]["dask"].startswith("skipped") and "skipped" in stdout


def test_report_has_every_section(smoke):
    report = smoke[1]
    positions = [report.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions)
    assert "bench/grading_throughput.py --smoke" in report
    for words in ("CPU:", "memory:", "autograder grade", "nbgrader autograde"):
        assert words in report
    assert "PASS" in report or "MISS" in report


def test_the_lesson_cells_script_measures_the_lesson_without_its_checks(tmp_path, mnist_folder):
    """`bench/lesson_cells.py` runs the solved lesson once without hidden tests and reports a positive CPU time."""
    figures = tmp_path / "cells.json"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "lesson_cells.py"), "--repeats", "1", "--data", str(mnist_folder),
                          "--json", str(figures)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    shown = json.loads(figures.read_text())
    assert number(shown["cpu_per_notebook"]) and len(shown["runs"]) == 1
    assert any("untar_data" in line for _, line in shown["slowest_cells"])  # reading the images is among the slowest
    assert "200 notebooks on 2 cores" in run.stdout
