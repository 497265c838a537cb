"""The process that grades one submission: ``nbgrader autograde`` in a scratch course, up to the executed notebook,
its sanitize and execution steps in one pass (``nbgrader_ext.GradingAutograde``).

Run as ``python -m autograder.grading.nbgrader_worker COURSE ASSIGNMENT STUDENT CELL_TIMEOUT MAX_OUTPUT_BYTES``. It writes
``COURSE/worker_result.json`` with nbgrader's success flag and log; the executed notebook is in
``COURSE/autograded/STUDENT/ASSIGNMENT/``.

Run as ``python -m autograder.grading.nbgrader_worker --ready`` (in a sandbox's environment), it imports
nbgrader and starts the sandbox's kernel at once, then waits for one job on its standard input: a JSON line
with the arguments above (``course``, ``assignment``, ``student``, ``cell_timeout``, ``max_output_bytes``).
The notebook then runs in the kernel that booted while the previous submission was being graded. An empty
standard input (the grader closed it: no more submissions) ends the process and its kernel.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

RESULT_NAME = "worker_result.json"
READY_FLAG = "--ready"
JOB_FIELDS = ("course", "assignment", "student", "cell_timeout", "max_output_bytes")
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"
"""The argument nbclient gives the kernels it starts (no history database); a kernel started ahead gets it too."""
KERNEL_IPC_ENV = "AUTOGRADER_KERNEL_IPC"
"""Where the kernel's ZMQ sockets are made (``ipc`` transport, Unix sockets named ``<this>-<port>``): a kernel in a
network namespace of its own has a loopback of its own, so TCP on 127.0.0.1 would not reach it; a Unix socket
in a folder bound into its sandbox does."""


def kernel_transport() -> dict[str, str]:
    """The kernel manager's ``transport`` and ``ip``: Unix sockets under ``$AUTOGRADER_KERNEL_IPC`` when set, else TCP."""
    path = os.environ.get(KERNEL_IPC_ENV)
    return {"transport": "ipc", "ip": path} if path else {}


AUTOGRADE_PREPROCESSORS = [
    "autograder.nbgrader_ext.GradingExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
]
"""nbgrader's own list up to the executed notebook, with ``Execute`` replaced by ``GradingExecute`` (a cap on the
notebook's output; no cell after the last graded one). nbgrader's last three steps, ``SaveAutoGrades``,
``AssignLatePenalties`` and ``CheckCellMetadata``, only read the notebook and write the gradebook: the
coordinator runs them on the course's gradebook when it records the notebook (``record.RECORD_CONFIG``), so
here they would only fill the scratch course's gradebook, which nothing reads."""


def main(course: Path, assignment: str, student: str, cell_timeout: int, max_output_bytes: int, kernel: Any = None) -> int:
    """Autograde one submission; ``kernel``, a kernel manager whose kernel is already started, runs its notebook."""
    warnings.filterwarnings("ignore")
    from autograder.nbgrader_api import VALIDATE_ONCE, autograde_with, in_course, make_api
    from autograder.nbgrader_ext import GradingAutograde, GradingExecute

    GradingExecute.prestarted = kernel
    try:
        with in_course(course):
            api = make_api(course, {
                # "immediate": the kernel of a finished notebook is killed, not asked to exit (seconds per kernel)
                "Execute": {"timeout": cell_timeout, "interrupt_on_timeout": True, "shutdown_kernel": "immediate"},
                "GradingExecute": {"max_output_bytes": max_output_bytes},
                "Autograde": {"autograde_preprocessors": AUTOGRADE_PREPROCESSORS},
                "KernelManager": kernel_transport(),
                **VALIDATE_ONCE,
            })
            result = autograde_with(api, GradingAutograde, assignment, student)
    finally:
        GradingExecute.prestarted = None
        _shut_down(kernel)
    (course / RESULT_NAME).write_text(json.dumps({
        "success": bool(result.get("success")),
        "error": str(result.get("error") or ""),
        "log": str(result.get("log") or "")[-20000:],
    }))
    return 0


def warm_up() -> None:
    """Pay once, in the batch's trusted fork server, what each forked worker would pay again for its first
    notebook: nbformat's compiled schema validators, nbgrader's cell metadata validator
    (``nbgrader_schema.metadata_validator``), the gradebook's SQLAlchemy mappers, the machine's
    network interfaces (jupyter_client's kernel ports) and the modules nbgrader and jupyter_client import
    only when first used (IPython, which locates the kernel specs; SQLite; psutil).

    All of it is the same for every submission: nothing here reads a course, an environment variable or a file
    of the submission's.
    """
    import IPython  # noqa: F401
    import nbformat
    import psutil  # noqa: F401
    import sqlite3  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401
    import sqlalchemy.orm
    from jupyter_client import localinterfaces
    from nbformat import v4
    from nbformat.validator import get_validator

    import nbgrader.api  # noqa: F401 - declares the gradebook's tables and mappers
    from autograder.nbgrader_schema import metadata_validator

    metadata_validator()

    for relax_add_props in (False, True):  # nbconvert validates after its preprocessors with relaxed properties
        get_validator(v4.nbformat, v4.nbformat_minor, relax_add_props=relax_add_props)
    nbformat.validate(v4.new_notebook(cells=[v4.new_markdown_cell("warm-up"), v4.new_code_cell("1", outputs=[
        v4.new_output("stream", name="stdout", text="1\n"), v4.new_output("execute_result", data={"text/plain": "1"}),
    ])]))
    sqlalchemy.orm.configure_mappers()
    localinterfaces.localhost()


def start_kernel() -> Any:
    """Start the ``python3`` kernel of this process's environment (the sandbox's kernel spec) without waiting
    for it; None when it cannot be started (the notebook then starts its own, as without ``--ready``)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    kernel = AsyncKernelManager(kernel_name="python3", **kernel_transport())
    try:
        run_sync(kernel.start_kernel)(extra_arguments=[HISTORY_IN_MEMORY])
    except Exception:  # noqa: BLE001 - a kernel that cannot start ahead is started again, and reported, by nbclient
        _shut_down(kernel)
        return None
    return kernel


def _shut_down(kernel: Any) -> None:
    if kernel is None:
        return
    from jupyter_core.utils import run_sync

    try:
        if kernel.has_kernel:
            run_sync(kernel.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - the grading worker kills whatever is left
        pass


def serve_ready() -> int:
    """``--ready``: import, start the kernel, then grade the one job read from standard input."""
    warnings.filterwarnings("ignore")
    import autograder.nbgrader_api  # noqa: F401 - nbgrader, nbconvert and jupyter_server, imported ahead

    kernel = start_kernel()
    line = sys.stdin.readline()
    if not line.strip():
        _shut_down(kernel)
        return 0
    job = json.loads(line)
    if not isinstance(job, dict) or set(job) != set(JOB_FIELDS):
        _shut_down(kernel)
        raise SystemExit(f"malformed job: {line[:200]!r}")
    return main(Path(job["course"]), job["assignment"], job["student"], int(job["cell_timeout"]), int(job["max_output_bytes"]), kernel)


if __name__ == "__main__":
    if sys.argv[1:] == [READY_FLAG]:
        sys.exit(serve_ready())
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
