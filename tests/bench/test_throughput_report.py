"""The benchmark's report logic, on made-up rows: which rows each ratio compares, each bar's verdict, the sections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import grading_throughput as gt  # noqa: E402

MACHINE = {"cpu_model": "test CPU", "logical_cores": 2, "physical_cores": 2, "usable_cores": 2, "cgroup_cpu_quota": "-",
           "memory_gib": 8.0, "memory_available_gib": 7.0, "load_average": [0.1, 0.1, 0.1], "os": "Linux", "python": "3.11",
           "versions": {"torch": "x"}, "commit": "abc1234"}


def row(key: str, wall: float, n: int = 20, cpu: float = 0.0, **extra) -> gt.Row:
    completions = [wall * (i + 1) / n for i in range(n)]
    scores = {s: (20.0 if v == "correct" else 14.0) for s, v in gt.mix_of(n).items()}
    return gt.Row(key, f"cmd {key}", n, wall, [wall / n] * n, completions, 700.0, 2000.0, scores, cpu=cpu, **extra)


def lesson_figures(cpu: float, graded: bool, checks: bool) -> dict:
    return {"cpu": cpu, "runs": [cpu], "threads": 1, "graded_part": graded, "with_checks": checks,
            "slowest": [[2.5, "simple_net = nn.Sequential("], [2.0, "path = untar_data(URLs.MNIST_SAMPLE)"]]}


@pytest.fixture
def bench() -> gt.Bench:
    run = gt.Bench(20, False, gt.mix_of(20), 300, "python bench/grading_throughput.py --n 20 --data /data/mnist_sample.tgz",
                   "2026-12-01 00:00 UTC", MACHINE, "")
    run.rows = {
        "bare": row("bare", 400.0, cpu=480.0, startup=[4.0] * 20),
        "nbgrader": row("nbgrader", 350.0, cpu=420.0),
        "otter": row("otter", 500.0, cpu=520.0),
        "j1": row("j1", 130.0, cpu=160.0),
        "j2": row("j2", 80.0, cpu=90.0),
        "j1_all": row("j1_all", 240.0, cpu=360.0),
        "j2_all": row("j2_all", 125.0, cpu=280.0),
        "j2_200": row("j2_200", 420.0, n=200, cpu=900.0, statuses={"graded": 200}),
    }
    run.lesson = {"all": lesson_figures(9.0, False, False), "graded": lesson_figures(2.0, True, False),
                  "graded_checks": lesson_figures(3.0, True, True)}
    run.profile = [{"role": "kernel", "processes": 10, "phases": {"student cells: code (loading images, training)": 20.0}}]
    run.profile_n = 10
    return run


def test_ratios_between_tools_compare_the_every_cell_rows(bench):
    ratios = gt.ratios(bench)
    assert ratios["j2_all_vs_nbgrader_throughput"] == pytest.approx(350.0 / 125.0)
    assert ratios["j2_all_vs_otter_throughput"] == pytest.approx(500.0 / 125.0)
    assert ratios["j1_all_vs_bare_wall"] == pytest.approx(240.0 / 400.0)
    assert "j2_vs_nbgrader_throughput" not in ratios and "j1_vs_bare_wall" not in ratios


def test_the_trailing_cells_saving_is_its_own_ratio(bench):
    assert gt.ratios(bench)["j2_vs_j2_all_throughput"] == pytest.approx(125.0 / 80.0)


def test_bare_execution_counts_its_kernel_start_and_imports_once(bench):
    assert gt.bare_wall_imports_once(bench.rows["bare"]) == pytest.approx(400.0 - 20 * 4.0 + 4.0)
    assert gt.ratios(bench)["j1_all_vs_bare_imports_once_wall"] == pytest.approx(240.0 / 324.0)


def test_the_cpu_budget_is_the_graded_part_and_the_hidden_checks(bench):
    budget = gt.cpu_budget(bench)
    assert budget["graded_part"] == 2.0 and budget["hidden_checks"] == pytest.approx(1.0) and budget["needed"] == 3.0
    assert budget["grader"] == pytest.approx(90.0 / 20) and budget["ratio"] == pytest.approx(4.5 / 3.0)
    assert budget["grader_200"] == pytest.approx(900.0 / 200) and budget["ratio_200"] == pytest.approx(4.5 / 3.0)


def test_the_200_run_is_compared_with_the_lesson_measured_next_to_it(bench):
    bench.lesson_200 = {"graded": lesson_figures(2.5, True, False),
                        "graded_checks": lesson_figures(3.6, True, True)}
    budget = gt.cpu_budget(bench)
    assert budget["needed_200"] == 3.6 and budget["ratio_200"] == pytest.approx(4.5 / 3.6)
    assert budget["needed"] == 3.0 and budget["ratio"] == pytest.approx(4.5 / 3.0)  # the N = 20 row keeps its own
    assert [bar.measured for bar in gt.bars(bench)][:2] == ["1.50x", "1.25x"]


def test_the_cpu_budget_splits_start_up_from_each_submission(bench):
    bench.rows["j2_200"] = row("j2_200", 420.0, n=200, cpu=810.0)  # 90 = S + 20 m and 810 = S + 200 m
    budget = gt.cpu_budget(bench)
    assert budget["marginal"] == pytest.approx(4.0) and budget["startup"] == pytest.approx(10.0)
    assert budget["ratio_marginal"] == pytest.approx(4.0 / 3.0)
    text = "\n".join(gt.markdown(bench).splitlines())
    assert "start-up 10.0 CPU s per batch, then 4.00 CPU s per submission, 1.33x what is needed" in text


def test_no_split_is_given_when_the_drift_between_the_runs_exceeds_the_start_up(bench):
    bench.rows["j2_200"] = row("j2_200", 420.0, n=200, cpu=1000.0)  # 90 = S + 20 m and 1000 = S + 200 m: S < 0
    budget = gt.cpu_budget(bench)
    assert budget["startup"] < 0
    text = "\n".join(gt.markdown(bench).splitlines())
    assert "No split of start-up from each submission" in text and "CPU s per batch, then" not in text


def test_each_bar_has_its_measured_value_and_verdict(bench):
    shown = [(bar.name.split(" ")[0], bar.measured, bar.bar, bar.verdict) for bar in gt.bars(bench)]
    assert shown == [
        ("`autograder", "1.50x", "<= 1.5x", "PASS"),  # CPU per submission / (graded part + hidden checks), N = 20
        ("the", "1.50x", "<= 1.5x", "PASS"),  # the same at N = 200
        ("`autograder", "2.80x", ">= 2.5x", "PASS"),  # every cell run, vs serial nbgrader
        ("200", "7.0 min", "<= 8 min", "PASS"),  # measured at N = 200
        ("grading", "-26%", "<= +10%", "PASS"),  # -j 1, every cell run, over bare with imports once
        ("`--executor", "-", "<= 1.15x", "not measured"),
    ]
    assert "CPU per submission" in gt.bars(bench)[0].name and "N = 20" in gt.bars(bench)[0].name
    assert "N = 200" in gt.bars(bench)[1].name and "every cell run" in gt.bars(bench)[2].name


def test_a_slower_grader_misses_its_bars(bench):
    bench.rows["j2"] = row("j2", 80.0, cpu=100.0)
    bench.rows["j2_all"] = row("j2_all", 150.0)
    bench.rows["j2_200"] = row("j2_200", 500.0, n=200, cpu=1000.0)
    missed = [bar.name for bar in gt.bars(bench) if bar.verdict == "MISS"]
    assert len(missed) == 4


def test_the_200_bar_needs_a_run_of_200(bench):
    bench.rows["j2_200"] = row("j2_200", 5.0, n=3)
    bar = next(bar for bar in gt.bars(bench) if bar.name.startswith("200 submissions"))
    assert bar.verdict == "not measured"


def test_the_report_has_every_section_and_is_generated_from_the_run(bench):
    report = gt.markdown(bench)
    positions = [report.find(section) for section in gt.SECTIONS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert "--data /data/mnist_sample.tgz" in report
    assert "took **420 s = 7.0 min**" in report
    assert "9.00" in report and "3.00 CPU s per submission at the least" in report
    assert "otter run" in report and "equal those of `nbgrader autograde` for every student: yes" in report
    assert "student cells: code" in report


def test_the_report_is_the_same_from_the_saved_figures(bench, tmp_path):
    bench.lesson_200 = {"graded": lesson_figures(2.5, True, False), "graded_checks": lesson_figures(3.6, True, True)}
    saved = json.loads(json.dumps(bench.figures(), default=str))
    again = gt.Bench.from_figures(saved)
    assert gt.markdown(again) == gt.markdown(bench)


def test_rows_that_did_not_run_are_reported_as_such():
    run = gt.Bench(2, True, gt.mix_of(2), 300, "python bench/grading_throughput.py --smoke", "now", MACHINE, "")
    report = gt.markdown(run)
    assert "did not run" in report
    assert all(bar.verdict == "not measured" for bar in gt.bars(run))


def test_the_two_sides_of_each_bar_run_one_right_after_the_other():
    """The machine drifts over tens of minutes: a bar's ratio divides rows measured next to each other."""
    bar_ratios = ("j2_all_vs_nbgrader_throughput", "j1_all_vs_bare_wall")
    compared = {frozenset(gt.RATIO_PAIRS[name][:2]) for name in bar_ratios} | {frozenset(("lesson", "j2"))}
    assert compared <= {frozenset(pair) for pair in gt.PAIRED_ROWS}
    for first, second in gt.PAIRED_ROWS:
        assert abs(gt.ALL_ROWS.index(first) - gt.ALL_ROWS.index(second)) == 1, (first, second)


def test_the_cpu_by_process_role_is_shown_per_submission_beside_the_exact_total(bench):
    bench.rows["j2"].cpu_roles = {"kernels": [40.0, 22], "checkers": [12.0, 20], "kernel fork server": [5.0, 1]}
    bench.rows["j2_200"].cpu_roles = {"kernels": [400.0, 202], "checkers": [120.0, 200], "kernel fork server": [5.0, 1]}
    report = gt.markdown(bench)
    assert "| kernels | 22 | 2.00 | 202 | 2.00 |" in report
    assert "| kernel fork server | 1 | 0.25 | 1 | 0.03 |" in report
    assert "| sampled, in all | 43 | 2.85 | 403 | 2.62 |" in report
    assert "| exact, in all (the row's CPU) | - | 4.50 | - | 4.50 |" in report
    saved = json.loads(json.dumps(bench.figures(), default=str))
    assert gt.markdown(gt.Bench.from_figures(saved)) == report


def test_a_cpu_bar_gets_no_verdict_when_its_floor_spread_past_the_limit(bench):
    bench.lesson["graded_checks"]["runs"] = [3.0, 3.0, 3.0 * (1 + gt.FLOOR_SPREAD_LIMIT) + 0.01]
    first, second = gt.bars(bench)[:2]
    assert first.passed is None and first.verdict.startswith("no verdict: the floor's runs spread by 10%")
    assert second.verdict.startswith("no verdict")  # no floor measured near the 200 run: it uses this one
    bench.lesson_200 = {"graded": lesson_figures(2.0, True, False), "graded_checks": lesson_figures(3.0, True, True)}
    assert [bar.verdict for bar in gt.bars(bench)][1] == "PASS"  # its own floor, steady
    assert "no verdict: the floor's runs spread" in gt.markdown(bench)


def test_a_floor_within_the_limit_keeps_the_verdict(bench):
    bench.lesson["graded"]["runs"] = [2.0, 2.0 * (1 + gt.FLOOR_SPREAD_LIMIT) - 0.01]
    assert [bar.verdict for bar in gt.bars(bench)][:2] == ["PASS", "PASS"]
    bench.rows["j2"] = row("j2", 80.0, cpu=100.0)
    assert gt.bars(bench)[0].verdict == "MISS"
