"""What running one submission came to: its status and reason, read from how its processes ended, nbgrader's
result, the executed notebook and the sandbox's records."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.grading.limits import Limits
from autograder.grading.nbgrader_worker import RESULT_NAME
from autograder.grading.results import Status
from autograder.grading.sandbox import layout
from autograder.grading.sandbox.trusted_outputs import apply_reports
from autograder.nbgrader_cells import grade_id

OUTPUT_MARKERS = ("OutputLimitExceeded",)
TIMEOUT_MARKERS = ("CellTimeoutError", "TimeoutError", "Cell execution timed out", "UnresponsiveKernel")
DEAD_KERNEL_MARKERS = ("DeadKernelError", "Kernel died", "kernel died")
OUT_OF_MEMORY_MARKERS = ("can't allocate memory", "Cannot allocate memory")


@dataclass(frozen=True)
class Usage:
    """What a submission used: wall-clock seconds, CPU seconds, peak resident memory of its processes (MiB)."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_memory_mb: float = 0.0


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


@dataclass(frozen=True)
class Ending:
    """How a submission's processes ended.

    Attributes:
        failure: the watcher's verdict (a crossed limit), or why the checker stopped serving; None when neither.
        grader_code: the nbgrader process's exit code (negative: killed by that signal).
        kernel: how the forked kernel ended (``layout.kernel_ending``), when known.
    """

    failure: tuple[Status, str] | None
    grader_code: int | None
    kernel: dict[str, int] | None = None


def outcome(ending: Ending, course: Path, assignment: str, student: str, sandbox: layout.Sandbox, limits: Limits,
            usage: Usage) -> Execution:
    """The submission's ``Execution``: the notebook nbgrader executed in ``course``, its test cells carrying the
    checker's reports, and a status from how the processes ended and what the sandbox refused."""

    def executed(status: Status, reason: str, notebook: Path | None) -> Execution:
        return Execution(status, reason, notebook, usage.seconds, usage.cpu_seconds, usage.peak_memory_mb)

    if ending.failure:
        return executed(*ending.failure, None)
    if ending.grader_code and ending.grader_code < 0 and -ending.grader_code == signal.SIGXCPU:
        return executed(Status.CPU_LIMIT, f"over the CPU limit of {limits.cpu_seconds} s", None)
    status, reason, notebook = classify(course, assignment, student, limits)
    if status == Status.KERNEL_DIED and ending.kernel is not None:
        reason = kernel_death(ending.kernel)
    bypassed = apply_reports(notebook, layout.reports(sandbox)) if notebook is not None else []
    refused = layout.violations(sandbox)
    if layout.OUTPUT_REFUSAL in refused and status in (Status.GRADED, Status.TESTS_MODIFIED, Status.GRADER_ERROR):
        return executed(Status.OUTPUT_LIMIT, f"printed more than {limits.output_mb} MiB", notebook)
    if refused and status in (Status.GRADED, Status.TESTS_MODIFIED, Status.KERNEL_DIED, Status.GRADER_ERROR):
        status, reason = Status.SANDBOX_VIOLATION, "; ".join(filter(None, ["refused: " + "; ".join(refused[:3]), reason]))
    if bypassed and status in (Status.GRADED, Status.SANDBOX_VIOLATION):
        status, reason = Status.SANDBOX_VIOLATION, "; ".join(filter(None, [reason, _bypass_reason(bypassed)]))
    return executed(status, reason, notebook)


def classify(course: Path, assignment: str, student: str, limits: Limits) -> tuple[Status, str, Path | None]:
    """(status, reason, executed notebook) from nbgrader's result in ``course`` and the executed notebook's errors."""
    result_file = course / RESULT_NAME
    if not result_file.exists():
        return Status.GRADER_ERROR, "the grading process ended without a result", None
    result = json.loads(result_file.read_text())
    executed = sorted((course / "autograded" / student / assignment).glob("*.ipynb"))
    if not result["success"] or not executed:
        return (*_failed_run(result.get("log", "") + result.get("error", "")), None)
    notebook = executed[0]
    nb = nbformat.read(notebook, as_version=4)
    timed_out = cells_with_error(nb, lambda output: any(m in output.get("ename", "") for m in TIMEOUT_MARKERS))
    if timed_out:
        return Status.TIMEOUT, f"cell(s) {', '.join(timed_out)} ran past the per-cell time limit and score 0", notebook
    out_of_memory = cells_with_error(nb, _out_of_memory)
    if out_of_memory:  # refused by the operating system's per-process limit, before the watcher saw it: as the watcher's verdict
        return Status.MEMORY_LIMIT, (f"cell(s) {', '.join(out_of_memory)} asked for more memory than a process may map "
                                     f"({limits.memory_backstop_bytes // 2**20} MiB; the limit is {limits.memory_mb} MiB)"), None
    return Status.GRADED, "", notebook


def _failed_run(text: str) -> tuple[Status, str]:
    """Why ``nbgrader autograde`` failed, from its log and error ``text``."""
    if any(marker in text for marker in DEAD_KERNEL_MARKERS):
        return Status.KERNEL_DIED, "the notebook's kernel died during execution (sys.exit, os._exit or a crash?)"
    if any(marker in text for marker in OUTPUT_MARKERS):
        return Status.OUTPUT_LIMIT, "the notebook printed more output than allowed"
    if "UnresponsiveKernel" in text:
        return Status.TIMEOUT, "a cell ran past the time limit and the kernel could not be interrupted"
    last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no log"]
    return Status.GRADER_ERROR, f"nbgrader autograde failed: {last[0][:200]}"


def _out_of_memory(output: dict) -> bool:
    """An error a refused allocation raises: Python's ``MemoryError``, or torch's allocator's ``RuntimeError``."""
    return output.get("ename") == "MemoryError" or any(m in output.get("evalue", "") for m in OUT_OF_MEMORY_MARKERS)


def cells_with_error(nb: nbformat.NotebookNode, matches: Callable[[dict], bool]) -> list[str]:
    """The cells of ``nb``, in words, with an error output that ``matches``."""
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
    named = grade_id(nb.cells[index])
    if named:
        return named
    count = 0
    for before in range(index, -1, -1):
        cell = nb.cells[before]
        named = grade_id(cell) if before < index else None
        if named:
            return f"the {ordinal(count)} code cell after {named}"
        count += cell.cell_type == "code"
    return f"the {ordinal(count)} code cell of the notebook"


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
