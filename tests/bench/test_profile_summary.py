"""`bench/profile_summary.py` puts each sampled process in its role and each stack in its phase."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import profile_summary as ps  # noqa: E402

GRADE = 'process 10:"python autograder grade 04_mnist_sgd"'
KERNELS = 'process 11:"python /x/sandbox/kernel_forks.py /x/sock"'
CHECKERS = 'process 12:"python -m autograder.grading.trusted_forks 3 autograder.grading.sandbox.checker"'
GRADERS = 'process 13:"python -m autograder.grading.trusted_forks 4 autograder.grading.nbgrader_worker"'


def child(server: str, pid: int) -> str:
    return f'process {pid}:{server.split(":", 1)[1]}'


def test_each_process_takes_the_role_of_what_it_runs():
    assert ps.role([GRADE]) == "coordinator"
    assert ps.role([GRADE, KERNELS, child(KERNELS, 21)]) == "kernel"
    assert ps.role([GRADE, CHECKERS, child(CHECKERS, 22)]) == "checker"
    assert ps.role([GRADE, GRADERS, child(GRADERS, 23)]) == "worker"
    assert ps.role([GRADE, 'process 30:"python .venv/bin/alembic heads"']) == "alembic"


def test_a_fork_servers_own_samples_and_a_stand_ins_waiting_are_told_apart_by_their_frames():
    server = ["main (autograder/grading/trusted_forks.py:1)", "serve (autograder/grading/trusted_forks.py:2)"]
    assert ps.sample_role("worker", server) == "fork server"
    assert ps.sample_role("worker", [*server, "_fork_one (autograder/grading/trusted_forks.py:3)", "autograde (x.py:1)"]) == "worker"
    kernel = ["serve (autograder/grading/sandbox/kernel_forks.py:1)", "_become_kernel (autograder/grading/sandbox/kernel_forks.py:2)"]
    assert ps.sample_role("kernel", [*kernel, "run_cell (zmqshell.py:1)"]) == "kernel"
    assert ps.sample_role("kernel", [*kernel, "join_and_fork (joining.py:1)"]) == "stand-in"
    assert ps.sample_role("kernel", ["run_forked (autograder/grading/sandbox/kernel_forks.py:1)", "_stand_in (kernel_forks.py:2)"]) == "stand-in"


def test_role_times_count_seconds_per_phase(tmp_path):
    raw = tmp_path / "grade.raw"
    kernel = f"{GRADE};{KERNELS};{child(KERNELS, 21)};serve (autograder/grading/sandbox/kernel_forks.py:1);_become_kernel (k.py:2)"
    raw.write_text("\n".join([
        f"{kernel};run_cell (ipykernel/zmqshell.py:1) 100",
        f"{kernel};_find_and_load (<frozen importlib._bootstrap>:1) 50",
        f"{GRADE};{KERNELS};serve (autograder/grading/sandbox/kernel_forks.py:1);accept (socket.py:1) 25",
        f"{GRADE};{KERNELS};{child(KERNELS, 21)};Thread._bootstrap (threading.py:1);run (x.py:1) 999",
    ]) + "\n")
    times = {t.role: t for t in ps.role_times(ps.read(raw), rate=50)}
    assert times["kernel"].phases == {"student cells: imports (fastai, torch)": 1.0, "student cells: code (loading images, training)": 2.0}
    assert times["kernel"].total == 3.0 and times["kernel"].processes == 1
    assert times["fork server"].phases == {"waiting for requests, forking": 0.5}
    assert "kernel: 3.0 s in 1 process(es)" in ps.summarise(ps.read(raw), 50)


def test_a_spare_waiting_for_its_notebook_is_not_counted_as_nbgraders_work():
    ready = ["<module> (autograder/grading/nbgrader_worker.py:1)", "serve_ready (autograder/grading/nbgrader_worker.py:145)"]
    grading = [*ready, "main (autograder/grading/nbgrader_worker.py:71)", "autograde_with (autograder/nbgrader_api.py:210)"]
    assert ps.phase("worker", ready) == "a spare waiting for its notebook"
    assert ps.phase("worker", [*grading, "OverwriteCells.preprocess (overwritecells.py:94)"]) == "nbgrader's own steps (sanitize, gradebook, write)"
    assert ps.phase("worker", [*grading, "preprocess_cell (nbgrader_ext.py:60)"]) == "executing cells (waiting for the kernel)"
