"""A grading child started in a session of its own dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from autograder.grading.processes import child_setup
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=SETUP,
                             start_new_session=True, stdin=subprocess.DEVNULL)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("with_setup", [True, False], ids=["die-with-parent", "control-without"])
def test_a_child_in_its_own_session_ends_when_its_parent_is_killed(with_setup):
    code = PARENT.replace("SETUP", "child_setup()" if with_setup else "None")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(parent.stdout.readline())
    try:
        assert _alive(child)
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(child) is not with_setup, "the child outlived its killed parent" if with_setup else "control"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
