"""Grading throughput of ``04_mnist_sgd``: bare execution, serial ``nbgrader autograde``, ``autograder grade``.

Run by hand, on an otherwise idle machine, from the repository root with ``.venv/bin`` on PATH:

    python bench/grading_throughput.py --n 20 --data /path/to/mnist_sample.tgz --otter /path/to/otter-venv/bin/otter \
        --py-spy /path/to/py-spy --out bench/RESULTS.md

In one run on one machine it

1. builds N submissions of ``04_mnist_sgd`` (correct and wrong answers, alternating), in nbgrader's layout;
2. times, each in its own fresh scratch course under a temporary folder (for the grading rows, one whose
   gradebook knows the assignment, as after its release; that ``generate_assignment`` is not timed):
   - ``lesson``: the solved lesson's own CPU in a plain kernel, imports excluded (``bench/lesson_cells.py``):
     every cell, up to the last graded cell, and up to it with the hidden checks run in the kernel; it runs
     right before ``j2``, so that the CPU bar's two sides are measured minutes apart, not half an hour;
   - ``bare``: every submitted notebook executed with nbclient, one after the other, in one process (same
     kernel, same cell timeout as grading, the math threads capped as ``-j 1`` caps them; no hidden tests, no
     gradebook); each kernel's start and imports are recorded apart, so that they can be counted once;
   - ``nbgrader``: stock ``nbgrader autograde`` of all students in one call (serial; its in-kernel checks);
   - ``j1`` and ``j2``: ``autograder grade ... -j 1`` and ``-j 2`` through the CLI (``--force``), which leave
     out the cells after the notebook's last graded cell (no score depends on them);
   - ``j1_all`` and ``j2_all``: the same in a course that sets ``GradingExecute.run_trailing_cells``, so that
     every cell runs, as in the bare and nbgrader rows;
   - ``otter``: otter-grader's local ``otter run`` of each submission in turn, with otter tests converted
     from the notebook's test cells (``bench/otter_row.py``);
   - ``j2_200``: ``autograder grade -j 2`` of ``--n-200`` (default 200) submissions, for the 200-submission bar,
     right after the lesson's graded part is measured again (with and without the hidden checks) for its CPU ratio;
   - ``profile``: ``autograder grade -j 2`` of at most 10 submissions under ``py-spy record --subprocesses
     --idle``, summarised per process role and phase (``bench/profile_summary.py``), untimed;
   - ``j1_unsafe`` and ``j2_unsafe``: the same as ``j1`` and ``j2`` with ``--unsafe-no-sandbox``: kernels without the
     namespace sandbox, to measure what the sandbox costs per submission;
   - ``dask`` and ``local_j2`` (only where ``autograder grade`` has ``--executor`` and dask is installed):
     the same submissions on a two-worker ``dask.distributed.LocalCluster`` against ``--executor local -j 2``;
3. times the reference training (``autograder.reference``) against the fastbook-style loop (a PyTorch
   ``DataLoader`` over ``list(zip(x, y))``, batch 256) from the same start to the same accuracy;
4. prints per-submission medians, throughput, the ratios, the bars, peak memory per worker, and writes
   them with the machine, the exact command and where the time goes to a Markdown report (and, with
   ``--json``, the raw figures). Ratios between tools compare the same cells on both sides (the every-cell
   rows ``j1_all``/``j2_all`` against bare execution, nbgrader and otter); what leaving out the trailing cells
   saves is its own line.

While a row runs, its process tree is sampled with psutil: "peak MiB per worker" is the largest resident
memory (RSS summed over the processes) of one grading process tree, i.e. the grading process with its
kernel, which is also what ``--memory-limit`` watches. A kernel forked by the batch's fork server is not a
child of its grading process: it counts with the grading process whose work folder it runs in. CPU seconds
include the fork server's and its kernels' (it waits for each kernel that ends). The same sampling reads each
process's CPU and tells its role (kernels, checkers, nbgrader workers, coordinator, each fork server:
``TreeSampler.role``); the ``j2`` and ``j2_200`` rows' CPU by role is a table of "Where the time goes".

``--smoke`` runs every row once with N=2 and tiny training settings, to prove the script works (CI runs it
and asserts nothing about time); its report goes to a temporary file unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil

from machine import TreeSampler, machine_info  # this script's folder is first on sys.path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "04_mnist_sgd"
WORKER_MARKER = "autograder.grading.nbgrader_worker"
TIME_GOES_SECTION = "## Where the time goes"

BARS = {
    "j2_all_vs_nbgrader": 2.5,  # autograder grade -j 2, every cell run, throughput / serial nbgrader autograde throughput, at least
    "grader_cpu": 1.5,  # autograder grade -j 2 CPU per submission / (lesson's graded part + hidden checks), at most
    "j1_overhead": 0.10,  # autograder grade -j 1, every cell run, wall time over bare execution (imports once), at most
    "minutes_for_200": 8.0,  # 200 submissions at -j 2 as configured, measured, at most (minutes)
    "dask_vs_local": 1.15,  # --executor dask wall time / --executor local -j 2 wall time, at most
}
DASK_COURSE, DASK_MINUTES = 5000, 30
FLOOR_SPREAD_LIMIT = 0.10
"""The most the floor's runs (the lesson's graded part, alone and with the hidden checks) may spread, largest over
smallest less one, for a CPU bar to get a verdict: beyond it the machine's speed changed under the measurement
(seen at 25% within minutes), and a verdict against that floor would be the machine's, not the grader's."""
EVERY_CELL = "\nc.GradingExecute.run_trailing_cells = True  # the *_all rows: every cell, as bare execution and nbgrader\n"
UNSAFE = ["--unsafe-no-sandbox"]
MATH_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PROFILE_N, PROFILE_RATE = 10, 50

ROW_ORDER = ("bare", "nbgrader", "otter", "j1", "j2", "j1_all", "j2_all", "j2_200", "j1_unsafe", "j2_unsafe", "local_j2", "dask")
ROW_LABELS = {
    "bare": "bare execution (nbclient, serial)",
    "nbgrader": "nbgrader autograde (serial)",
    "otter": "otter run, each submission in turn (otter-grader, no container)",
    "j1": "autograder grade -j 1",
    "j2": "autograder grade -j 2",
    "j1_all": "autograder grade -j 1, every cell run",
    "j2_all": "autograder grade -j 2, every cell run",
    "j2_200": "autograder grade -j 2, the 200-submission run",
    "j1_unsafe": "autograder grade -j 1 --unsafe-no-sandbox",
    "j2_unsafe": "autograder grade -j 2 --unsafe-no-sandbox",
    "local_j2": "autograder grade --executor local -j 2",
    "dask": "autograder grade --executor dask (2 workers)",
}
LATENCY_MEANING = {
    "bare": "nbclient execution of one notebook (kernel start included)",
    "nbgrader": "interval between two students' autograded notebooks being written",
    "otter": "one `otter run` process (otter's start-up, kernel start, every cell, its tests)",
    "j2_200": "the worker's wall time for one submission (`seconds` in its result)",
    "j1": "the worker's wall time for one submission (`seconds` in its result)",
    "j2": "the worker's wall time for one submission (`seconds` in its result)",
    "j1_all": "the worker's wall time for one submission (`seconds` in its result)",
    "j2_all": "the worker's wall time for one submission (`seconds` in its result)",
    "j1_unsafe": "the worker's wall time for one submission (`seconds` in its result)",
    "j2_unsafe": "the worker's wall time for one submission (`seconds` in its result)",
    "local_j2": "the worker's wall time for one submission (`seconds` in its result)",
    "dask": "the worker's wall time for one submission (`seconds` in its result)",
}
SECTIONS = (
    "## Machine",
    "## Command",
    "## Submissions",
    "## Grading",
    "## Ratios",
    "## Reference training vs the fastbook loop",
    "## Bars",
    "## 200 submissions",
    "## Dask executor",
    TIME_GOES_SECTION,
)
"""The report's sections, in order (the smoke test checks that each is there)."""


# ----------------------------------------------------------------------------------------------- figures


@dataclass
class Row:
    """One measured way of getting N submissions through.

    Attributes:
        key: ``bare``, ``nbgrader``, ``j1``, ``j2``, ``j1_all``, ``j2_all``, ``j1_unsafe``, ``j2_unsafe``, ``local_j2`` or ``dask``.
        command: the command that was timed (temporary paths shown as ``$WORK``).
        wall: seconds from start to the last submission done, the whole command included.
        latencies: seconds per submission (see ``LATENCY_MEANING``).
        completions: seconds from the start at which each submission was done, sorted.
        peak_worker_mb: the largest RSS of one grading process tree (grading process + kernel).
        peak_total_mb: the largest RSS of everything the command ran at once.
        scores: student -> total points (graded rows only).
        statuses: status -> count (autograder rows only).
        cpu: CPU seconds (user + system) of every process of the row.
        load: the 1-minute load average before and after the row.
        exit_code: the command's exit status.
        startup: seconds per submission before its first cell after the imports (bare row: kernel start and imports).
        cpu_roles: process role -> [CPU seconds, processes] (``TreeSampler.cpu_by_role``; autograder rows only).
    """

    key: str
    command: str
    n: int
    wall: float
    latencies: list[float]
    completions: list[float] = field(default_factory=list)
    peak_worker_mb: float = 0.0
    peak_total_mb: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    exit_code: int = 0
    startup: list[float] = field(default_factory=list)
    cpu_roles: dict[str, list[float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ROW_LABELS[self.key]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def per_submission(self) -> float:
        """Wall seconds per submission, start-up costs spread over the N."""
        return self.wall / self.n

    @property
    def cpu_per_submission(self) -> float:
        return self.cpu / self.n

    @property
    def throughput(self) -> float:
        """Submissions per minute."""
        return 60.0 * self.n / self.wall

    def figures(self) -> dict:
        data = asdict(self)
        data.update(label=self.label, median=self.median, per_submission=self.per_submission, throughput=self.throughput,
                    cpu_per_submission=self.cpu_per_submission)
        return data


@dataclass
class TrainingRun:
    """One training loop timed per epoch: cumulative wall seconds and validation accuracy after each epoch."""

    name: str
    seconds: list[float]
    accuracies: list[float]

    def to_reach(self, target: float) -> tuple[int, float]:
        """(epochs, wall seconds) until the validation accuracy first reaches ``target``."""
        for epoch, (seconds, accuracy) in enumerate(zip(self.seconds, self.accuracies), start=1):
            if accuracy >= target:
                return epoch, seconds
        return len(self.seconds), float("inf")


@dataclass
class Training:
    """The reference loop against the fastbook-style loop (median of the repeats)."""

    epochs: int
    lr: float
    batch_size: int
    repeats: int
    target: float
    reference_epochs: int
    reference_seconds: float
    reference_accuracy: float
    reference_total: float
    fastbook_epochs: int
    fastbook_seconds: float
    fastbook_accuracy: float
    fastbook_total: float
    matches_train_linear1: bool
    threads: int

    @property
    def ratio(self) -> float:
        """How many times longer the fastbook loop takes to reach the target accuracy."""
        return self.fastbook_seconds / self.reference_seconds

    def figures(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Bench:
    """Everything one run measured."""

    n: int
    smoke: bool
    mix: dict[str, str]
    cell_timeout: int
    command: str
    date: str
    machine: dict
    work: str
    rows: dict[str, Row] = field(default_factory=dict)
    training: Training | None = None
    notes: dict[str, str] = field(default_factory=dict)
    lesson: dict[str, dict] = field(default_factory=dict)
    """``bench/lesson_cells.py``'s figures: ``all``, ``graded`` and ``graded_checks`` (``LessonCells.figures``),
    measured right before the ``j2`` row, so that the CPU bar's two sides share the machine's state."""
    lesson_200: dict[str, dict] = field(default_factory=dict)
    """``graded`` and ``graded_checks`` again, measured right before the ``j2_200`` row, for its CPU ratio."""
    profile: list[dict] = field(default_factory=list)
    """The ``profile`` row: per process role, ``{"role", "processes", "phases"}``, seconds over ``profile_n`` submissions."""
    profile_n: int = 0

    def figures(self) -> dict:
        return {
            "n": self.n, "smoke": self.smoke, "mix": self.mix, "cell_timeout": self.cell_timeout, "command": self.command,
            "date": self.date, "machine": self.machine, "rows": {k: r.figures() for k, r in self.rows.items()},
            "training": self.training.figures() if self.training else None, "notes": self.notes,
            "lesson": self.lesson, "lesson_200": self.lesson_200, "profile": self.profile, "profile_n": self.profile_n, "budget": cpu_budget(self),
            "ratios": ratios(self), "bars": [asdict(b) for b in bars(self)], "extrapolation": extrapolate_200(self),
            "extrapolation_all": extrapolate_200(self, "j2_all"),
            "dask": dask_sizing(self),
        }

    @classmethod
    def from_figures(cls, data: dict) -> Bench:
        """The run saved by ``--json``, to render its report again."""
        names = {f for f in Row.__dataclass_fields__}
        rows = {k: Row(**{f: v for f, v in row.items() if f in names}) for k, row in data["rows"].items()}
        for row in rows.values():
            row.load = tuple(row.load)
        training = None
        if data.get("training"):
            training = Training(**{f: v for f, v in data["training"].items() if f in Training.__dataclass_fields__})
        return cls(data["n"], data["smoke"], data["mix"], data["cell_timeout"], data["command"], data["date"], data["machine"], "",
                   rows, training, data.get("notes", {}), data.get("lesson", {}), data.get("lesson_200", {}), data.get("profile", []),
                   data.get("profile_n", 0))


# ----------------------------------------------------------------------------------------------- setup


def env_with_venv() -> dict[str, str]:
    """This process's environment with this interpreter's ``bin/`` first on PATH (nbgrader runs alembic)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def tool(name: str) -> list[str]:
    """The command that runs console script ``name`` of this environment."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    modules = {"autograder": "autograder.cli", "nbgrader": "nbgrader"}
    return [sys.executable, "-m", modules[name]]


def provision(data: str | None, work: Path) -> Path:
    """Point FASTAI_HOME at a temporary folder with the MNIST sample (from ``data``), or at the existing one."""
    from autograder.data import mnist_sample_dir, provision_mnist_sample

    if data:
        home = work / "fastai"
        folder = provision_mnist_sample(data, home=home)
    else:
        folder = provision_mnist_sample()
        home = folder.parent.parent
    assert folder == mnist_sample_dir(home)
    os.environ["FASTAI_HOME"] = str(home)
    return folder


def warm_up(folder: Path) -> None:
    """Build the tensor cache of the sample and read the big libraries into the page cache before timing."""
    from autograder.data import load_mnist_sample

    load_mnist_sample(folder)
    code = "import fastai.vision.all, nbgrader.apps, nbclient, autograder.checks, autograder.grading.pipeline"
    subprocess.run([sys.executable, "-c", code], env=env_with_venv(), check=True, capture_output=True)


def mix_of(n: int) -> dict[str, str]:
    """student -> variant: ``correct`` and ``wrong`` alternate, starting with ``correct``."""
    return {f"student{i:03d}": ("correct" if i % 2 == 0 else "wrong") for i in range(n)}


def write_submissions(course_root: Path, mix: dict[str, str], into: Path) -> Path:
    """Write the students' notebooks in nbgrader's layout ``into/<student>/<assignment>/<notebook>``.

    ``correct`` solves every blank as the source notebook does; ``wrong`` is the demo's partly wrong student
    (``WRONG_SNIPPETS``: ``BasicOptim.zero_grad`` clears one gradient, ``train_epoch`` steps once per epoch,
    ``train_model`` returns only the last accuracy), the other blanks solved.
    """
    import nbformat

    from autograder.course import notebook
    from autograder.grading.demo import WRONG_SNIPPETS, fill, solution_snippets

    release = notebook(course_root, "release", ASSIGNMENT)
    solved = solution_snippets(notebook(course_root, "source", ASSIGNMENT))
    variants = {"correct": fill(release, solved), "wrong": fill(release, {**solved, **WRONG_SNIPPETS[ASSIGNMENT]})}
    for student, variant in mix.items():
        target = into / student / ASSIGNMENT / release.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(variants[variant], target)
    return into


def fresh_course(course_root: Path, into: Path) -> Path:
    """A scratch copy of the course (configuration, ``source/``, ``release/<assignment>/``) in ``into``."""
    from autograder.course import scratch_course

    course = scratch_course(course_root, into)
    shutil.copytree(course_root / "release" / ASSIGNMENT, course / "release" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return course


# ----------------------------------------------------------------------------------------------- rows


class Context:
    """What every row needs: the course, the submissions, the work folder, the settings."""

    def __init__(self, course_root: Path, work: Path, submissions: Path, mix: dict[str, str], cell_timeout: int) -> None:
        self.course_root, self.work, self.submissions, self.mix, self.cell_timeout = course_root, work, submissions, mix, cell_timeout

    def shown(self, command: list[str]) -> str:
        """``command`` as a shell line, with the temporary folder written ``$WORK``."""
        text = shlex.join(command).replace(str(self.work), "$WORK")
        return text.replace(str(Path(sys.executable).parent) + os.sep, "")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_watched(command: list[str], cwd: Path, log: Path, sampler: TreeSampler, started: list[float] | None = None,
                 env: dict[str, str] | None = None) -> tuple[int, float, float]:
    """Run ``command`` with its tree sampled; returns (exit code, wall seconds, CPU seconds of the whole tree).

    The CPU seconds are those of every process the command started and waited for (``RUSAGE_CHILDREN``).
    ``env`` is added to ``env_with_venv()``.
    """
    with open(log, "wb") as out:
        cpu = _children_cpu()
        start = time.perf_counter()
        if started is not None:
            started.append(time.time())
        process = subprocess.Popen(command, cwd=cwd, env={**env_with_venv(), **(env or {})}, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        sampler.add_top(process.pid, group=True)
        code = process.wait()
        return code, time.perf_counter() - start, _children_cpu() - cpu


def _fail_unless(code: int, what: str, log: Path, allowed: tuple[int, ...] = (0,)) -> None:
    if code not in allowed:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{what} exited with {code}; last lines of {log}:\n{tail}")


def serial_threads() -> int:
    """The math threads ``autograder grade -j 1`` gives its kernel: every usable core (cores // jobs)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_bare(ctx: Context) -> Row:
    """Execute every submitted notebook with nbclient, one after the other, in one process, each kernel's math
    threads capped as ``-j 1`` caps them; each notebook's kernel start and imports are recorded as ``startup``."""
    folder = ctx.work / "bare"
    notebooks = []
    for student in ctx.mix:
        source = next((ctx.submissions / student / ASSIGNMENT).glob("*.ipynb"))
        target = folder / student / source.name
        target.parent.mkdir(parents=True)
        shutil.copy2(source, target)
        notebooks.append(target)
    figures = folder / "bare.json"
    threads = str(serial_threads())
    command = [sys.executable, str(Path(__file__).resolve()), "execute-notebooks", "--timeout", str(ctx.cell_timeout),
               "--threads", threads, "--json", str(figures), *map(str, notebooks)]
    load_before = os.getloadavg()[0]
    with TreeSampler([]) as sampler:
        code, wall, cpu = _run_watched(command, folder, folder / "bare.log", sampler)
    _fail_unless(code, "bare execution", folder / "bare.log")
    timings = json.loads(figures.read_text())
    seconds = {path: timing["seconds"] for path, timing in timings.items()}
    shown = ctx.shown(["python", "bench/grading_throughput.py", "execute-notebooks", "--timeout", str(ctx.cell_timeout), "--threads", threads,
                       "--json", str(figures), str(folder / "STUDENT" / notebooks[0].name)]) + " ..."
    return Row("bare", shown, len(notebooks), wall, [seconds[str(p)] for p in notebooks], sorted(_cumulative(seconds.values())),
               sampler.peak_group_mb, sampler.peak_total_mb, cpu=cpu, load=(load_before, os.getloadavg()[0]), exit_code=code,
               startup=[timings[str(p)]["startup"] for p in notebooks])


def _cumulative(values) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


def _startup_seconds(nb, started: float) -> float:
    """Seconds from ``started`` (epoch) until the second code cell began: kernel start and the imports cell."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    timing = code[1].get("metadata", {}).get("execution", {}) if len(code) > 1 else {}
    if "iopub.execute_input" not in timing:
        return 0.0
    from datetime import datetime as _datetime

    return _datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00")).timestamp() - started


def execute_notebooks(paths: list[Path], timeout: int, out: Path, threads: int = 0) -> None:
    """``execute-notebooks``: run each notebook with nbclient as nbgrader's Execute does, its kernel's math
    threads capped at ``threads`` (0: no cap); write ``{"seconds", "startup"}`` per path."""
    import nbformat
    from nbclient import NotebookClient

    env = {**os.environ, **({name: str(threads) for name in MATH_THREADS} if threads else {})}
    timings = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, interrupt_on_timeout=True, allow_errors=True, raise_on_iopub_timeout=True,
                                resources={"metadata": {"path": str(path.parent)}})
        start, started = time.perf_counter(), time.time()
        client.execute(env=env)
        timings[str(path)] = {"seconds": time.perf_counter() - start, "startup": _startup_seconds(nb, started)}
        nbformat.write(nb, path.with_name(path.stem + ".executed.ipynb"))
    out.write_text(json.dumps(timings))


def run_nbgrader(ctx: Context) -> Row:
    """Stock ``nbgrader autograde ASSIGNMENT`` for every student in one call, in a fresh scratch course."""
    from autograder.nbgrader_api import cell_grades, generate_assignment

    folder = ctx.work / "nbgrader"
    course = fresh_course(ctx.course_root, folder / "course")
    generate_assignment(course, ASSIGNMENT)
    for student in ctx.mix:
        shutil.copytree(ctx.submissions / student / ASSIGNMENT, course / "submitted" / student / ASSIGNMENT)
    command = [*tool("nbgrader"), "autograde", ASSIGNMENT, "--force", f"--Execute.timeout={ctx.cell_timeout}"]
    load_before, started = os.getloadavg()[0], []
    with TreeSampler([]) as sampler:
        code, wall, cpu = _run_watched(command, course, folder / "nbgrader.log", sampler, started)
    _fail_unless(code, "nbgrader autograde", folder / "nbgrader.log")
    done = sorted(next((course / "autograded" / s / ASSIGNMENT).glob("*.ipynb")).stat().st_mtime - started[0] for s in ctx.mix)
    latencies = [b - a for a, b in zip([0.0, *done], done)]
    scores = {s: sum(g.score for g in cell_grades(course, ASSIGNMENT, s)) for s in ctx.mix}
    return Row("nbgrader", f"cd $WORK/nbgrader/course && {ctx.shown(command)}", len(ctx.mix), wall, latencies, done,
               sampler.peak_group_mb, sampler.peak_total_mb, scores, cpu=cpu, load=(load_before, os.getloadavg()[0]), exit_code=code)


def run_autograder(ctx: Context, key: str, options: list[str], extra_groups: list[int] | None = None, every_cell: bool = False) -> Row:
    """``autograder grade ASSIGNMENT --course COURSE --input SUBMISSIONS --force OPTIONS`` in a fresh course.

    As for the nbgrader row, the course's gradebook knows the assignment before the timing starts (the state
    of a course after the assignment's release). With ``every_cell``, the course's configuration also runs the
    cells after the last graded cell (``EVERY_CELL``).
    """
    from autograder.nbgrader_api import generate_assignment

    folder = ctx.work / key
    course = fresh_course(ctx.course_root, folder / "course")
    if every_cell:
        with open(course / "nbgrader_config.py", "a") as config:
            config.write(EVERY_CELL)
    generate_assignment(course, ASSIGNMENT)
    command = [*tool("autograder"), "grade", ASSIGNMENT, "--course", str(course), "--input", str(ctx.submissions),
               "--force", "--cell-timeout", str(ctx.cell_timeout), *options]
    load_before, started = os.getloadavg()[0], []
    with TreeSampler(extra_groups or [], groups=extra_groups, marker=WORKER_MARKER) as sampler:
        cpu_before = _process_cpu(extra_groups or [])
        code, wall, cpu = _run_watched(command, folder, folder / "grade.log", sampler, started)
        cpu += _process_cpu(extra_groups or []) - cpu_before
    _fail_unless(code, f"autograder grade ({key})", folder / "grade.log")
    results = {}
    for path in sorted((course / "grading" / ASSIGNMENT).glob("*.json")):
        results[path.stem] = (json.loads(path.read_text()), path.stat().st_mtime - started[0])
    missing = sorted(set(ctx.mix) - set(results))
    if missing:
        raise RuntimeError(f"autograder grade ({key}) left no result for {', '.join(missing)}; see {folder / 'grade.log'}")
    statuses: dict[str, int] = {}
    for data, _ in results.values():
        statuses[data["status"]] = statuses.get(data["status"], 0) + 1
    scores = {s: sum(c["score"] for c in data["cells"]) for s, (data, _) in results.items()}
    return Row(key, ctx.shown(command), len(results), wall, [data["seconds"] for data, _ in results.values()],
               sorted(done for _, done in results.values()), sampler.peak_group_mb, sampler.peak_total_mb, scores, statuses,
               cpu=cpu, load=(load_before, os.getloadavg()[0]), exit_code=code,
               cpu_roles={role: [seconds, count] for role, (seconds, count) in sampler.cpu_by_role().items()})


def run_otter(ctx: Context, otter: Path) -> Row:
    """otter-grader's ``otter run`` of every submission, one after the other (``bench/otter_row.py``).

    The otter tests, ``otter generate``'s autograder zip, the kernel specification and the tagged copies of the
    submissions are made before the timing starts, as the other rows' courses are.
    """
    import nbformat
    import otter_row

    from autograder.course import notebook
    from autograder.reference import mnist_sgd

    folder = ctx.work / "otter"
    archive, blanks = otter_row.prepare(folder, otter, nbformat.read(notebook(ctx.course_root, "source", ASSIGNMENT), as_version=4), mnist_sgd)
    jupyter_path = otter_row.kernel_spec(folder, otter)
    notebooks = []
    for student in ctx.mix:
        source = next((ctx.submissions / student / ASSIGNMENT).glob("*.ipynb"))
        target = folder / "submissions" / student / source.name
        target.parent.mkdir(parents=True)
        nbformat.write(otter_row.tagged(nbformat.read(source, as_version=4), blanks), target)
        notebooks.append(target)
    figures = folder / "otter.json"
    command = [sys.executable, str(Path(otter_row.__file__).resolve()), "--otter", str(otter), "--autograder", str(archive),
               "--json", str(figures), *map(str, notebooks)]
    load_before = os.getloadavg()[0]
    with TreeSampler([]) as sampler:
        code, wall, cpu = _run_watched(command, folder, folder / "otter.log", sampler, env={"JUPYTER_PATH": str(jupyter_path)})
    _fail_unless(code, "otter run", folder / "otter.log")
    seconds = json.loads(figures.read_text())
    scores = {student: otter_row.otter_score(path.parent / "results.json") for student, path in zip(ctx.mix, notebooks)}
    shown = ctx.shown(["python", "bench/otter_row.py", "--otter", str(otter), "--autograder", str(archive), "--json", str(figures),
                       str(folder / "submissions" / "STUDENT" / notebooks[0].name)]) + " ...  (each: otter run -a ZIP -o DIR --no-logo NOTEBOOK)"
    return Row("otter", shown, len(notebooks), wall, [seconds[str(p)] for p in notebooks], sorted(_cumulative(seconds.values())),
               sampler.peak_group_mb, sampler.peak_total_mb, scores, cpu=cpu, load=(load_before, os.getloadavg()[0]), exit_code=code)


LESSON_PARTS = {"all": (False, False), "graded": (True, False), "graded_checks": (True, True)}
"""``bench/lesson_cells.py``'s measurements: name -> (graded part only, hidden checks in the kernel)."""


def run_lesson(timeout: int, repeats: int, parts: tuple[str, ...] = tuple(LESSON_PARTS)) -> dict[str, dict]:
    """``bench/lesson_cells.py``: every cell, the graded part, the graded part with the hidden checks (1 thread)."""
    import lesson_cells

    return {name: lesson_cells.measure(1, repeats, timeout, graded_part=LESSON_PARTS[name][0], with_checks=LESSON_PARTS[name][1]).figures()
            for name in parts}


def run_profile(ctx: Context, py_spy: Path, n: int) -> list[dict]:
    """``autograder grade -j 2`` of the first ``n`` submissions under ``py-spy record --subprocesses --idle``;
    the main threads' wall seconds per process role and phase (``bench/profile_summary.py``)."""
    import profile_summary
    from autograder.nbgrader_api import generate_assignment

    folder = ctx.work / "profile"
    mix = dict(list(ctx.mix.items())[:n])
    submissions = write_submissions(ctx.course_root, mix, folder / "submissions")
    course = fresh_course(ctx.course_root, folder / "course")
    generate_assignment(course, ASSIGNMENT)
    raw = folder / "grade.raw"
    command = [str(py_spy), "record", "--subprocesses", "--idle", "--nonblocking", "--rate", str(PROFILE_RATE), "--format", "raw",
               "-o", str(raw), "--", *tool("autograder"), "grade", ASSIGNMENT, "--course", str(course), "--input", str(submissions),
               "--force", "--cell-timeout", str(ctx.cell_timeout), "-j", "2"]
    with TreeSampler([]) as sampler:
        code, _, _ = _run_watched(command, folder, folder / "profile.log", sampler)
    _fail_unless(code, "py-spy record of autograder grade", folder / "profile.log")
    return [asdict(times) for times in profile_summary.role_times(profile_summary.read(raw), PROFILE_RATE)]


def _process_cpu(pids: list[int]) -> float:
    """CPU seconds so far of live processes (dask workers) and their live descendants (the fork servers a worker
    keeps for its life), each with the children it waited for."""
    total = 0.0
    for pid in pids:
        for proc in TreeSampler._tree(pid):
            try:
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
    return total


def has_executor_option() -> bool:
    """Whether this checkout's ``autograder grade`` offers ``--executor``."""
    help_text = subprocess.run([*tool("autograder"), "grade", "--help"], capture_output=True, text=True, env=env_with_venv()).stdout
    return "--executor" in help_text


def run_dask_rows(ctx: Context) -> tuple[dict[str, Row], str]:
    """``--executor dask`` on a two-worker LocalCluster against ``--executor local -j 2``; or a note why not."""
    if not has_executor_option():
        return {}, "skipped: `autograder grade --help` offers no `--executor` option in this checkout"
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        return {}, f"skipped: dask.distributed cannot be imported ({error})"
    rows = {"local_j2": run_autograder(ctx, "local_j2", ["--executor", "local", "-j", "2"])}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        with Client(cluster) as client:
            pids = sorted(client.run(os.getpid).values())
            row = run_autograder(ctx, "dask", ["--executor", "dask", "--scheduler", cluster.scheduler_address], extra_groups=pids)
            row.command = row.command.replace(cluster.scheduler_address, "tcp://127.0.0.1:PORT")
            rows["dask"] = row
    finally:
        cluster.close()
    return rows, "LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host='127.0.0.1', dashboard_address=None)"


# ----------------------------------------------------------------------------------------------- training


def _timed_epochs(name: str, model, dl, valid_dl, opt, epochs: int, train_epoch, validate_epoch) -> TrainingRun:
    seconds, accuracies = [], []
    start = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, dl, opt)
        accuracies.append(validate_epoch(model, valid_dl))
        seconds.append(time.perf_counter() - start)
    return TrainingRun(name, seconds, accuracies)


def reference_loop(sample, seed: int, lr: float, epochs: int) -> TrainingRun:
    """``train_linear1`` of ``autograder.reference.runs``, epoch by epoch: ``TensorBatches`` slices on the device."""
    from autograder.device import seed_everything
    from autograder.reference import mnist_sgd
    from autograder.reference.runs import batches_for

    device = sample.images["train", "3"].device
    seed_everything(seed)
    model = mnist_sgd.Linear1(mnist_sgd.init_params((28 * 28, 1), device=device), mnist_sgd.init_params(1, device=device))
    dl, valid_dl = batches_for(sample, seed)
    opt = mnist_sgd.BasicOptim(mnist_sgd.params_of(model), lr)
    return _timed_epochs("reference", model, dl, valid_dl, opt, epochs, mnist_sgd.train_epoch, mnist_sgd.validate_epoch)


def fastbook_loop(sample, seed: int, lr: float, epochs: int, batch_size: int = 256) -> TrainingRun:
    """The loop of fastbook chapter 4: a ``DataLoader`` over ``list(zip(x, y))`` (one item per image, collated
    per batch), batch 256, shuffled; same start (``init_params`` after the same seed), lr and epochs.

    The model, loss, step and metric are the reference's (``linear1``, ``mnist_loss``, ``p.data -= p.grad *
    lr``, the size-weighted ``validate_epoch``), so only the way batches are made and fed differs.
    """
    import torch
    from torch.utils.data import DataLoader

    from autograder.device import seed_everything
    from autograder.reference import mnist_sgd

    train_x, train_y = sample.xy("train")
    valid_x, valid_y = sample.xy("valid")
    seed_everything(seed)
    weights, bias = mnist_sgd.init_params((28 * 28, 1)), mnist_sgd.init_params(1)
    params = (weights, bias)
    dl = DataLoader(list(zip(train_x, train_y)), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    valid_dl = DataLoader(list(zip(valid_x, valid_y)), batch_size=batch_size)

    def model(xb):
        return mnist_sgd.linear1(xb, weights, bias)

    def train_epoch(model, dl, lr):
        for xb, yb in dl:
            preds = model(xb)
            loss = mnist_sgd.mnist_loss(preds, yb)
            loss.backward()
            for p in params:
                p.data -= p.grad * lr
                p.grad.zero_()

    return _timed_epochs("fastbook", model, dl, valid_dl, lr, epochs, train_epoch, mnist_sgd.validate_epoch)


def run_training(folder: Path, epochs: int, repeats: int, threads: int, seed: int = 42) -> Training:
    """Both loops ``repeats`` times on the real sample (CPU, ``threads`` torch threads), alternating, after one
    warm-up epoch of each; time to the lower of their final accuracies."""
    import torch

    from autograder.data import load_mnist_sample
    from autograder.reference.mnist_sgd import BATCH_SIZE
    from autograder.reference.runs import LINEAR1_LR, train_linear1

    sample = load_mnist_sample(folder)
    lr = LINEAR1_LR
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        reference_loop(sample, seed, lr, 1)
        fastbook_loop(sample, seed, lr, 1, BATCH_SIZE)
        references, fastbooks = [], []
        for _ in range(repeats):
            references.append(reference_loop(sample, seed, lr, epochs))
            fastbooks.append(fastbook_loop(sample, seed, lr, epochs, BATCH_SIZE))
        matches = train_linear1(sample, seed=seed, lr=lr, epochs=epochs).accuracies == references[0].accuracies
    finally:
        torch.set_num_threads(previous)
    target = min(references[0].accuracies[-1], fastbooks[0].accuracies[-1])
    ref_epochs, ref_seconds = references[0].to_reach(target)[0], statistics.median(r.to_reach(target)[1] for r in references)
    fb_epochs, fb_seconds = fastbooks[0].to_reach(target)[0], statistics.median(r.to_reach(target)[1] for r in fastbooks)
    return Training(
        epochs, lr, BATCH_SIZE, repeats, target,
        ref_epochs, ref_seconds, references[0].accuracies[-1], statistics.median(r.seconds[-1] for r in references),
        fb_epochs, fb_seconds, fastbooks[0].accuracies[-1], statistics.median(r.seconds[-1] for r in fastbooks),
        matches, threads,
    )


# ----------------------------------------------------------------------------------------------- verdicts


@dataclass
class Bar:
    name: str
    measured: str
    bar: str
    passed: bool | None  # None: not measured in this run, or measured on an unsteady machine
    unsteady: str = ""  # why no verdict is given although it was measured

    @property
    def verdict(self) -> str:
        if self.unsteady:
            return f"no verdict: {self.unsteady}"
        return "not measured" if self.passed is None else ("PASS" if self.passed else "MISS")


def floor_spread(lesson: dict) -> float | None:
    """How far the floor's runs spread (largest over smallest, less one), over the graded part alone and with the
    hidden checks; None when ``lesson`` lacks them."""
    spreads = [max(part["runs"]) / min(part["runs"]) - 1 for part in (lesson.get("graded"), lesson.get("graded_checks"))
               if part and part.get("runs") and min(part["runs"]) > 0]
    return max(spreads) if spreads else None


def _steady(bar: Bar, lesson: dict) -> Bar:
    """``bar`` without its verdict when the floor it is measured against spread past ``FLOOR_SPREAD_LIMIT``."""
    spread = floor_spread(lesson)
    if bar.passed is not None and spread is not None and spread > FLOOR_SPREAD_LIMIT:
        bar.passed, bar.unsteady = None, (f"the floor's runs spread by {spread * 100:.0f}% "
                                          f"(more than {FLOOR_SPREAD_LIMIT * 100:g}%): rerun on a quiet machine")
    return bar


RATIO_PAIRS: dict[str, tuple[str, str, str]] = {
    "j2_all_vs_nbgrader_throughput": ("j2_all", "nbgrader", "throughput"),
    "j2_all_vs_otter_throughput": ("j2_all", "otter", "throughput"),
    "j1_all_vs_bare_wall": ("j1_all", "bare", "wall"),
    "j1_all_vs_bare_median": ("j1_all", "bare", "median"),
    "nbgrader_vs_bare_wall": ("nbgrader", "bare", "wall"),
    "otter_vs_bare_wall": ("otter", "bare", "wall"),
    "j2_vs_j2_all_throughput": ("j2", "j2_all", "throughput"),
    "j2_vs_j1_throughput": ("j2", "j1", "throughput"),
    "j2_vs_j2_unsafe_throughput": ("j2", "j2_unsafe", "throughput"),
    "dask_vs_local_wall": ("dask", "local_j2", "wall"),
}
"""Ratio name -> (row, row it is divided by, figure). Rows compared across tools run the same cells."""


def bare_wall_imports_once(row: Row) -> float:
    """The bare row's wall with each kernel's start and imports counted once, as a batch's fork server pays them:
    the wall, less every notebook's start-up, plus the median start-up."""
    if not row.startup:
        return row.wall
    return row.wall - sum(row.startup) + statistics.median(row.startup)


def ratios(bench: Bench) -> dict[str, float]:
    """The rows compared: times ("x"), except the keys ending in ``_s``, differences in seconds (``ratio_text``)."""
    rows, out = bench.rows, {}
    for name, (top, bottom, figure) in RATIO_PAIRS.items():
        if top in rows and bottom in rows:
            out[name] = getattr(rows[top], figure) / getattr(rows[bottom], figure)
    if "j1_all" in rows and "bare" in rows and rows["bare"].startup:
        out["j1_all_vs_bare_imports_once_wall"] = rows["j1_all"].wall / bare_wall_imports_once(rows["bare"])
    if "j1" in rows and "j1_unsafe" in rows:
        out["sandbox_cost_j1_median_s"] = rows["j1"].median - rows["j1_unsafe"].median
    if bench.training:
        out["fastbook_vs_reference_training"] = bench.training.ratio
    return out


def cpu_budget(bench: Bench) -> dict | None:
    """What grading one submission needs at the least (the lesson's graded part and the hidden checks, from the
    ``lesson`` row) against what ``autograder grade -j 2`` spends (CPU s per submission of the ``j2`` row; and of
    the ``j2_200`` row, where start-up is spread over 200 submissions).

    With both rows, their CPU in all (``N x`` CPU per submission) is split as ``start-up + N x per submission``:
    ``startup`` is the batch's fixed CPU (fork servers' and coordinator's imports, the gradebook template) and
    ``marginal`` what each further submission costs. The two rows ran minutes apart, so the split carries the
    machine's drift between them.
    """
    lesson, row, big = bench.lesson, bench.rows.get("j2"), bench.rows.get("j2_200")
    if "graded" not in lesson or "graded_checks" not in lesson:
        return None
    graded, with_checks = lesson["graded"]["cpu"], lesson["graded_checks"]["cpu"]
    near_200 = bench.lesson_200 if "graded_checks" in bench.lesson_200 else lesson
    out = {"graded_part": graded, "hidden_checks": with_checks - graded, "needed": with_checks,
           "every_cell": lesson.get("all", {}).get("cpu"), "grader": None, "ratio": None,
           "needed_200": near_200["graded_checks"]["cpu"], "grader_200": None, "ratio_200": None,
           "startup": None, "marginal": None, "ratio_marginal": None}
    if with_checks <= 0 or out["needed_200"] <= 0:
        return out
    if row is not None:
        out.update(grader=row.cpu_per_submission, ratio=row.cpu_per_submission / with_checks)
    if big is not None:
        out.update(grader_200=big.cpu_per_submission, ratio_200=big.cpu_per_submission / out["needed_200"])
    if row is not None and big is not None and big.n > row.n:
        marginal = (big.cpu_per_submission * big.n - row.cpu_per_submission * row.n) / (big.n - row.n)
        out.update(marginal=marginal, startup=row.cpu_per_submission * row.n - marginal * row.n, ratio_marginal=marginal / with_checks)
    return out


def extrapolate_200(bench: Bench, key: str = "j2") -> dict | None:
    """200 submissions at ``-j 2`` (row ``key``): measured wall seconds per submission x 200 (start-up spread over
    N, so an upper bound), and where N allows, the steady rate between the first and the last completion plus
    the start-up (time to the first completion minus one submission's worker time)."""
    row = bench.rows.get(key)
    if row is None:
        return None
    simple = row.per_submission * 200
    out = {"per_submission": row.per_submission, "seconds": simple, "minutes": simple / 60, "steady": None}
    done = row.completions
    if len(done) >= 3 and done[-1] > done[0]:
        interval = (done[-1] - done[0]) / (len(done) - 1)
        startup = max(0.0, done[0] - row.median)
        out["steady"] = {"interval": interval, "startup": startup, "seconds": startup + row.median + 199 * interval,
                         "minutes": (startup + row.median + 199 * interval) / 60}
    return out


def dask_sizing(bench: Bench) -> dict | None:
    """Workers a course of 5,000 submissions needs to finish in 30 minutes, from the dask row's worker time."""
    row = bench.rows.get("dask")
    if row is None:
        return None
    workers = 2
    worker_seconds = row.wall * workers / row.n
    return {"worker_seconds_per_submission": worker_seconds,
            "workers": math.ceil(DASK_COURSE * worker_seconds / (DASK_MINUTES * 60))}


def _bar(name: str, value: float | None, shown: str, bar: str, passed) -> Bar:
    return Bar(name, shown if value is not None else "-", bar, None if value is None else bool(passed(value)))


def bars(bench: Bench) -> list[Bar]:
    """The issue's bars; ratios between tools compare the every-cell rows, the same cells on both sides."""
    r, budget, big = ratios(bench), cpu_budget(bench), bench.rows.get("j2_200")
    cpu = budget["ratio"] if budget else None
    cpu_200 = budget["ratio_200"] if budget else None
    minutes = big.wall / 60 if big is not None and big.n == 200 else None
    overhead = r.get("j1_all_vs_bare_imports_once_wall")
    dask = r.get("dask_vs_local_wall")
    value = r.get("j2_all_vs_nbgrader_throughput")
    near_200 = bench.lesson_200 if "graded_checks" in bench.lesson_200 else bench.lesson
    return [
        _steady(_bar("`autograder grade -j 2` CPU per submission / (the lesson's graded part + the hidden checks), as configured,"
                     f" N = {bench.n}", cpu, f"{cpu:.2f}x" if cpu else "", f"<= {BARS['grader_cpu']:g}x",
                     lambda v: v <= BARS["grader_cpu"]), bench.lesson),
        _steady(_bar(f"the same, N = {big.n if big else '-'} (the 200-submission run: start-up spread over all of them)", cpu_200,
                     f"{cpu_200:.2f}x" if cpu_200 else "", f"<= {BARS['grader_cpu']:g}x", lambda v: v <= BARS["grader_cpu"]), near_200),
        _bar("`autograder grade -j 2`, every cell run, throughput / serial `nbgrader autograde` throughput", value,
             f"{value:.2f}x" if value else "", f">= {BARS['j2_all_vs_nbgrader']:g}x", lambda v: v >= BARS["j2_all_vs_nbgrader"]),
        _bar("200 submissions of `04_mnist_sgd` at `-j 2`, as configured (measured at N = 200)", minutes,
             f"{minutes:.1f} min" if minutes else "", f"<= {BARS['minutes_for_200']:g} min", lambda v: v <= BARS["minutes_for_200"]),
        _bar("grading overhead of `-j 1`, every cell run, over bare execution with its kernel start and imports counted once (wall)",
             overhead, f"{(overhead or 1) * 100 - 100:+.0f}%", f"<= +{BARS['j1_overhead'] * 100:g}%", lambda v: v - 1 <= BARS["j1_overhead"]),
        _bar("`--executor dask` (2 workers) wall / `--executor local -j 2` wall", dask, f"{dask or 0:.2f}x",
             f"<= {BARS['dask_vs_local']:g}x", lambda v: v <= BARS["dask_vs_local"]),
    ]


# ----------------------------------------------------------------------------------------------- report


def ratio_text(key: str, value: float) -> str:
    """A ratio as ``1.23x``; a difference in seconds (key ending in ``_s``) as ``+1.23 s``."""
    return f"{value:+.2f} s" if key.endswith("_s") else f"{value:.2f}x"


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value else "-"


def _scores(row: Row, mix: dict[str, str]) -> str:
    if not row.scores:
        return "-"
    parts = []
    for variant in ("correct", "wrong"):
        values = sorted({round(row.scores[s], 2) for s in mix if mix[s] == variant and s in row.scores})
        if values:
            parts.append(f"{variant} {'/'.join(f'{v:g}' for v in values)}")
    return ", ".join(parts)


def markdown(bench: Bench) -> str:
    import time_goes

    m, lines = bench.machine, []
    add = lines.append
    add("# Grading throughput of `04_mnist_sgd`")
    add("")
    add(f"Measured {bench.date} with `bench/grading_throughput.py`" + (" in smoke mode (N=2, tiny training; the figures"
        " prove the script runs, they are not a measurement)." if bench.smoke else "."))
    add("")
    add("## Machine")
    add("")
    add(f"- CPU: {m['cpu_model']}; {m['logical_cores']} logical cores ({m['physical_cores']} physical), {m['usable_cores']} usable by"
        f" this process, cgroup CPU quota: {m['cgroup_cpu_quota']}")
    add(f"- memory: {m['memory_gib']} GiB ({m['memory_available_gib']} GiB available at the start)")
    add(f"- load average at the start (1, 5, 15 min): {', '.join(map(str, m['load_average']))}")
    add(f"- {m['os']}, Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    add(f"- commit: {m['commit']}")
    add("")
    if m["load_average"][0] > 0.5 * m["usable_cores"]:
        add(f"**The machine was not idle at the start**: the 1-minute load average was {m['load_average'][0]:.1f} on"
            f" {m['usable_cores']} cores, so the first rows' wall times may be inflated; see the load column below (the"
            " parallel rows load every core themselves, so a load near the core count after them is their own).")
        add("")
    add("## Command")
    add("")
    add("```bash")
    add(bench.command)
    add("```")
    add("")
    add(f"Each row ran in its own fresh scratch course under a temporary folder (`$WORK` below), one row after the other;"
        f" cell timeout {bench.cell_timeout} s everywhere. The nbgrader and autograder rows start from a course whose"
        " gradebook knows the assignment (`generate_assignment`, outside the timing), as after its release.")
    add("")
    for key in ROW_ORDER:
        if key in bench.rows:
            add(f"- {ROW_LABELS[key]}: `{bench.rows[key].command}`")
    add("")
    add("## Submissions")
    add("")
    counts = {v: sum(1 for x in bench.mix.values() if x == v) for v in ("correct", "wrong")}
    add(f"N = {bench.n} submissions of `04_mnist_sgd`: {counts['correct']} correct (every blank as the source notebook solves it,"
        f" 20/20) and {counts['wrong']} wrong (the demo's `grace`: `BasicOptim.zero_grad` clears one gradient, `train_epoch`"
        " steps once per epoch, `train_model` returns only the last accuracy; the other blanks solved), alternating.")
    add("")
    add("## Grading")
    add("")
    add("| row | wall s | s/submission (wall / N) | median s per submission | submissions/min | CPU s per submission | peak MiB per worker | peak MiB in all | scores | load before -> after |")
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for key in ROW_ORDER:
        row = bench.rows.get(key)
        if row is None:
            continue
        add(f"| {row.label} | {row.wall:.1f} | {row.per_submission:.1f} | {row.median:.1f} | {row.throughput:.2f} | {row.cpu_per_submission:.1f} | {_mb(row.peak_worker_mb)} |"
            f" {_mb(row.peak_total_mb)} | {_scores(row, bench.mix)} | {row.load[0]:.1f} -> {row.load[1]:.1f} |")
    add("")
    add("Median per submission: " + "; ".join(f"{ROW_LABELS[k]}: {LATENCY_MEANING[k]}" for k in ROW_ORDER if k in bench.rows) + ".")
    add("CPU s: user + system seconds of every process the row ran (grading processes, kernels, checkers, fork servers, and any other they start), divided by N.")
    add("Peak MiB per worker: the largest resident memory of one grading process tree (the grading process and its kernel,"
        " also when the kernel was forked from the batch's fork server; for bare execution, the nbclient process and its kernel),"
        " sampled every 0.2 s; shared libraries and pages shared with the fork server count in every process, as in `--memory-limit`.")
    if "nbgrader" in bench.rows:
        for peers, who, tolerance in (([k for k in ROW_ORDER if k.startswith("j") and k in bench.rows], "`autograder grade`", 1e-6),
                                      (["otter"] if "otter" in bench.rows else [], "otter run (its tests converted from the test cells;"
                                       " otter rounds each test's score to 5 decimals)", 1e-4)):
            if peers:
                same = all(abs(bench.rows["nbgrader"].scores.get(s, -1) - bench.rows[k].scores.get(s, -2)) < tolerance
                           for k in peers for s in bench.mix)
                add(f"Scores of {who} equal those of `nbgrader autograde` for every student: {'yes' if same else 'NO'}.")
    if "bare" in bench.rows and bench.rows["bare"].startup:
        bare = bench.rows["bare"]
        add(f"Bare execution: each kernel's math threads capped at {serial_threads()} (as `-j 1` caps them); kernel start and imports took"
            f" {statistics.median(bare.startup):.1f} s per notebook (median), which `autograder grade` pays once per batch in its fork"
            f" server: counted once, the bare row's wall is {bare_wall_imports_once(bare):.1f} s.")
    statuses = {k: r.statuses for k, r in bench.rows.items() if r.statuses}
    if statuses:
        add("Statuses: " + "; ".join(f"{k}: " + ", ".join(f"{n} {s}" for s, n in v.items()) for k, v in statuses.items()) + ".")
    add("")
    add("## Ratios")
    add("")
    r = ratios(bench)
    names = {
        "j2_all_vs_nbgrader_throughput": "`-j 2`, every cell run, vs serial nbgrader (throughput; the same cells)",
        "j2_all_vs_otter_throughput": "`-j 2`, every cell run, vs otter run (throughput; the same cells)",
        "j1_all_vs_bare_wall": "`-j 1`, every cell run, vs bare execution (wall time; bare pays each kernel's start and imports)",
        "j1_all_vs_bare_imports_once_wall": "`-j 1`, every cell run, vs bare execution with its kernel start and imports counted once (wall time)",
        "j1_all_vs_bare_median": "`-j 1`, every cell run, vs bare execution (median per submission)",
        "nbgrader_vs_bare_wall": "serial nbgrader vs bare execution (wall time)",
        "otter_vs_bare_wall": "otter run vs bare execution (wall time)",
        "j2_vs_j2_all_throughput": "what leaving out the cells after the last graded cell gives: `-j 2` vs `-j 2` with every cell run (throughput)",
        "j2_vs_j1_throughput": "`-j 2` vs `-j 1` (throughput)",
        "sandbox_cost_j1_median_s": "what the namespace sandbox costs per submission at `-j 1`: median of `-j 1` minus median of"
                                    " `-j 1 --unsafe-no-sandbox` (seconds)",
        "j2_vs_j2_unsafe_throughput": "`-j 2` vs `-j 2 --unsafe-no-sandbox` (throughput): below 1 by what the sandbox costs",
        "fastbook_vs_reference_training": "fastbook loop vs reference loop (seconds to the same accuracy)",
        "dask_vs_local_wall": "`--executor dask` vs `--executor local -j 2` (wall time)",
    }
    add("| ratio | value |")
    add("| --- | ---: |")
    for key, name in names.items():
        if key in r:
            add(f"| {name} | {ratio_text(key, r[key])} |")
    add("")
    add("## Reference training vs the fastbook loop")
    add("")
    t = bench.training
    if t is None:
        add("Not run.")
    else:
        add(f"`linear1` on the real sample, CPU with {t.threads} torch thread(s), lr {t.lr:g}, batch {t.batch_size}, {t.epochs} epochs,"
            f" the same start (seed 42), median of {t.repeats} run(s) after a warm-up epoch of each. Target: the lower of the two final validation accuracies, {t.target:.4f}.")
        add("")
        add("| loop | epochs to the target | seconds to the target | final accuracy | seconds for all epochs |")
        add("| --- | ---: | ---: | ---: | ---: |")
        add(f"| reference (`TensorBatches`, `autograder.reference`) | {t.reference_epochs} | {t.reference_seconds:.2f} | {t.reference_accuracy:.4f} | {t.reference_total:.2f} |")
        add(f"| fastbook (`DataLoader(list(zip(x, y)), batch_size=256)`) | {t.fastbook_epochs} | {t.fastbook_seconds:.2f} | {t.fastbook_accuracy:.4f} | {t.fastbook_total:.2f} |")
        add("")
        add(f"The fastbook loop takes {t.ratio:.1f}x the reference's time to the same accuracy. The timed reference loop gives"
            f" the same accuracies as `train_linear1`: {'yes' if t.matches_train_linear1 else 'NO'}. Both loops use the reference's"
            " model, loss, step and size-weighted metric; only the batching differs (the shuffle orders differ, hence slightly"
            " different accuracies).")
    add("")
    add("## Bars")
    add("")
    add("| bar | measured | bar | verdict |")
    add("| --- | ---: | ---: | --- |")
    for bar in bars(bench):
        add(f"| {bar.name} | {bar.measured} | {bar.bar} | {bar.verdict} |")
    add("")
    add("## 200 submissions")
    add("")
    lines.extend(time_goes.two_hundred(bench, bench.figures()))
    add("")
    add("## Dask executor")
    add("")
    note = bench.notes.get("dask", "not run")
    sizing = dask_sizing(bench)
    if sizing is None:
        add(f"Not measured: {note}.")
    else:
        ratio = r.get("dask_vs_local_wall")
        add(f"Cluster: `{note}`. `--executor dask` took {bench.rows['dask'].wall:.1f} s, `--executor local -j 2`"
            f" {bench.rows['local_j2'].wall:.1f} s: {ratio:.2f}x (bar <= {BARS['dask_vs_local']:g}x).")
        add(f"Sizing: {bench.rows['dask'].wall:.1f} s x 2 workers / {bench.n} submissions = {sizing['worker_seconds_per_submission']:.1f}"
            f" worker-seconds per submission; {DASK_COURSE:,} submissions in {DASK_MINUTES} minutes need"
            f" ceil({DASK_COURSE:,} x {sizing['worker_seconds_per_submission']:.1f} / {DASK_MINUTES * 60}) = **{sizing['workers']} workers**"
            " of this kind (one submission at a time each, the same cores per worker as here), assuming the scheduler and the"
            " single gradebook writer keep up.")
    add("")
    lines.extend(time_goes.section(bench, bench.figures()))
    add("")
    return "\n".join(lines)


def print_tables(bench: Bench) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Grading {bench.n} submissions of {ASSIGNMENT}")
    for column in ("row", "wall s", "s/sub (wall/N)", "median s/sub", "subs/min", "CPU s/sub", "peak MiB/worker", "scores"):
        table.add_column(column, justify="left" if column in ("row", "scores") else "right")
    for key in ROW_ORDER:
        if key in bench.rows:
            row = bench.rows[key]
            table.add_row(row.label, f"{row.wall:.1f}", f"{row.per_submission:.1f}", f"{row.median:.1f}", f"{row.throughput:.2f}",
                          f"{row.cpu_per_submission:.1f}", _mb(row.peak_worker_mb), _scores(row, bench.mix))
    console.print(table)
    if bench.training:
        t = bench.training
        table = Table(title=f"linear1 to accuracy {t.target:.4f} ({t.epochs} epochs, lr {t.lr:g}, batch {t.batch_size})")
        for column in ("loop", "epochs", "seconds to target", "final accuracy"):
            table.add_column(column)
        table.add_row("reference", str(t.reference_epochs), f"{t.reference_seconds:.2f}", f"{t.reference_accuracy:.4f}")
        table.add_row("fastbook DataLoader", str(t.fastbook_epochs), f"{t.fastbook_seconds:.2f}", f"{t.fastbook_accuracy:.4f}")
        console.print(table)
    table = Table(title="Bars")
    for column in ("bar", "measured", "bar", "verdict"):
        table.add_column(column)
    for bar in bars(bench):
        style = {"PASS": "green", "MISS": "red"}.get(bar.verdict, "yellow")
        table.add_row(bar.name, bar.measured, bar.bar, f"[{style}]{bar.verdict}[/]")
    console.print(table)
    r = ratios(bench)
    console.print("ratios: " + ", ".join(f"{k} {ratio_text(k, v)}" for k, v in r.items()))
    if "dask" in bench.notes and "dask" not in bench.rows:
        console.print(f"dask row {bench.notes['dask']}")


# ----------------------------------------------------------------------------------------------- main


ALL_ROWS = ("training", "j1", "lesson", "j2", "bare", "j1_all", "nbgrader", "j2_all", "otter", "j2_200", "profile", "j1_unsafe",
            "j2_unsafe", "dask")
"""The rows in the order they run. The two sides of each ratio a bar reads run one right after the other (see
``PAIRED_ROWS``): this machine's speed drifts over tens of minutes."""
PAIRED_ROWS = (("lesson", "j2"), ("bare", "j1_all"), ("nbgrader", "j2_all"), ("j2_all", "otter"))
"""Rows compared with each other, each pair adjacent in ``ALL_ROWS``: the CPU bar (the lesson's graded part and
the hidden checks against ``-j 2``), the ``-j 1`` overhead bar (bare execution against ``-j 1`` with every cell),
and the every-cell throughput against each peer."""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="submissions to build and grade (default 20; 2 with --smoke)")
    parser.add_argument("--out", type=Path, default=None,
                        help="Markdown report (default bench/RESULTS.md; with --smoke, a temporary file)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="N=2, 3 training epochs, 1 repeat: proves the script runs, measures nothing")
    parser.add_argument("--data", default=os.environ.get("MNIST_SAMPLE_ARCHIVE"),
                        help="MNIST sample archive or folder [env: MNIST_SAMPLE_ARCHIVE]; without it, the provisioned sample of FASTAI_HOME")
    parser.add_argument("--course", type=Path, default=REPO_ROOT, help="the course folder (default: this repository)")
    parser.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell, for every row (default 300, as grading)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of the loop comparison (default 20; 3 with --smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each training loop (default 3; 1 with --smoke)")
    parser.add_argument("--train-threads", type=int, default=1,
                        help="torch threads of the training comparison (default 1, what each kernel gets at -j 2 on 2 cores)")
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help=f"comma-separated subset of {','.join(ALL_ROWS)} (default: all)")
    parser.add_argument("--from-json", type=Path, default=None, help="measure nothing: write the report of a run saved with --json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, courses) and print its path")
    parser.add_argument("--n-200", type=int, default=None, dest="n_200",
                        help="submissions of the j2_200 row (default 200, what its bar needs; 3 with --smoke)")
    parser.add_argument("--otter", default=None,
                        help="otter-grader 7's `otter` executable, in an environment of its own (default: `otter` on PATH); the otter row"
                             " is skipped with a note without it")
    parser.add_argument("--py-spy", default=None, dest="py_spy",
                        help="the py-spy executable for the profile row (default: `py-spy` on PATH); skipped with a note without it")
    args = parser.parse_args(argv)
    args.n_200 = args.n_200 if args.n_200 is not None else (3 if args.smoke else 200)
    args.n = args.n if args.n is not None else (2 if args.smoke else 20)
    args.epochs = args.epochs if args.epochs is not None else (3 if args.smoke else 20)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.smoke else 3)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(args.rows) - set(ALL_ROWS))
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ALL_ROWS)}")
    if min(args.n, args.epochs, args.repeats, args.n_200) < 1:
        parser.error("--n, --n-200, --epochs and --repeats must be at least 1")
    return args


def _optional(bench: Bench, key: str, given: str | None, name: str, step) -> None:
    """Run ``step(executable)`` when ``given`` (or ``name`` on PATH) is an executable; otherwise note why not."""
    found = shutil.which(given or name)
    if found is None:
        bench.notes[key] = f"skipped: no `{name}` executable (give --{name} PATH)"
        print(f"   {key}: {bench.notes[key]}", flush=True)
        return
    step(Path(found).absolute())


def _profile(bench: Bench, ctx: Context, py_spy: Path) -> None:
    bench.profile_n = min(PROFILE_N, len(ctx.mix))
    bench.profile = run_profile(ctx, py_spy, bench.profile_n)


def run_big(course_root: Path, work: Path, n: int, cell_timeout: int) -> Row:
    """``autograder grade -j 2`` of ``n`` submissions of their own (the mix alternates as for the other rows)."""
    mix = mix_of(n)
    submissions = write_submissions(course_root, mix, work / "submissions_200")
    return run_autograder(Context(course_root, work, submissions, mix, cell_timeout), "j2_200", ["-j", "2"])


def run(args: argparse.Namespace, argv: list[str]) -> Bench:
    invoked = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0].endswith(".py") else "bench/grading_throughput.py"
    shown = argv if args.data is None or "--data" in argv else [*argv, "--data", str(args.data)]
    command = shlex.join(["python", invoked, *shown])
    work = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
    machine = machine_info()
    mix = mix_of(args.n)
    bench = Bench(args.n, args.smoke, mix, args.cell_timeout, command, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  machine, str(work))
    try:
        print(f"work folder: {work}", flush=True)
        folder = provision(args.data, work)
        os.environ["PATH"] = env_with_venv()["PATH"]
        warm_up(folder)
        submissions = write_submissions(args.course, mix, work / "submissions")
        ctx = Context(args.course, work, submissions, mix, args.cell_timeout)
        steps = [
            ("training", lambda: setattr(bench, "training", run_training(folder, args.epochs, args.repeats, args.train_threads))),
            ("bare", lambda: bench.rows.__setitem__("bare", run_bare(ctx))),
            ("nbgrader", lambda: bench.rows.__setitem__("nbgrader", run_nbgrader(ctx))),
            ("j1", lambda: bench.rows.__setitem__("j1", run_autograder(ctx, "j1", ["-j", "1"]))),
            ("j2", lambda: bench.rows.__setitem__("j2", run_autograder(ctx, "j2", ["-j", "2"]))),
            ("j1_all", lambda: bench.rows.__setitem__("j1_all", run_autograder(ctx, "j1_all", ["-j", "1"], every_cell=True))),
            ("j2_all", lambda: bench.rows.__setitem__("j2_all", run_autograder(ctx, "j2_all", ["-j", "2"], every_cell=True))),
            ("j1_unsafe", lambda: bench.rows.__setitem__("j1_unsafe", run_autograder(ctx, "j1_unsafe", ["-j", "1", *UNSAFE]))),
            ("j2_unsafe", lambda: bench.rows.__setitem__("j2_unsafe", run_autograder(ctx, "j2_unsafe", ["-j", "2", *UNSAFE]))),
            ("lesson", lambda: setattr(bench, "lesson", run_lesson(args.cell_timeout, args.repeats))),
            ("otter", lambda: _optional(bench, "otter", args.otter, "otter", lambda path: bench.rows.__setitem__("otter", run_otter(ctx, path)))),
            ("j2_200", lambda: (setattr(bench, "lesson_200", run_lesson(args.cell_timeout, args.repeats, ("graded", "graded_checks"))),
                                bench.rows.__setitem__("j2_200", run_big(args.course, work, args.n_200, args.cell_timeout)))),
            ("profile", lambda: _optional(bench, "profile", args.py_spy, "py-spy", lambda path: _profile(bench, ctx, path))),
        ]
        steps.sort(key=lambda step: ALL_ROWS.index(step[0]))
        for key, step in steps:
            if key in args.rows:
                print(f"-- {key} ...", flush=True)
                start = time.perf_counter()
                step()
                print(f"   {key} done in {time.perf_counter() - start:.0f} s", flush=True)
        if "dask" in args.rows:
            print("-- dask ...", flush=True)
            rows, note = run_dask_rows(ctx)
            bench.rows.update(rows)
            bench.notes["dask"] = note
            print(f"   dask: {note}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return bench


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["execute-notebooks"]:
        parser = argparse.ArgumentParser(prog="grading_throughput.py execute-notebooks")
        parser.add_argument("--timeout", type=int, required=True)
        parser.add_argument("--threads", type=int, default=0)
        parser.add_argument("--json", type=Path, required=True)
        parser.add_argument("notebooks", type=Path, nargs="+")
        sub = parser.parse_args(argv[1:])
        execute_notebooks(sub.notebooks, sub.timeout, sub.json, sub.threads)
        return 0
    args = parse(argv)
    if args.from_json:
        bench = Bench.from_figures(json.loads(args.from_json.read_text()))
        print_tables(bench)
        out = args.out or REPO_ROOT / "bench" / "RESULTS.md"
        out.write_text(markdown(bench))
        print(f"report: {out}")
        return 0
    if args.out is None:
        args.out = Path(tempfile.mkstemp(prefix="grading-throughput-smoke-", suffix=".md")[1]) if args.smoke else REPO_ROOT / "bench" / "RESULTS.md"
    bench = run(args, argv)
    print_tables(bench)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(bench))
    print(f"report: {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(bench.figures(), indent=1, default=str))
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
