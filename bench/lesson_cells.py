"""The CPU that ``04_mnist_sgd``'s own cells take, with no grading at all: the floor under any grader.

Run by hand, on an otherwise idle machine, from the repository root with ``.venv/bin`` on PATH:

    python bench/lesson_cells.py --threads 1 --repeats 3

It executes the source notebook (the solved lesson) with nbclient in a plain kernel, with every hidden-test
block removed, so no check runs; the MNIST sample comes from ``--data`` (or ``$MNIST_SAMPLE_ARCHIVE``) into a
temporary ``FASTAI_HOME``. The first code cell (the imports) is left out of the figure: the batch's
kernel fork server imports those libraries once per batch. The kernel's own CPU (user + system, from
``resource.getrusage``) is read after the imports and after the last cell; the difference is what a kernel
spends on the lesson itself. It prints that CPU, the slowest cells' wall times, and what it means for 200
submissions on 2 cores (``200 x CPU / 2``). With ``--graded-part``, the notebook stops at its last graded,
solution or task cell, as ``autograder grade`` runs it (``GradingExecute``): the floor under grading as configured.
With ``--with-checks``, the hidden-test blocks stay and run in the kernel (``autograder.checks.check``, as plain
``nbgrader autograde`` runs them), their imports and warm-up paid with the notebook's imports, outside the
figure: the difference from the same run without them is what the hidden checks cost.

``bench/grading_throughput.py`` runs ``measure`` as its ``lesson`` row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.nbgrader_ext import last_tracked_cell

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "source" / "04_mnist_sgd" / "04_mnist_sgd.ipynb"
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
CPU_PROBE = "import resource as _r; _u = _r.getrusage(_r.RUSAGE_SELF); print('CPU', _u.ru_utime + _u.ru_stime)"
CHECKS_WARM_UP = "from autograder.checks import check\nfrom autograder.checks.runner import warm_up as _warm_up\n_warm_up()"
MATH_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
IOPUB_SECONDS = 60
"""How long nbclient waits for a cell's output after the cell ended (its default, 4 s, can pass on a loaded
machine, and the probe's reading would be lost): a reading still missing then is an error, never a silent gap."""


@dataclass
class LessonCells:
    """The kernel CPU of the solved lesson's cells after its imports (median of ``runs``).

    Attributes:
        cpu: median CPU seconds per notebook, imports excluded.
        runs: each run's CPU seconds.
        threads: the kernel's math threads.
        graded_part: only up to the last graded, solution or task cell.
        with_checks: the hidden checks ran in the kernel.
        slowest: the first run's slowest cells, (wall seconds, first line), slowest first.
    """

    cpu: float
    runs: list[float]
    threads: int
    graded_part: bool
    with_checks: bool
    slowest: list[tuple[float, str]]

    def figures(self) -> dict:
        return {**asdict(self), "cpu_per_notebook": self.cpu, "slowest_cells": self.slowest}


def lesson_notebook(graded_part: bool = False, with_checks: bool = False) -> nbformat.NotebookNode:
    """The solved lesson with a CPU probe after the imports and after the last cell (with ``graded_part``, the
    last graded, solution or task cell); its hidden tests removed, or with ``with_checks`` kept, with the checks'
    imports and warm-up added to the imports cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if graded_part:
        nb.cells = nb.cells[: last_tracked_cell(nb) + 1]
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if with_checks:
        code[0].source += "\n" + CHECKS_WARM_UP
    else:
        for cell in code:
            cell.source = HIDDEN_TESTS.sub("", cell.source)
    first = nb.cells.index(code[0])
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(CPU_PROBE))
    nb.cells.append(nbformat.v4.new_code_cell(CPU_PROBE))
    return nb


def probe_reading(probe: nbformat.NotebookNode) -> float:
    """The CPU seconds a probe cell printed. Its line may arrive split over several stream outputs (the kernel
    flushes its stdout on a timer, between ``print``'s writes, when the machine is busy).

    Raises:
        RuntimeError: the probe printed nothing, or something other than ``CPU <seconds>``.
    """
    text = "".join(output.get("text", "") for output in probe.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")
    words = text.split()
    if len(words) != 2 or words[0] != "CPU":
        raise RuntimeError(f"the CPU probe printed {text!r}, not 'CPU <seconds>'")
    return float(words[1])


def run_once(threads: int, timeout: int, graded_part: bool = False, with_checks: bool = False) -> tuple[float, list[tuple[float, str]]]:
    """Execute the lesson once; returns (kernel CPU seconds after the imports, [(cell seconds, first line)])."""
    nb = lesson_notebook(graded_part, with_checks)
    env = {**os.environ, **{name: str(threads) for name in MATH_THREADS}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}},
                            iopub_timeout=IOPUB_SECONDS, raise_on_iopub_timeout=True)
    client.execute(env=env)
    probes = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source == CPU_PROBE]
    readings = [probe_reading(probe) for probe in probes]
    cells = []
    for cell in nb.cells[nb.cells.index(probes[0]) + 1:]:  # after the imports
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and cell not in probes and "iopub.execute_input" in timing:
            started, ended = (datetime.fromisoformat(timing[key]) for key in ("iopub.execute_input", "shell.execute_reply"))
            cells.append(((ended - started).total_seconds(), cell.source.splitlines()[0] if cell.source else ""))
    return readings[1] - readings[0], cells


def measure(threads: int = 1, repeats: int = 3, timeout: int = 300, graded_part: bool = False, with_checks: bool = False) -> LessonCells:
    """Run the lesson ``repeats`` times in fresh kernels (FASTAI_HOME must point at the provisioned sample)."""
    runs = [run_once(threads, timeout, graded_part, with_checks) for _ in range(repeats)]
    cpu = statistics.median(seconds for seconds, _ in runs)
    return LessonCells(cpu, [s for s, _ in runs], threads, graded_part, with_checks, sorted(runs[0][1], reverse=True)[:6])


def describe(lesson: LessonCells) -> str:
    """The measurement in words, with what it means for 200 notebooks on 2 cores."""
    part = "up to the last graded cell" if lesson.graded_part else "all of them"
    checks = "with the hidden checks in the kernel" if lesson.with_checks else "without hidden tests"
    lines = [f"the lesson's cells ({part}) without the imports and {checks}: {lesson.cpu:.2f} CPU s per notebook "
             f"(median of {len(lesson.runs)}, {lesson.threads} math thread(s); each run: {', '.join(f'{s:.2f}' for s in lesson.runs)})",
             "slowest cells (first run, wall s):"]
    lines += [f"  {seconds:6.2f}  {line[:70]}" for seconds, line in lesson.slowest]
    lines.append(f"200 notebooks on 2 cores, cells alone: 200 x {lesson.cpu:.2f} / 2 = {200 * lesson.cpu / 2:.0f} s"
                 f" = {200 * lesson.cpu / 2 / 60:.1f} min")
    return "\n".join(lines)


def main() -> None:
    from grading_throughput import provision  # this script's folder is first on sys.path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="math threads of the kernel (default 1, as each kernel at -j 2 on 2 cores)")
    parser.add_argument("--repeats", type=int, default=3, help="executions; the median is reported (default 3)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--graded-part", action="store_true",
                        help="stop at the last graded, solution or task cell, as `autograder grade` runs the notebook")
    parser.add_argument("--with-checks", action="store_true", help="keep the hidden tests: run the checks in the kernel")
    parser.add_argument("--data", default=os.environ.get("MNIST_SAMPLE_ARCHIVE"),
                        help="MNIST sample archive or folder [env: MNIST_SAMPLE_ARCHIVE]; without it, the provisioned sample of FASTAI_HOME")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autograder-lesson-") as work:
        provision(args.data, Path(work))
        lesson = measure(args.threads, args.repeats, args.timeout, args.graded_part, args.with_checks)
    print(describe(lesson))
    if args.json:
        args.json.write_text(json.dumps(lesson.figures(), indent=1))


if __name__ == "__main__":
    main()
