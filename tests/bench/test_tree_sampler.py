"""The benchmark's memory sampler tells a grading process from the fork server it was forked by."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

from machine import TreeSampler  # noqa: E402

MARKER = "autograder.grading.nbgrader_worker"
SERVER = """
import os, sys, time
child = os.fork()
if child == 0:
    with open("/proc/self/comm", "w") as comm:
        comm.write("nbgrader_worker")
    time.sleep(60)
else:
    print(child, flush=True)
    time.sleep(60)
"""


def test_the_fork_server_is_not_a_worker_but_what_it_forks_is():
    server = subprocess.Popen([sys.executable, "-c", SERVER, "autograder.grading.trusted_forks", "3", MARKER], stdout=subprocess.PIPE, text=True)
    try:
        child = int(server.stdout.readline())
        time.sleep(0.3)  # the child renames itself
        sampler = TreeSampler([server.pid], marker=MARKER)
        assert MARKER in " ".join(psutil.Process(child).cmdline())  # a forked child keeps its server's command line
        assert not sampler._is_worker(psutil.Process(server.pid))
        assert sampler._is_worker(psutil.Process(child))
    finally:
        for process in psutil.Process(server.pid).children(recursive=True) + [psutil.Process(server.pid)]:
            process.kill()
        server.wait()


LATE_EXEC = """
import os, sys
sys.stdin.readline()
os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", sys.argv[1].replace("/", ".")])
"""


def test_a_worker_started_on_its_own_is_a_worker_also_when_first_seen_before_its_exec():
    # seen before its exec (here an exec of its own, when told; under load, also as its exec begins, empty), a
    # process has another command line than the one it runs with
    worker = subprocess.Popen([sys.executable, "-c", LATE_EXEC, MARKER.replace(".", "/")], stdin=subprocess.PIPE, text=True)
    sampler = TreeSampler([worker.pid], marker=MARKER)
    try:
        assert not sampler._is_worker(psutil.Process(worker.pid))
        worker.stdin.write("exec\n")
        worker.stdin.flush()
        deadline = time.monotonic() + 30
        while MARKER not in " ".join(psutil.Process(worker.pid).cmdline()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sampler._is_worker(psutil.Process(worker.pid))
    finally:
        worker.kill()
        worker.wait()
        worker.stdin.close()


BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
FORKING_SERVER = """
import os, sys, time
name = sys.argv[1]
if os.fork() == 0:
    if name:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name)
    exec(sys.argv[2])
    os._exit(0)  # ends before the sampler stops: its role, read while it ran, stands
time.sleep(60)
"""
COORDINATOR = """
import subprocess, sys, time
server = sys.argv[1]
subprocess.Popen([sys.executable, "-c", server, "", sys.argv[2], "/repo/autograder/grading/sandbox/kernel_" + "forks.py"])
subprocess.Popen([sys.executable, "-c", server, "checker", sys.argv[2], "autograder.grading.trusted_forks", "3",
                  "autograder.grading.sandbox.checker"])
time.sleep(60)
"""


def test_each_process_is_counted_in_its_role_with_the_cpu_it_spent():
    coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR, FORKING_SERVER, BURN])
    try:
        with TreeSampler([coordinator.pid]) as sampler:
            time.sleep(3.0)
        found = sampler.cpu_by_role()
    finally:
        for process in psutil.Process(coordinator.pid).children(recursive=True) + [psutil.Process(coordinator.pid)]:
            process.kill()
        coordinator.wait()
    assert set(found) == {"kernels", "checkers", "coordinator", "kernel fork server", "checkers' fork server"}, found
    assert all(count == 1 for _, count in found.values()), found
    for burner in ("kernels", "checkers"):
        assert found[burner][0] >= 0.2, found  # burnt 0.4 s; the last 0.2 s before its end may fall after its last sample
    for idle in ("coordinator", "kernel fork server", "checkers' fork server"):
        assert found[idle][0] < 0.2, found  # their start-up only
