"""The operating system, not the grader's watcher, limits a sandboxed kernel's memory, processes and CPU time.

``kernel_boot.enter_sandbox`` sets the limits as the kernel joins its namespace sandbox; the watcher only gives
the clearer status. Two proofs: a process that entered the sandbox through ``enter_sandbox`` cannot spawn past
its process limit nor map past its memory limit, with no watcher at all; and a kernel graded by the pipeline
runs under those limits, as the unprivileged user when the grader is root.
"""

from __future__ import annotations

import json
import os
import shutil

import nbformat
import pytest

from autograder.grading.pipeline import GradeOptions, grade
from autograder.grading.results import Status
from autograder.grading.sandbox import kernel_boot, layout, namespaces, peer
from autograder.grading.worker import Limits

from forked_child import findings_of_forked_child
from test_pipeline import ASSIGNMENT, NOTEBOOK, make_course, put, solved

MEMORY_HEADROOM = 2**30
"""Writable memory the sandboxed process may map beyond what it inherits from the test's process."""
PROCESS_ALLOWANCE = 24


def _tasks_of(uid: int) -> int:
    """Threads of every process of ``uid`` (RLIMIT_NPROC counts threads)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return count


def _data_bytes() -> int:
    """Writable private memory this process maps (``VmData``), which RLIMIT_DATA counts."""
    line = next(line for line in open("/proc/self/status") if line.startswith("VmData:"))
    return int(line.split()[1]) * 1024


def _sandbox_or_skip() -> None:
    support = namespaces.probe(read_only=namespaces.python_paths())
    if not support.available:
        pytest.skip(f"no namespace sandbox here: {support.reason}")


def test_a_process_that_entered_the_sandbox_cannot_spawn_or_map_past_its_limits(tmp_path):
    """As root: the sandbox's process becomes ``nobody`` with no capabilities at all; as anyone: the limits bind."""
    _sandbox_or_skip()
    user = layout.sandbox_user(isolated=True)
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    if user is not None:
        os.chown(kernel, *user)
    uid = user[0] if user is not None else os.getuid()
    processes = (_tasks_of(uid) if user is not None else 0) + PROCESS_ALLOWANCE  # as root, nobody's tasks all count
    config = {"violations": str(tmp_path / "violations.log"), "peer": peer.__file__, "scratch": str(kernel),
              "uid": user[0] if user else None, "gid": user[1] if user else None, "max_processes": processes,
              "max_memory_bytes": _data_bytes() + MEMORY_HEADROOM}
    holder = namespaces.Holder.start(namespaces.Mounts(namespaces.python_paths(), str(kernel)))
    config["holder_pid"] = holder.pid

    def spawn_and_map_past_the_limits() -> dict:
        kernel_boot.enter_sandbox(config, [], [])
        status_lines = open("/proc/self/status").read().splitlines()
        found = {"uid": os.getuid(), **{line.split(":")[0]: line.split()[1] for line in status_lines if line.startswith("Cap")}}
        try:
            hog = bytearray(2 * MEMORY_HEADROOM)
            found["memory"] = f"mapped {len(hog)} bytes"
        except MemoryError:
            found["memory"] = "MemoryError"
        born = []
        try:
            while len(born) < 500:
                born.append(os.posix_spawn("/usr/bin/sleep", ["sleep", "30"], {}))
            found["processes"] = f"spawned {len(born)}"
        except OSError as error:
            found["processes"] = f"{len(born)} then {error.strerror}"
        for child in born:
            os.kill(child, 9)
            os.waitpid(child, 0)
        return found

    found = findings_of_forked_child(holder, spawn_and_map_past_the_limits, kernel / "found.json")
    assert found["uid"] == uid, found
    assert all(int(found[kind], 16) == 0 for kind in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")), found
    assert found["memory"] == "MemoryError", found
    spawned, _, error = found["processes"].partition(" then ")
    # As root, other tests' sandboxed processes (also ``nobody``) may end while this one spawns, leaving it room
    # up to the whole limit; the limit binds if spawning stops there, far below the 500 tried.
    assert error == "Resource temporarily unavailable" and int(spawned) <= processes, found


LIMITS_PROBE = '''
import json, os, resource
print("OS-LIMITS", json.dumps({"uid": os.getuid(), "data": resource.getrlimit(resource.RLIMIT_DATA)[0],
                               "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0], "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}))
'''


@pytest.mark.slow
@pytest.mark.notebooks
def test_a_graded_kernel_runs_under_the_operating_systems_limits(tmp_path, mnist_folder):
    _sandbox_or_skip()
    course = make_course(tmp_path / "course")
    nb = solved(course)
    nb.cells.insert(1, nbformat.v4.new_code_cell(LIMITS_PROBE))
    put(course / "incoming", "probe", nb)
    limits = Limits(cell_timeout=60, cpu_seconds=300, memory_mb=2048, wall_seconds=600)
    [result] = grade(course, ASSIGNMENT, course / "incoming", GradeOptions(jobs=1, limits=limits)).submissions
    assert result.status == Status.GRADED and result.score == 10.0, result.reason
    graded = nbformat.read(course / "autograded" / "probe" / ASSIGNMENT / NOTEBOOK, as_version=4)
    text = "".join(output.get("text", "") for output in graded.cells[1].outputs)
    found = json.loads(text.split("OS-LIMITS", 1)[1])
    user = layout.sandbox_user(isolated=True)
    assert found["uid"] == (user[0] if user else os.getuid())
    if os.geteuid() == 0 and user is not None:
        assert found["uid"] != 0, "a root grader's kernel must run as an unprivileged user, whom RLIMIT_NPROC binds"
    assert found["data"] == limits.memory_backstop_bytes
    assert found["nproc"] == layout.MAX_PROCESSES
    assert 0 < found["cpu"] <= limits.cpu_seconds


@pytest.mark.parametrize("isolate", [True, False])
def test_the_checks_of_a_sandboxed_kernel_build_their_tensors_on_the_cpu(tmp_path, monkeypatch, isolate):
    """The sandbox's ``/dev`` holds no GPU: a tensor the checker sent on cuda could not reach the kernel."""
    from autograder.grading.sandbox import checker

    if isolate:
        _sandbox_or_skip()
    monkeypatch.setenv("AUTOGRADER_DEVICE", "cuda")
    course = tmp_path / "course"
    course.mkdir()
    sandbox = layout.build_sandbox(tmp_path / "work", course, {}, 1, isolate=isolate)
    try:
        assert checker.CheckerConfig.load(sandbox.checker_config).device == ("cpu" if isolate else "cuda")
    finally:
        if sandbox.holder is not None:
            sandbox.holder.close()
        shutil.rmtree(sandbox.channel, ignore_errors=True)
