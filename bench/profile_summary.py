"""Where the wall time of one ``autograder grade`` run goes, from a py-spy profile of all its processes.

Record (``pip install py-spy`` into the environment; not a dependency of the project):

    py-spy record --subprocesses --idle --nonblocking --rate 50 --format raw -o grade.raw -- \\
        autograder grade 04_mnist_sgd --course COURSE --input SUBMISSIONS -j 1 --force

then ``python bench/profile_summary.py grade.raw --rate 50``. With ``--idle`` every sample of a main thread is
wall time, waiting included, so samples / rate = seconds. Background threads (ZMQ, heartbeat, the pool's
threads) are left out. Each process is put in one role (coordinator, worker, kernel, checker, alembic) and each main-thread
stack in one phase, first matching rule wins.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
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
    ],
    "checker": [
        ("hidden checks: train_model training on the real sample", ("calibrated_run (",)),
        ("hidden checks: the other checks (pytest, hypothesis, calls into the kernel)", ("run_checks (",)),
        ("imports (torch, autograder.checks)", ("_find_and_load",)),
    ],
    "kernel": [
        ("in-kernel hidden checks (nbgrader autograde without the sandbox)", ("run_checks (",)),
        ("answering the checker's calls (student functions run for the checks)", ("serve (autograder",)),
        ("student cells: imports (fastai, torch)", ("_find_and_load",)),
        ("student cells: code (loading images, training)", ("run_cell",)),
    ],
    "alembic": [JSONSCHEMA_GRAMMAR],
}
"""Per role, its phases in the order they are tried: a stack is the first phase one of whose needles it contains."""

REST: dict[str, str] = {
    "coordinator": "summary and other",
    "worker": "nbgrader's own steps (sanitize, gradebook, write)",
    "checker": "waiting for the notebook's test cells",
    "kernel": "kernel start-up and idle between cells",
    "alembic": "alembic heads (python start-up, imports, run)",
}
"""Per role, the phase of a stack that matches none of its ``PHASES``, listed last."""


def role(processes: list[str]) -> str:
    last = processes[-1]
    if "alembic" in last:
        return "alembic"
    if "sandbox.checker" in last:
        return "checker"
    if "ipykernel" in last or "kernel_boot" in last:
        return "kernel"
    return "coordinator" if len(processes) == 1 else "worker"


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


def summarise(rows, rate: float) -> str:
    lines = []
    processes: dict[str, set[int]] = defaultdict(set)
    seconds: dict[str, Counter] = defaultdict(Counter)
    for kind, pid, frames, count in rows:
        processes[kind].add(pid)
        seconds[kind][phase(kind, frames)] += count / rate
    for kind in ("coordinator", "worker", "kernel", "checker", "alembic"):
        if kind not in seconds:
            continue
        total = sum(seconds[kind].values())
        lines.append(f"{kind}: {total:.1f} s in {len(processes[kind])} process(es)")
        for name in [name for name, _ in PHASES[kind]] + [REST[kind]]:
            if seconds[kind][name]:
                lines.append(f"  {seconds[kind][name]:8.1f} s  {100 * seconds[kind][name] / total:5.1f}%  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (--format raw) recorded with --subprocesses --idle")
    parser.add_argument("--rate", type=float, default=50, help="the sampling rate it was recorded with (default 50)")
    args = parser.parse_args()
    print(summarise(read(args.profile), args.rate))


if __name__ == "__main__":
    main()
