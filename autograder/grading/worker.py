"""Execute one submission with nbgrader in a scratch course, sandboxed, under limits, watched from outside.

The scratch course holds only the configuration, a gradebook that knows the assignment (no other
student), and the one submission. The notebook's kernel runs in the sandbox of ``sandbox/``: its own
folder, a scrubbed environment, an unprivileged user when grading runs as root, and an audit hook;
the hidden checks run in a separate trusted checker process that reaches the student's functions only
through a data-only channel, and the test cells' outputs are rebuilt from the checker's reports before
scoring. The processes are watched: past the memory, CPU, wall-clock, process or disk limit, they are
killed and the submission gets a status saying which limit it crossed.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

import nbformat
import psutil

from autograder.course import CONFIG_NAME, notebook as course_notebook, scratch_course
from autograder.grading.nbgrader_worker import RESULT_NAME
from autograder.grading.results import Status
from autograder.grading.sandbox import layout
from autograder.grading.sandbox.lifetime import die_with_parent
from autograder.grading.sandbox.trusted_outputs import apply_reports, blank_of
from autograder.grading.trusted_forks import ForkedProcess, TrustedForks
from autograder.nbgrader_api import generate_assignment

if TYPE_CHECKING:
    from autograder.grading.warm import WarmStarts

POLL_SECONDS = 0.2
LATER_SECONDS = 5.0
"""When a submission's watcher starts the spare for the next one: once this submission's kernel has booted."""
DISK_POLL_EVERY = 5
TREE_POLL_EVERY = 5
"""Every how many polls the watched process trees are listed again (a listing reads every process's
``/proc`` entry); in between, the memory and CPU of the processes last listed are read."""
OUTPUT_MARKERS = ("OutputLimitExceeded",)
TIMEOUT_MARKERS = ("CellTimeoutError", "TimeoutError", "Cell execution timed out", "UnresponsiveKernel")
DEAD_KERNEL_MARKERS = ("DeadKernelError", "Kernel died", "kernel died")
OUT_OF_MEMORY_MARKERS = ("can't allocate memory", "Cannot allocate memory")


@dataclass(frozen=True)
class Limits:
    """Per-submission limits.

    Attributes:
        cell_timeout: seconds one cell may run (nbgrader's ``Execute.timeout``); the cell then scores 0.
        cpu_seconds: CPU seconds for the whole submission (grader process and kernel together).
        memory_mb: resident memory of the whole process tree, in MiB.
        wall_seconds: wall-clock seconds for the whole submission.
        threads: CPU threads the kernel's math libraries may use (``OMP_NUM_THREADS``); the pipeline sets
            cores // jobs so that parallel kernels do not fight over the cores.
        output_mb: MiB the notebook may print, and MiB of files it may write in its folder.
        processes: processes the submission may run at once (kernel, grading and checker processes included).
        isolate: run each kernel in a namespace sandbox of its own (``layout.build_sandbox``); False only with
            ``--unsafe-no-sandbox``.
    """

    cell_timeout: int = 300
    cpu_seconds: int = 900
    memory_mb: int = 6144
    wall_seconds: int = 1800
    threads: int = 0
    output_mb: int = 64
    processes: int = 64
    isolate: bool = True

    @property
    def memory_backstop_bytes(self) -> int:
        """Writable memory each kernel process may map (RLIMIT_DATA, set by the operating system): half again
        ``memory_mb``. The watcher reports a process tree over ``memory_mb``; this stops a single process that
        outruns the watcher, with a MemoryError in its cell."""
        return self.memory_mb * 2**20 * 3 // 2


@dataclass(frozen=True)
class Execution:
    """What running one submission produced.

    Attributes:
        status: GRADED, or the limit or failure that stopped it.
        reason: a sentence for the instructor and the student when not plainly graded.
        notebook: the executed notebook (nbgrader's ``autograded`` copy), None when execution failed.
        seconds, cpu_seconds, peak_memory_mb: what the submission used.
        folder: where the submission was run when that is not the work folder it was given (a spare's, see
            ``warm.py``); whoever removes the work folder removes this one too, once the notebook is read.
    """

    status: Status
    reason: str
    notebook: Path | None
    seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    folder: Path | None = None


TEMPLATE_CACHE = Path("grading") / ".cache"
"""Where built gradebook templates are kept, relative to the course, one per assignment and inputs."""


def _template_key(course_root: Path, assignment: str) -> str:
    """A digest of what the template depends on: the assignment's source files, the configuration, nbgrader."""
    import nbgrader

    digest = hashlib.sha256(nbgrader.__version__.encode())
    digest.update((course_root / CONFIG_NAME).read_bytes())
    folder = course_root / "source" / assignment
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_template(course_root: Path, assignment: str, into: Path) -> Path:
    """A gradebook that knows ``assignment`` (and no student), built from the course's ``source/``.

    Building one runs ``nbgrader generate_assignment`` in a scratch course (seconds, most of it nbgrader's
    database migrations); the result is kept in ``grading/.cache/`` under a digest of the assignment's
    source files, the configuration and nbgrader's version, and reused while they stay the same.

    Returns:
        The path of that ``gradebook.db`` in ``into``, to be copied into every scratch course.
    """
    template = into / "gradebook.db"
    into.mkdir(parents=True, exist_ok=True)
    cache = course_root / TEMPLATE_CACHE
    cached = cache / f"{assignment}-{_template_key(course_root, assignment)}.db"
    if cached.is_file():
        shutil.copy2(cached, template)
        return template
    course = scratch_course(course_root, into / "template-course")
    generate_assignment(course, assignment)
    shutil.copy2(course / "gradebook.db", template)
    shutil.rmtree(course)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for stale in [*cache.glob(f"{assignment}-*.db"), *cache.glob(f".{assignment}-*.partial")]:
            stale.unlink()
        staged = cache / f".{cached.name}.{os.getpid()}.partial"
        shutil.copy2(template, staged)
        os.replace(staged, cached)
    except OSError:
        pass  # the cache only saves time
    return template


def _scratch(template_db: Path, course_root: Path, assignment: str, student: str, submitted: Path, into: Path) -> Path:
    course = into / "course"
    (course / "source" / assignment).mkdir(parents=True)
    course.chmod(0o700)
    shutil.copy2(course_root / CONFIG_NAME, course / CONFIG_NAME)
    shutil.copy2(template_db, course / "gradebook.db")
    target = course / "submitted" / student / assignment
    shutil.copytree(submitted, target)
    return course


def _child_setup(cpu_seconds: int | None = None):
    """What a grading child runs between fork and exec: die with this process, and cap its CPU time.

    The children run in sessions of their own (so that a whole session can be killed), which a SIGKILL
    of the grader's process group does not reach; the parent-death signal ends them when the thread
    that started them ends, however it ends.
    """
    parent = os.getpid()

    def apply() -> None:
        die_with_parent(parent)
        if cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))

    return apply


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _usage(processes: list[psutil.Process]) -> tuple[float, float]:
    memory, cpu = 0.0, 0.0
    for proc in processes:
        try:
            memory += proc.memory_info().rss
            times = proc.cpu_times()
            cpu += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return memory / 2**20, cpu


def _kill(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    psutil.wait_procs(processes, timeout=5)


def _classify(course: Path, assignment: str, student: str, limits: Limits) -> tuple[Status, str, Path | None]:
    result_file = course / RESULT_NAME
    if not result_file.exists():
        return Status.GRADER_ERROR, "the grading process ended without a result", None
    result = json.loads(result_file.read_text())
    executed = sorted((course / "autograded" / student / assignment).glob("*.ipynb"))
    text = result.get("log", "") + result.get("error", "")
    if not result["success"] or not executed:
        if any(marker in text for marker in DEAD_KERNEL_MARKERS):
            return Status.KERNEL_DIED, "the notebook's kernel died during execution (sys.exit, os._exit or a crash?)", None
        if any(marker in text for marker in OUTPUT_MARKERS):
            return Status.OUTPUT_LIMIT, "the notebook printed more output than allowed", None
        if "UnresponsiveKernel" in text:
            return Status.TIMEOUT, "a cell ran past the time limit and the kernel could not be interrupted", None
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no log"]
        return Status.GRADER_ERROR, f"nbgrader autograde failed: {last[0][:200]}", None
    notebook = executed[0]
    timed_out = _cells_with_error(notebook, lambda output: any(m in output.get("ename", "") for m in TIMEOUT_MARKERS))
    if timed_out:
        return Status.TIMEOUT, f"cell(s) {', '.join(timed_out)} ran past the per-cell time limit and score 0", notebook
    out_of_memory = _cells_with_error(notebook, _out_of_memory)
    if out_of_memory:  # refused by the operating system's per-process limit, before the watcher saw it: as the watcher's verdict
        return Status.MEMORY_LIMIT, (f"cell(s) {', '.join(out_of_memory)} asked for more memory than a process may map "
                                     f"({limits.memory_backstop_bytes // 2**20} MiB; the limit is {limits.memory_mb} MiB)"), None
    return Status.GRADED, "", notebook


def _out_of_memory(output: dict) -> bool:
    """An error a refused allocation raises: Python's ``MemoryError``, or torch's allocator's ``RuntimeError``."""
    return output.get("ename") == "MemoryError" or any(m in output.get("evalue", "") for m in OUT_OF_MEMORY_MARKERS)


def _cells_with_error(notebook: Path, matches: Callable[[dict], bool]) -> list[str]:
    """The cells of ``notebook``, in words, with an error output that ``matches``."""
    nb = nbformat.read(notebook, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and matches(output):
                found.append(cell_in_words(nb, index))
                break
    return found


def ordinal(number: int) -> str:
    """``1`` -> ``"1st"``, ``2`` -> ``"2nd"``, ``11`` -> ``"11th"``, ``23`` -> ``"23rd"``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def cell_in_words(nb: nbformat.NotebookNode, index: int) -> str:
    """Name cell ``index`` for a student: its nbgrader id (``test_sigmoid``), else where it stands ("the 3rd code
    cell after test_sigmoid", or "the 2nd code cell of the notebook" before any tracked cell)."""
    grade_id = nb.cells[index].metadata.get("nbgrader", {}).get("grade_id")
    if grade_id:
        return grade_id
    count = 0
    for before in range(index, -1, -1):
        cell = nb.cells[before]
        named = cell.metadata.get("nbgrader", {}).get("grade_id") if before < index else None
        if named:
            return f"the {ordinal(count)} code cell after {named}"
        count += cell.cell_type == "code"
    return f"the {ordinal(count)} code cell of the notebook"


def blank_points(course_root: Path, assignment: str) -> dict[str, float]:
    """Each blank's points, from the test cells of the released notebook."""
    nb = nbformat.read(course_notebook(course_root, "release", assignment), as_version=4)
    return {blank: float(cell.metadata["nbgrader"].get("points", 0)) for cell in nb.cells if (blank := blank_of(cell))}


def start_module(
    module: str, args: list[str], cwd: Path, env: dict[str, str], log: IO[bytes], stdin: int = subprocess.DEVNULL,
    cpu_seconds: int | None = None, forks: TrustedForks | None = None,
) -> subprocess.Popen | ForkedProcess:
    """``python -m module args`` in a session of its own, output to ``log``, dying with the calling thread.

    Forked from the batch's trusted fork server of ``module`` (``forks``) when there is one that answers, which
    spares the process its imports; else started as a new interpreter. Either answers like ``subprocess.Popen``.
    """
    if forks is not None and forks.module == module:
        forked = forks.spawn(args, cwd, env, log, stdin if stdin == subprocess.PIPE else None, cpu_seconds)
        if forked is not None:
            return forked
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=_child_setup(cpu_seconds), start_new_session=True,
    )


def checker_env(limits: Limits) -> dict[str, str]:
    """The checker's environment: this process's, with the kernels' number of math threads."""
    env = dict(os.environ)
    if limits.threads > 0:
        env.update({name: str(limits.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    return env


def _start_checker(sandbox: layout.Sandbox, limits: Limits, forks: TrustedForks | None = None) -> subprocess.Popen | ForkedProcess:
    with open(sandbox.private / "checker.log", "wb") as log:
        return start_module("autograder.grading.sandbox.checker", [str(sandbox.checker_config)], sandbox.private, checker_env(limits),
                            log, forks=forks)


def _checker_failure(sandbox: layout.Sandbox, checker: subprocess.Popen | ForkedProcess) -> str | None:
    """Why the checker is not serving, or None while it is (it serves until it is killed)."""
    if checker.poll() is None:
        return None
    log = (sandbox.private / "checker.log").read_text(errors="replace").strip()
    return f"the checker process ended (exit code {checker.returncode}) before the notebook was graded: {log[-300:] or 'no log'}"


def _kill_session(session_id: int) -> None:
    """Kill every process left in a session (a kernel's stray children cannot leave it: setsid is refused)."""
    stray = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == session_id:
                stray.append(proc)
        except (OSError, psutil.Error):
            continue
    _kill(stray)


def forked_kernel(sandbox: layout.Sandbox) -> psutil.Process | None:
    """The sandbox's kernel when the fork server started it (not a child of the grading process), else None.

    The server writes the pid file just after the fork: a process created later reuses the pid, and is not it.
    """
    try:
        kernel = psutil.Process(int(sandbox.kernel_pid.read_text()))
        if kernel.create_time() > sandbox.kernel_pid.stat().st_mtime + 1:
            return None
        return kernel
    except (OSError, ValueError, psutil.Error):
        return None


def kill_forked_kernel(sandbox: layout.Sandbox) -> None:
    """Kill the sandbox's forked kernel, if any, and whatever is left in its session and its namespace sandbox."""
    kernel = forked_kernel(sandbox)
    if kernel is not None:
        _kill(_tree(kernel))
        _kill_session(kernel.pid)
    if sandbox.holder is not None:
        sandbox.holder.close()


def _watch(
    processes: list[subprocess.Popen | ForkedProcess], sandbox: layout.Sandbox, limits: Limits, later: Callable[[], None] | None = None
) -> tuple[tuple[Status, str] | None, float, float]:
    """Poll until the first process ends, another one (the checker serves until killed) ends, or a limit is
    crossed; returns (verdict, cpu, peak memory). ``later`` is called once, ``LATER_SECONDS`` in."""
    watched = [psutil.Process(p.pid) for p in processes]
    start, polls = time.perf_counter(), 0
    peak_memory, cpu, verdict, forked, tree = 0.0, 0.0, None, None, []
    while processes[0].poll() is None:
        if later is not None and time.perf_counter() - start > LATER_SECONDS:
            later()
            later = None
        found = None if forked else forked_kernel(sandbox)
        forked = forked or found
        if found is not None or polls % TREE_POLL_EVERY == 0:
            tree = [proc for root in [*watched, *filter(None, [forked])] for proc in _tree(root)]
        memory, tree_cpu = _usage(tree)
        peak_memory, cpu = max(peak_memory, memory), max(cpu, tree_cpu)
        elapsed = time.perf_counter() - start
        polls += 1
        stopped_helper = next((p for p in processes[1:] if p.poll() is not None), None)
        if stopped_helper is not None:
            verdict = (Status.GRADER_ERROR, _checker_failure(sandbox, stopped_helper))
        elif memory > limits.memory_mb:
            verdict = (Status.MEMORY_LIMIT, f"used {memory:.0f} MiB of memory, over the limit of {limits.memory_mb} MiB")
        elif cpu > limits.cpu_seconds:
            verdict = (Status.CPU_LIMIT, f"used {cpu:.0f} s of CPU, over the limit of {limits.cpu_seconds} s")
        elif elapsed > limits.wall_seconds:
            verdict = (Status.TIMEOUT, f"ran {elapsed:.0f} s, over the limit of {limits.wall_seconds} s for a submission")
        elif len(tree) > limits.processes:
            verdict = (Status.SANDBOX_VIOLATION, f"ran {len(tree)} processes at once, over the limit of {limits.processes}")
        elif polls % DISK_POLL_EVERY == 0 and layout.disk_usage(sandbox.kernel) > limits.output_mb * 2**20:
            verdict = (Status.OUTPUT_LIMIT, f"wrote more than {limits.output_mb} MiB of files")
        if verdict:
            break
        time.sleep(POLL_SECONDS)
    return verdict, cpu, peak_memory


def execute_submission(
    course_root: Path, template_db: Path, assignment: str, student: str, submitted: Path, work: Path, limits: Limits,
    warm: WarmStarts | None = None,
) -> Execution:
    """Run ``nbgrader autograde`` for one submission, sandboxed, in a scratch course under ``work``, watched.

    Args:
        course_root: the real course (only its configuration and released notebook are read).
        template_db: a gradebook from ``prepare_template``.
        submitted: the folder with the student's files for this assignment.
        work: an empty folder for this submission's scratch course and sandbox; the caller removes it.
        limits: the limits to enforce.
        warm: the batch's spares: the submission runs in one if one is ready (``Execution.folder`` is then
            where), and starts the spare of a later submission.

    Returns:
        An ``Execution`` whose notebook's test cells carry the trusted checker's results.
    """
    spare = warm.take() if warm is not None else None
    if spare is not None:
        course = _scratch(template_db, course_root, assignment, student, submitted, spare.work)
        if not spare.send(course, assignment, student, limits):
            spare.discard()
            spare = None
    if spare is None:
        course = _scratch(template_db, course_root, assignment, student, submitted, work)
        sandbox = layout.build_sandbox(
            work, course_root, blank_points(course_root, assignment), limits.threads, limits.output_mb * 2**20,
            warm.fork_socket if warm is not None else None, limits.isolate, limits.memory_backstop_bytes,
        )
    else:
        work, sandbox = spare.work, spare.sandbox
    arguments = [str(course), assignment, student, str(limits.cell_timeout), str(limits.output_mb * 2**20)]
    checkers, graders = (warm.checkers, warm.graders) if warm is not None else (None, None)
    start = time.perf_counter()
    # Both start at once: the checker imports torch and the checks while nbgrader imports itself and boots
    # the kernel, whose first check waits for the checker's socket (see kernel_boot's ``check``).
    checker = _start_checker(sandbox, limits, checkers)
    processes: list[subprocess.Popen | ForkedProcess] = [checker]
    verdict, cpu, peak_memory, grader, checker_failure, kernel_ending = None, 0.0, 0.0, None, None, None
    readied: list[bool] = []

    def ready_the_next() -> None:
        if warm is not None and not readied:
            readied.append(True)
            warm.refill()

    try:
        if spare is not None:
            grader = spare.grader
        else:
            with open(work / "worker.log", "wb") as log:
                grader = start_module("autograder.grading.nbgrader_worker", arguments, course, sandbox.env, log,
                                      cpu_seconds=limits.cpu_seconds, forks=graders)
        processes.insert(0, grader)
        verdict, cpu, peak_memory = _watch(processes, sandbox, limits, later=ready_the_next)
        checker_failure = _checker_failure(sandbox, checker)
        kernel_ending = layout.kernel_ending(sandbox)  # read before the kernel, if it runs still, is killed below
    finally:
        for process in processes:
            _kill(_tree(psutil.Process(process.pid))) if process.poll() is None else None
            _kill_session(process.pid)
            process.wait()
        kill_forked_kernel(sandbox)
        shutil.rmtree(sandbox.channel, ignore_errors=True)
        ready_the_next()  # a submission shorter than LATER_SECONDS readies the next one now
    seconds = time.perf_counter() - start
    execution = _outcome(verdict or checker_failure, grader, course, assignment, student, sandbox, limits, (seconds, cpu, peak_memory),
                         kernel_ending)
    return replace(execution, folder=work) if spare is not None else execution


def _outcome(
    failure: tuple[Status, str] | str | None, grader: subprocess.Popen | ForkedProcess, course: Path, assignment: str, student: str,
    sandbox: layout.Sandbox, limits: Limits, usage: tuple[float, float, float], kernel_ending: dict[str, int] | None = None,
) -> Execution:
    """The submission's status from how its processes ended (``kernel_ending``: the forked kernel's, when known),
    nbgrader's result and the sandbox's records."""
    seconds, cpu, peak_memory = usage
    if isinstance(failure, str):
        return Execution(Status.GRADER_ERROR, failure, None, seconds, cpu, peak_memory)
    verdict = failure
    if verdict:
        return Execution(verdict[0], verdict[1], None, seconds, cpu, peak_memory)
    if grader.returncode and grader.returncode < 0 and -grader.returncode == signal.SIGXCPU:
        return Execution(Status.CPU_LIMIT, f"over the CPU limit of {limits.cpu_seconds} s", None, seconds, cpu, peak_memory)
    status, reason, notebook = _classify(course, assignment, student, limits)
    if status == Status.KERNEL_DIED and kernel_ending is not None:
        reason = kernel_death(kernel_ending)
    bypassed = apply_reports(notebook, layout.reports(sandbox)) if notebook is not None else []
    refused = layout.violations(sandbox)
    if layout.OUTPUT_REFUSAL in refused and status in (Status.GRADED, Status.TESTS_MODIFIED, Status.GRADER_ERROR):
        return Execution(Status.OUTPUT_LIMIT, f"printed more than {limits.output_mb} MiB", notebook, seconds, cpu, peak_memory)
    if refused and status in (Status.GRADED, Status.TESTS_MODIFIED, Status.KERNEL_DIED, Status.GRADER_ERROR):
        status, reason = Status.SANDBOX_VIOLATION, "; ".join(filter(None, ["refused: " + "; ".join(refused[:3]), reason]))
    if bypassed and status in (Status.GRADED, Status.SANDBOX_VIOLATION):
        status, reason = Status.SANDBOX_VIOLATION, "; ".join(filter(None, [reason, _bypass_reason(bypassed)]))
    return Execution(status, reason, notebook, seconds, cpu, peak_memory)


def kernel_death(ending: dict[str, int]) -> str:
    """Why a kernel died, from how it ended (``layout.kernel_ending``), in words for the student and instructor."""
    if "signal" not in ending:
        return f"the notebook's kernel exited with code {ending['exit_code']} during execution (os._exit or a crash?)"
    number = ending["signal"]
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = str(number)
    if number == signal.SIGKILL:
        cause = "sent by the notebook itself, or by the operating system when the machine ran out of memory"
    elif number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        cause = "a crash in native code"
    else:
        cause = "sent by the notebook itself or by another program"
    return f"the notebook's kernel was killed by signal {name} during execution ({cause})"


def _bypass_reason(blanks: list[str]) -> str:
    return (
        f"the test cell of {', '.join(blanks)} ran to its end without asking the checker: the notebook replaced or "
        "bypassed the check function imported from autograder.checks"
    )
