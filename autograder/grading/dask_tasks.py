"""What travels to a Dask worker and back: one submission's grading task, as plain data.

The task receives bytes only (the course's ``nbgrader_config.py``, ``release/<assignment>/``, the template
gradebook, the student's submitted files, the limits), grades the submission on a copy of the course with
``execute_submission`` under the same limits as local grading, and returns plain data: the status, reason, usage
and the executed notebook as JSON text. No Python object of the student ever leaves the worker. On a worker
with the warm-starts plugin (``dask_plugin``), the course's copy and its fork servers are made once per host
and its spares once per worker, and kept for the worker's life (``worker_courses``, ``host_share``), as they
are kept for a batch in local grading.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from autograder.course import CONFIG_NAME
from autograder.grading import processes
from autograder.grading.limits import Limits
from autograder.grading.outcome import Execution
from autograder.grading.results import Status
from autograder.grading.submissions import Submission
from autograder.grading.warm import WarmStarts
from autograder.grading.worker import execute_submission
from autograder.grading.worker_courses import CourseCopy, WarmCourses, followed_here, write_course, write_files


def _folder_files(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``: relative POSIX path -> bytes (links and special files left out)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


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


def worker_folder() -> Path:
    """This process's folder for grading tasks, an owned folder under the temporary folder; made at its first
    task (which first removes the owned folders of dead graders and workers), removed by ``remove_worker_folder``
    (the plugin's teardown) or at exit, else by the next batch or worker once this process has ended.

    Holds the warm courses (``worker_courses.WarmCourses``) or, without them, each task's course and work folder
    and, beside them, what the sandbox stages once for all of them.
    """
    global _WORKER_FOLDER
    with _worker_folder_lock:
        if _WORKER_FOLDER is None or not _WORKER_FOLDER.is_dir():
            processes.remove_abandoned_folders()
            _WORKER_FOLDER = processes.owned_folder(processes.WORKER_PREFIX)
            atexit.register(shutil.rmtree, _WORKER_FOLDER, ignore_errors=True)
        return _WORKER_FOLDER


def remove_worker_folder() -> None:
    """Remove this process's grading folder and all it holds, if it has one; the next task makes a new one."""
    global _WORKER_FOLDER
    with _worker_folder_lock:
        folder, _WORKER_FOLDER = _WORKER_FOLDER, None
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _warm_courses() -> WarmCourses | None:
    """This Dask worker's warm courses (``dask_plugin``); None where there are none (no plugin, no worker)."""
    try:
        from autograder.grading.dask_plugin import worker_courses
    except ImportError:
        return None
    return worker_courses()


def grade_on_worker(course: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: execute one submission on this worker and return plain data.

    Runs ``execute_submission`` under the shipped limits (a ``threads`` of 0 becomes the host's cores per task
    thread of all its workers, see ``_worker_threads``) on a copy of the course holding only
    ``nbgrader_config.py``, ``release/<assignment>/`` and the template gradebook, with the student's files in it.
    On a worker with the plugin (``dask_plugin``, unless the course says ``"warm": False``), that copy is written
    once per host and course, and its fork servers serve all the course's tasks of the host's workers, each worker
    keeping spares of its own (``worker_courses``, ``host_share``); a task that ran on another worker's servers
    that went away meanwhile is graded again, cold. Otherwise the task writes a copy of its own in this worker
    process's folder (``worker_folder``), grades with a cold start and removes it. Either way the read-only data
    the kernels share (the MNIST sample, matplotlib's font cache) is staged once per course and folder, not once
    per task.

    Returns:
        ``status`` (a ``Status`` value), ``reason``, ``seconds``, ``cpu_seconds``, ``peak_memory_mb``,
        ``notebook_name`` and ``notebook`` (the executed notebook's JSON text; both None when execution
        failed), ``started`` (how its kernel started: ``spare``, ``fork server`` or ``cold``): strings and
        numbers only.
    """
    limits = Limits(**job["limits"])
    if limits.threads == 0:
        limits = replace(limits, threads=_worker_threads(course.get("task_slots", {})))
    courses = _warm_courses() if course.get("warm", True) else None
    if courses is None:
        base = worker_folder()
        with tempfile.TemporaryDirectory(prefix="task-", dir=base) as tmp:
            return _execute(write_course(course, Path(tmp) / "course"), course["assignment"], job, limits, base, None)
    followed = followed_here(job.get("index"), course.get("submissions"), course.get("task_slots", {}))
    with courses.lease(course, limits, followed) as warm_course:
        try:
            result = _execute(warm_course.copy, course["assignment"], job, limits, warm_course.base, warm_course.warm)
        except Exception:
            if warm_course.serves():
                raise
            result = None
        if result is not None and warm_course.serves():
            warm_course.started[result["started"]] += 1
            return result
    # the worker whose fork servers it borrowed went away while it ran: grade it again, cold
    return grade_on_worker({**course, "warm": False}, job)


def _execute(copy: CourseCopy, assignment: str, job: dict[str, Any], limits: Limits, base: Path, warm: WarmStarts | None
             ) -> dict[str, Any]:
    """Execute the job's submission on the course ``copy``, its work folder in ``base`` (where ``warm``'s work
    folders are); its files and folders are removed afterwards."""
    student = job["student"]
    own = copy.submission_folder()
    work = Path(tempfile.mkdtemp(prefix="work-", dir=base))
    execution = None
    try:
        submitted = own / student / assignment
        submitted.mkdir(parents=True)
        write_files(job["submitted"], submitted)
        execution = execute_submission(copy.root, copy.template, assignment, student, submitted, work, limits, warm)
        notebook = execution.notebook
        return {
            "status": execution.status.value,
            "reason": str(execution.reason),
            "seconds": float(execution.seconds),
            "cpu_seconds": float(execution.cpu_seconds),
            "peak_memory_mb": float(execution.peak_memory_mb),
            "notebook_name": notebook.name if notebook is not None else None,
            "notebook": notebook.read_text(encoding="utf-8") if notebook is not None else None,
            "started": "spare" if execution.folder is not None else "fork server" if warm is not None and warm.forks else "cold",
        }
    finally:
        for folder in (work, own, execution.folder if execution is not None else None):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


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
