"""The batch's checkers and nbgrader workers, forked from the trusted fork server, answer like Popen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from autograder.grading.trusted_forks import NBGRADER_WORKER, TrustedForks
from autograder.grading.worker import Limits, checker_env

pytestmark = pytest.mark.slow

CHECKER = "autograder.grading.sandbox.checker"


def _start(tmp_path: Path, module: str) -> TrustedForks:
    return TrustedForks.start(tmp_path, module, checker_env(Limits(threads=1)))


@pytest.fixture
def trusted(tmp_path: Path):
    server = _start(tmp_path, CHECKER)
    yield server
    server.close()
    assert not server.socket_path.parent.exists()


def _spawn(trusted: TrustedForks, tmp_path: Path, args: list[str], **options):
    with open(tmp_path / f"{trusted.module}.log", "ab") as log:
        return trusted.spawn(args, tmp_path, dict(os.environ), log, **options)


def test_a_forked_checker_reports_its_exit_code_and_runs_in_a_session_of_its_own(tmp_path, trusted):
    failing = _spawn(trusted, tmp_path, [str(tmp_path / "missing.json")])
    assert failing is not None
    assert failing.wait(120) == 1
    assert "missing.json" in (tmp_path / f"{CHECKER}.log").read_text()

    (tmp_path / "checker.json").write_text(
        '{"socket_path": "%s", "reports": "%s", "points": {}, "device": "cpu"}' % (tmp_path / "c.sock", tmp_path / "reports"))
    serving = _spawn(trusted, tmp_path, [str(tmp_path / "checker.json")])
    deadline = time.time() + 60
    while not (tmp_path / "c.sock").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "c.sock").exists() and serving.poll() is None
    assert os.getsid(serving.pid) == serving.pid and psutil.Process(serving.pid).ppid() == trusted.process.pid
    with pytest.raises(subprocess.TimeoutExpired):
        serving.wait(0.5)
    os.kill(serving.pid, signal.SIGKILL)
    assert serving.wait(30) == -signal.SIGKILL


def test_a_spare_nbgrader_worker_reads_its_job_from_a_pipe_and_carries_no_torch(tmp_path):
    graders = _start(tmp_path, NBGRADER_WORKER)
    try:
        ready = _spawn(graders, tmp_path, ["--ready"], stdin=subprocess.PIPE)
        assert ready is not None and ready.stdin is not None
        deadline = time.time() + 30
        while psutil.Process(ready.pid).name() != "nbgrader_worker" and time.time() < deadline:
            time.sleep(0.05)
        assert psutil.Process(ready.pid).name() == "nbgrader_worker"  # named in ps, not the server's command line
        maps = Path(f"/proc/{ready.pid}/maps").read_text()
        assert "libtorch" not in maps
        ready.stdin.write(b"not json\n")
        ready.stdin.close()
        assert ready.wait(180) == 1
        assert "JSONDecodeError" in (tmp_path / f"{NBGRADER_WORKER}.log").read_text()
    finally:
        graders.close()


def test_a_server_forks_only_its_module_and_a_refusal_stops_nothing(tmp_path, trusted):
    with open(tmp_path / "other.log", "ab") as log:
        assert TrustedForks(trusted.socket_path, trusted.process, "os").spawn([], tmp_path, dict(os.environ), log) is None
    again = _spawn(trusted, tmp_path, [str(tmp_path / "missing.json")])
    assert again is not None and again.wait(120) == 1


def test_the_children_die_with_the_server(tmp_path, trusted):
    (tmp_path / "checker.json").write_text(
        '{"socket_path": "%s", "reports": "%s", "points": {}, "device": "cpu"}' % (tmp_path / "d.sock", tmp_path / "reports"))
    serving = _spawn(trusted, tmp_path, [str(tmp_path / "checker.json")])
    child = psutil.Process(serving.pid)
    trusted.process.kill()
    trusted.process.wait()
    psutil.wait_procs([child], timeout=30)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert serving.wait(30) == -signal.SIGKILL


FORK_AFTER_PRELOAD = """
import os, sys, time, torch
from autograder.checks.data import preload_real_sample
assert preload_real_sample()
pid = os.fork()
if pid == 0:
    (torch.rand(4_000_000).float() / 255).sum()  # large enough to run on both math threads
    os._exit(0)
deadline = time.time() + 60
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child exit", os.waitstatus_to_exitcode(status))
        sys.exit(0)
    time.sleep(0.1)
os.kill(pid, 9)
print("child hung")
"""


def test_a_fork_of_the_checkers_server_can_still_compute_in_parallel(mnist_folder):
    """The checkers' server loads the real sample before it forks; with 2 math threads, a process whose OpenMP
    workers have started forks children that hang in their first parallel operation, so the load must not
    start them."""
    shown = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_PRELOAD], env=checker_env(Limits(threads=2)), capture_output=True, text=True, timeout=300,
    )
    assert shown.stdout.strip() == "child exit 0", shown.stdout + shown.stderr[-2000:]
