"""What travels to a Dask worker and back: one submission's grading task, as plain data.

The task receives bytes only (the course's ``nbgrader_config.py``, ``release/<assignment>/``, the template
gradebook, the student's submitted files, the limits), rebuilds a small course in a temporary folder on the
worker, runs ``execute_submission`` there with the same limits as local grading, and returns plain data: the
status, reason, usage and the executed notebook as JSON text. No Python object of the student ever leaves the
worker.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any

from autograder.course import CONFIG_NAME
from autograder.grading import processes
from autograder.grading.limits import Limits
from autograder.grading.outcome import Execution
from autograder.grading.results import Status
from autograder.grading.submissions import Submission
from autograder.grading.worker import execute_submission


def _folder_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``: relative POSIX path -> bytes (links and special files left out)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _write_files(files: dict[str, bytes], into: Path) -> None:
    """Write ``files`` (from ``_folder_files``) under ``into``, refusing paths that would leave it."""
    for name, data in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"refusing to write {name!r} outside the work folder")
        target = into.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def course_payload(course_root: Path, template_db: Path, assignment: str) -> dict[str, Any]:
    """What every grading task of a batch needs from the course: its configuration, ``release/<assignment>/``
    and the template gradebook, as bytes (built once by the coordinator, shared by the batch's tasks)."""
    return {
        "assignment": assignment,
        "config": (course_root / CONFIG_NAME).read_bytes(),
        "release": _folder_files(course_root / "release" / assignment),
        "template": template_db.read_bytes(),
    }


def job_payload(course_root: Path, assignment: str, submission: Submission, limits: Limits) -> dict[str, Any]:
    """One submission's task input: the student's name, submitted files (bytes) and the limits."""
    submitted = course_root / "submitted" / submission.student / assignment
    return {"student": submission.student, "submitted": _folder_files(submitted), "limits": asdict(limits)}


def task_slots_by_host(workers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Task threads of all Dask workers per host, from ``Client.scheduler_info()["workers"]``.

    Several worker processes often share one machine (a ``LocalCluster``, ``dask-worker --nworkers``), and
    each task starts a kernel of its own: the cores of a host are shared among all its workers' task threads.
    """
    slots: dict[str, int] = {}
    for info in workers.values():
        host, threads = info.get("host"), info.get("nthreads")
        if isinstance(host, str) and isinstance(threads, int) and threads > 0:
            slots[host] = slots.get(host, 0) + threads
    return slots


def _worker_threads(slots_by_host: dict[str, int]) -> int:
    """The math-library threads for one kernel on this Dask worker: the host's cores / the task threads of
    every worker on the host (from ``task_slots_by_host``; this worker's own threads when its host is unknown)."""
    from dask.system import cpu_count

    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        worker = get_worker()
        slots = slots_by_host.get(get_address_host(worker.address)) or worker.state.nthreads
    except (ImportError, ValueError, AttributeError):
        slots = 1
    return max(1, cpu_count() // max(1, slots))


_WORKER_FOLDER: Path | None = None
_worker_folder_lock = threading.Lock()


def _worker_folder() -> Path:
    """This process's folder for grading tasks, under the temporary folder; made at its first task (which first
    removes the channel folders of dead graders), removed at exit.

    Holds each task's work folder and, beside them, what the sandbox stages once for all of them.
    """
    global _WORKER_FOLDER
    with _worker_folder_lock:
        if _WORKER_FOLDER is None or not _WORKER_FOLDER.is_dir():
            processes.remove_abandoned_channels()
            _WORKER_FOLDER = Path(tempfile.mkdtemp(prefix="autograder-worker-"))
            atexit.register(shutil.rmtree, _WORKER_FOLDER, ignore_errors=True)
        return _WORKER_FOLDER


def grade_on_worker(course: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: execute one submission on this worker and return plain data.

    Rebuilds a course holding only ``nbgrader_config.py`` and ``release/<assignment>/``, plus the student's
    ``submitted/`` folder, in a temporary folder; runs ``execute_submission`` under the shipped limits (a
    ``threads`` of 0 becomes the host's cores per task thread of all its workers, see ``_worker_threads``);
    removes the folder. The submission's work folder lies in this worker process's folder (``_worker_folder``),
    so the read-only data the kernels share (the MNIST sample, matplotlib's font cache) is staged once per
    worker, not once per task, as once per batch in local grading.

    Returns:
        ``status`` (a ``Status`` value), ``reason``, ``seconds``, ``cpu_seconds``, ``peak_memory_mb``,
        ``notebook_name`` and ``notebook`` (the executed notebook's JSON text; both None when execution
        failed): strings and numbers only.
    """
    assignment, student = course["assignment"], job["student"]
    limits = Limits(**job["limits"])
    if limits.threads == 0:
        limits = replace(limits, threads=_worker_threads(course.get("task_slots", {})))
    base = _worker_folder()
    with tempfile.TemporaryDirectory(prefix="task-", dir=base) as tmp:
        root = Path(tmp)
        course_root = root / "course"
        _write_files({CONFIG_NAME: course["config"]}, course_root)
        _write_files(course["release"], course_root / "release" / assignment)
        template = root / "gradebook.db"
        template.write_bytes(course["template"])
        submitted = course_root / "submitted" / student / assignment
        submitted.mkdir(parents=True)
        _write_files(job["submitted"], submitted)
        work = Path(tempfile.mkdtemp(prefix="work-", dir=base))
        try:
            execution = execute_submission(course_root, template, assignment, student, submitted, work, limits)
            notebook = execution.notebook
            return {
                "status": execution.status.value,
                "reason": str(execution.reason),
                "seconds": float(execution.seconds),
                "cpu_seconds": float(execution.cpu_seconds),
                "peak_memory_mb": float(execution.peak_memory_mb),
                "notebook_name": notebook.name if notebook is not None else None,
                "notebook": notebook.read_text(encoding="utf-8") if notebook is not None else None,
            }
        finally:
            shutil.rmtree(work, ignore_errors=True)


def execution_from_payload(payload: Any, scratch: Path) -> Execution:
    """The ``Execution`` of a task's returned data; its notebook is written into ``scratch``.

    Raises:
        ValueError: the data is not what ``grade_on_worker`` returns.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"a grading task returned {type(payload).__name__}, not a dict")
    status = Status(payload["status"])
    notebook = None
    if payload.get("notebook") is not None:
        name = Path(str(payload.get("notebook_name") or "executed.ipynb")).name
        if not name.endswith(".ipynb") or name.startswith("."):
            raise ValueError(f"a grading task returned a notebook named {name!r}")
        scratch.mkdir(parents=True, exist_ok=True)
        notebook = scratch / name
        notebook.write_text(str(payload["notebook"]), encoding="utf-8")
    return Execution(
        status, str(payload.get("reason", "")), notebook,
        float(payload.get("seconds", 0.0)), float(payload.get("cpu_seconds", 0.0)), float(payload.get("peak_memory_mb", 0.0)),
    )
