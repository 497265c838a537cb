"""Where the wall time of one ``autograder grade`` run goes, from a py-spy profile of all its processes.

Record (``pip install py-spy`` into the environment; not a dependency of the project):

    py-spy record --subprocesses --idle --nonblocking --rate 50 --format raw -o grade.raw -- \\
        autograder grade 04_mnist_sgd --course COURSE --input SUBMISSIONS -j 1 --force

then ``python bench/profile_summary.py grade.raw --rate 50``. With ``--idle`` every sample of a main thread is
wall time, waiting included, so samples / rate = seconds. Background threads (ZMQ, heartbeat, the pool's
threads) are left out. Each process is put in one role (coordinator, worker, kernel, stand-in, checker, alembic, fork server) and each main-thread
stack in one phase, first matching rule wins. ``bench/grading_throughput.py`` records such a profile of its
``-j 2`` row (its ``profile`` row) and shows ``role_times`` in its report.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

JSONSCHEMA_GRAMMAR = ("imports: rfc3987_syntax grammar (jsonschema format checker)", ("syntax_helpers",))
"""A phase of every process that imports jsonschema's format checker."""

PHASES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "coordinator": [
        JSONSCHEMA_GRAMMAR,
        ("register the assignment in the course (generate_assignment)", ("register_assignment (",)),
        ("build the scratch gradebook template (generate_assignment)", ("prepare_template (",)),
        ("wait for the worker", ("wait (concurrent/futures/_base.py",)),
        ("record: score into the gradebook, save the result", ("record (autograder", "save (autograder")),
        ("collect and stage the submissions", ("collect (autograder", "stage (autograder")),
        ("imports", ("_find_and_load",)),
    ],
    "worker": [
        JSONSCHEMA_GRAMMAR,
        ("imports (nbgrader, nbconvert, jupyter_server, sqlalchemy)", ("_find_and_load",)),
        ("kernel start", ("setup_kernel", "start_new_kernel", "async_start_new_kernel")),
        ("executing cells (waiting for the kernel)", ("preprocess_cell",)),
        ("nbgrader's own steps (sanitize, gradebook, write)", ("autograde_with (", "NbGraderAPI.autograde (")),
        ("a spare waiting for its notebook", ("serve_ready (",)),
    ],
    "checker": [
        ("hidden checks: train_model training on the real sample", ("calibrated_run (",)),
        ("hidden checks: the other checks (pytest, hypothesis, calls into the kernel)", ("run_checks (",)),
        ("imports (torch, autograder.checks)", ("_find_and_load",)),
    ],
    "kernel": [
        ("in-kernel hidden checks (nbgrader autograde without the sandbox)", ("run_checks (",)),
        ("hidden checks, the kernel's side (sending the objects, answering the checker's calls, waiting)", ("check_shim.py",)),
        ("student cells: imports (fastai, torch)", ("_find_and_load",)),
        ("student cells: code (loading images, training)", ("run_cell",)),
    ],
    "alembic": [JSONSCHEMA_GRAMMAR],
    "fork server": [("imports (once per batch)", ("_find_and_load",))],
    "stand-in": [],
}
"""Per role, its phases in the order they are tried: a stack is the first phase one of whose needles it contains."""

REST: dict[str, str] = {
    "coordinator": "summary and other",
    "worker": "other (configuration, shutting the kernel down)",
    "checker": "waiting for the notebook's test cells",
    "kernel": "kernel start-up and idle between cells",
    "alembic": "alembic heads (python start-up, imports, run)",
    "fork server": "waiting for requests, forking",
    "stand-in": "waiting for the forked kernel (the grading process's child, the sandbox's outer process)",
}
"""Per role, the phase of a stack that matches none of its ``PHASES``, listed last."""


FORK_SERVER_FILES = ("trusted_forks.py", "kernel_forks.py")
FORKED_CHILD_FRAMES = ("_fork_one (", "_become_kernel (")
"""A process forked by a fork server runs below one of these frames; the server's own samples have none."""


def role(processes: list[str]) -> str:
    """The role of the last of ``processes`` (a py-spy chain, outermost first, each ``process PID:"COMMAND"``)."""
    last = processes[-1]
    if "alembic" in last:
        return "alembic"
    if "sandbox.checker" in last:
        return "checker"
    if "ipykernel" in last or "kernel_boot" in last or "kernel_forks" in last:
        return "kernel"
    return "coordinator" if len(processes) == 1 else "worker"


def sample_role(kind: str, frames: list[str]) -> str:
    """The role of one sample of a process of role ``kind``: a fork server's own work (listening, warming up,
    forking) and a stand-in's waiting are told apart by their frames, whatever the process's command line."""
    if kind == "kernel" and any(needle in frame for frame in frames for needle in STAND_IN_FRAMES):
        return "stand-in"
    if any(name in frame for frame in frames for name in FORK_SERVER_FILES) and \
            not any(mark in frame for frame in frames for mark in FORKED_CHILD_FRAMES):
        return "fork server"
    return kind


def read(path: Path) -> list[tuple[str, int, list[str], int]]:
    """(role, pid, frames, samples) per line of a py-spy raw profile recorded with --subprocesses."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        processes = [p for p in parts if p.startswith("process ")]
        frames = [p for p in parts if not p.startswith("process ")]
        if not frames or not processes or frames[0].startswith("Thread._bootstrap"):
            continue  # background threads
        pid = int(re.match(r"process (\d+)", processes[-1]).group(1))
        rows.append((role(processes), pid, frames, int(count)))
    return rows


def phase(kind: str, frames: list[str]) -> str:
    stack = ";".join(frames)
    for name, needles in PHASES[kind]:
        if any(needle in stack for needle in needles):
            return name
    return REST[kind]


ROLES = ("coordinator", "worker", "kernel", "stand-in", "checker", "alembic", "fork server")
STAND_IN_FRAMES = ("_stand_in (", "join_and_fork (", "request_fork (")
"""Frames of the processes that only wait for a kernel forked elsewhere: counted as ``stand-in``, not ``kernel``."""


@dataclass
class RoleTime:
    """The main-thread wall seconds of one process role, per phase, in ``PHASES`` order then ``REST``."""

    role: str
    processes: int
    phases: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def role_times(rows, rate: float) -> list[RoleTime]:
    """Per role that appears in ``rows`` (``read``'s output), its processes and seconds per phase."""
    processes: dict[str, set[int]] = defaultdict(set)
    seconds: dict[str, Counter] = defaultdict(Counter)
    for kind, pid, frames, count in rows:
        kind = sample_role(kind, frames)
        processes[kind].add(pid)
        seconds[kind][phase(kind, frames)] += count / rate
    out = []
    for kind in ROLES:
        if kind in seconds:
            names = [name for name, _ in PHASES[kind]] + [REST[kind]]
            out.append(RoleTime(kind, len(processes[kind]), {name: seconds[kind][name] for name in names if seconds[kind][name]}))
    return out


def summarise(rows, rate: float) -> str:
    """``role_times`` as text: per role its total, then each phase's seconds and share."""
    lines = []
    for times in role_times(rows, rate):
        lines.append(f"{times.role}: {times.total:.1f} s in {times.processes} process(es)")
        for name, seconds in times.phases.items():
            lines.append(f"  {seconds:8.1f} s  {100 * seconds / times.total:5.1f}%  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (--format raw) recorded with --subprocesses --idle")
    parser.add_argument("--rate", type=float, default=50, help="the sampling rate it was recorded with (default 50)")
    args = parser.parse_args()
    print(summarise(read(args.profile), args.rate))


if __name__ == "__main__":
    main()
