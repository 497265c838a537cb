"""Grading on a Dask cluster: the same scores as local grading, dying workers, and the optional dependency.

The batch runs on a ``LocalCluster`` of two worker processes on the loopback interface. To make a *Dask worker*
die (a student's ``os._exit`` only ends the kernel, a subprocess of the worker), the executor is given a task
function that wraps the real one, ``grade_on_worker``, and ends its own worker process for two chosen students
before grading, as a segfault or the kernel's OOM killer would: ``crash_every_worker`` on every try,
``crash_once`` on its first try only (a marker file remembers it). The wrapper is pickled by value, so the workers
need not import this test module.
"""

from __future__ import annotations

import functools
import os
import re
import time
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from owned_folders import dead_pid, made_by
from submission_files import put_submission

from autograder.course import CONFIG_NAME, scratch_course
from autograder.grading.demo import fill, solution_snippets
from autograder.grading import dask_tasks, host_share, processes
from autograder.grading.executors import DaskExecutor, ExecutorError, LocalExecutor, grade_on_worker, make_executor
from autograder.grading.pipeline import GradeOptions, grade, load_results, results_folder
from autograder.grading.submissions import Submission
from autograder.grading.results import Status
from autograder.grading.worker import Limits
from autograder.nbgrader_api import cell_grades, in_course

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "01_gradient_descent"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
CELL_TIMEOUT = 40
"""Seconds per cell: the slowest honest cell of 01_gradient_descent takes a few seconds, even on a busy machine."""
LIMITS = Limits(cell_timeout=CELL_TIMEOUT, cpu_seconds=300, memory_mb=4096, wall_seconds=600)
ALLOWED_FAILURES = 1
"""The test scheduler's ``allowed-failures``: a task fails once 2 workers died while it was assigned to them."""
MOST_KILLED = (ALLOWED_FAILURES + 1) * 3
"""The most workers one submission can take down with ``DaskExecutor``'s default ``max_attempts`` of 3."""
CRASH_EVERY_WORKER = "crash_every_worker"
CRASH_ONCE = "crash_once"
BLOCK_DASK = "import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
"""Python code making ``import dask`` and ``import distributed`` fail, as in an install without the extra."""

LOOP_AT_DEFINITION = "while True:\n    pass\n"
EXIT_KERNEL = "import os\nos._exit(1)\n"


def make_course(into: Path, name: str = "") -> Path:
    """A scratch copy of the course. Its configuration waits up to 30 s (nbclient's default: 4 s) for a finished
    cell's output, so that a busy test machine does not turn a slow message into a grader error; the Dask
    workers receive this configuration from the coordinator like any other. ``name``, written into the
    configuration as a comment, makes it another course for the workers' warm starts."""
    course = scratch_course(REPO_ROOT, into)
    shutil.copytree(REPO_ROOT / "release", course / "release")
    with open(course / CONFIG_NAME, "a") as config:
        config.write(f"\nc.Execute.iopub_timeout = 30\n# {name}\n")
    return course


def answers(course: Path, **changed: str) -> nbformat.NotebookNode:
    """The release notebook with every blank solved, except those in ``changed`` (blank -> answer cell)."""
    snippets = solution_snippets(course / "source" / ASSIGNMENT / NOTEBOOK)
    snippets.update(changed)
    return fill(course / "release" / ASSIGNMENT / NOTEBOOK, snippets)


put = functools.partial(put_submission, assignment=ASSIGNMENT)


def quits_early(course: Path) -> nbformat.NotebookNode:
    """The release notebook whose kernel ends in the first cell a student may edit: a quick round trip through a
    worker (``kernel_died``, 0 points)."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("locked"))
    first.source = EXIT_KERNEL
    return nb


def write_batch(course: Path, into: Path, crashers: bool) -> None:
    """The batch: correct, partly done, an endless loop, a kernel that exits; with ``crashers``, two copies of
    the correct notebook whose tasks end their Dask workers."""
    stub = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    stub_mae = next(c.source for c in stub.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "mae")
    put(into, "reference", answers(course))
    put(into, "partial", answers(course, mae=stub_mae))
    put(into, "loops", answers(course, mae=LOOP_AT_DEFINITION))
    put(into, "exits", answers(course, mae=EXIT_KERNEL))
    if crashers:
        put(into, CRASH_EVERY_WORKER, answers(course))
        put(into, CRASH_ONCE, answers(course))


def grade_or_end_the_worker(markers: str, course: dict, job: dict) -> dict:
    """``grade_on_worker``, except that it ends this Dask worker's process for the crashing students."""
    student = job["student"]
    if student == CRASH_EVERY_WORKER:
        os._exit(17)
    if student == CRASH_ONCE:
        marker = Path(markers) / student
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(17)
    return grade_on_worker(course, job)


@pytest.fixture(scope="module")
def cluster(fastai_home):
    """Two single-threaded worker processes on 127.0.0.1, with a scheduler that gives up on a task after
    ``ALLOWED_FAILURES + 1`` workers died while it was assigned to them, and sends every task to a worker at
    once (``worker-saturation: inf``), so that tasks wait on workers behind others: the harshest case, where a
    dying worker also takes down the tasks queued on it."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    settings = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, "distributed.scheduler.worker-saturation": "inf"}
    with dask.config.set(settings):
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its health/metrics server: loopback, any free port
        )
    with local:
        yield local


def summarize(batch) -> dict[str, tuple[Status, list[tuple[str, float, float]]]]:
    return {r.student: (r.status, [(c.blank, c.score, c.max_score) for c in r.cells]) for r in batch.submissions}


def submitted_students(course: Path) -> list[str]:
    """The student of every submission of the assignment in the course's gradebook (one entry each)."""
    from nbgrader.api import Gradebook

    with in_course(course), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return sorted(s.student.id for s in gradebook.assignment_submissions(ASSIGNMENT))


@pytest.fixture(scope="module")
def graded(tmp_path_factory, cluster):
    """The batch graded locally through the CLI in a process where dask cannot be imported, and on the cluster
    (with the two crashing students) through the Python API."""
    import cloudpickle
    from distributed import Client

    root = tmp_path_factory.mktemp("dask-grading")
    local_course, dask_course = make_course(root / "local"), make_course(root / "dask")
    write_batch(local_course, root / "incoming-local", crashers=False)
    write_batch(dask_course, root / "incoming-dask", crashers=True)
    cli = [sys.executable, "-c", BLOCK_DASK + "from autograder.cli import main; main()", "grade", ASSIGNMENT,
           "--course", str(local_course), "--input", str(root / "incoming-local"), "-j", "2", "--cell-timeout", str(CELL_TIMEOUT)]
    local_run = subprocess.run(cli, capture_output=True, text=True, timeout=900)
    assert local_run.returncode == 0, local_run.stdout[-3000:] + local_run.stderr[-3000:]

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    markers = root / "markers"
    markers.mkdir()
    events = []
    try:
        with Client(cluster, set_as_default=False) as client:
            executor = DaskExecutor(client, task=functools.partial(grade_or_end_the_worker, str(markers)))
            options = GradeOptions(executor=executor, limits=LIMITS)
            on_dask = grade(dask_course, ASSIGNMENT, root / "incoming-dask", options, lambda kind, payload: events.append((kind, payload)))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return {"local": (local_course, load_results(local_course, ASSIGNMENT)), "dask": (dask_course, on_dask), "events": events}


@pytest.mark.slow
@pytest.mark.notebooks
def test_dask_grades_like_local_and_survives_workers_that_die(graded):
    local_course, local = graded["local"]
    dask_course, on_dask = graded["dask"]
    local_results, dask_results = summarize(local), summarize(on_dask)

    # the same submissions get identical statuses and per-cell scores with both executors
    shared = sorted(local_results)
    assert shared == ["exits", "loops", "partial", "reference"]
    assert {s: dask_results[s] for s in shared} == local_results

    # and the statuses the limits and failures call for
    by_student = {r.student: r for r in on_dask.submissions}
    assert by_student["reference"].status == Status.GRADED and by_student["reference"].score == 10.0
    assert by_student["partial"].status == Status.GRADED and by_student["partial"].score == 8.0
    assert by_student["loops"].status == Status.TIMEOUT and "mae" in by_student["loops"].reason
    assert by_student["loops"].score == 8.0
    assert by_student["exits"].status == Status.KERNEL_DIED and by_student["exits"].score == 0.0

    # a task whose worker died once is retried on another worker and graded once
    assert dask_results[CRASH_ONCE] == dask_results["reference"]

    # a submission that kills every worker it touches is marked failed after a bounded number of tries
    # (more than ALLOWED_FAILURES + 1 when it also waited on a worker that crash_once took down)
    failed = by_student[CRASH_EVERY_WORKER]
    assert failed.status == Status.GRADER_ERROR, failed
    killed = re.fullmatch(r"killed (\d+) grading workers; marked failed", failed.reason)
    assert killed and ALLOWED_FAILURES + 1 <= int(killed.group(1)) <= MOST_KILLED, failed.reason
    assert failed.score == 0.0 and failed.max_score == 10.0

    # the coordinator recorded exactly one gradebook submission and one saved result per student
    everyone = sorted(dask_results)
    assert submitted_students(dask_course) == everyone
    for student in everyone:
        cells = [g.cell for g in cell_grades(dask_course, ASSIGNMENT, student)]
        assert len(cells) == len(set(cells)) == 6, (student, cells)
    assert sorted(p.stem for p in results_folder(dask_course, ASSIGNMENT).glob("*.json")) == everyone
    assert submitted_students(local_course) == shared

    # progress: the plan, one "start", then one "done" per submission, as for local grading
    events = graded["events"]
    assert events[0][0] == "plan" and sorted(events[0][1].new) == everyone
    assert events[1] == ("start", len(everyone))
    assert sorted(payload.student for kind, payload in events[2:]) == everyone


def pretend_to_grade(course: dict, job: dict) -> dict:
    """A stand-in for ``grade_on_worker`` that executes nothing: ``killer`` ends its worker after a moment, the
    others take a moment and come back graded."""
    if job["student"] == "killer":
        time.sleep(0.5)
        os._exit(17)
    time.sleep(1.0)
    return {"status": "graded", "reason": job["student"], "seconds": 1.0, "cpu_seconds": 0.0, "peak_memory_mb": 0.0,
            "notebook_name": None, "notebook": None}


@pytest.mark.slow
def test_submissions_waiting_on_a_dying_worker_are_given_again(tmp_path, cluster):
    """Every task goes to a worker at once, so several wait behind the killer on each worker it takes down; Dask
    fails them too (``KilledWorker``), but they never ran there, so they are submitted again and graded."""
    import cloudpickle
    from distributed import Client

    course = tmp_path / "course"
    (course / "release" / ASSIGNMENT).mkdir(parents=True)
    (course / CONFIG_NAME).write_text("c = get_config()\n")
    (course / "release" / ASSIGNMENT / NOTEBOOK).write_text("{}")
    template = tmp_path / "gradebook.db"
    template.write_bytes(b"not used")
    students = ["killer"] + [f"waits{i}" for i in range(7)]
    submissions = []
    for student in students:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_text("{}")
        submissions.append(Submission(student, folder / NOTEBOOK))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with Client(cluster, set_as_default=False) as client:
            executor = DaskExecutor(client, task=pretend_to_grade)
            done = list(executor.execute(course, template, ASSIGNMENT, submissions, tmp_path / "work", LIMITS))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    results = {submission.student: execution for submission, execution in done}
    assert sorted(results) == sorted(students) and len(done) == len(students)
    assert results["killer"].status == Status.GRADER_ERROR
    assert results["killer"].reason == f"killed {ALLOWED_FAILURES + 1} grading workers; marked failed"
    for student in students[1:]:
        assert (results[student].status, results[student].reason) == (Status.GRADED, student)


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_cli_grades_on_a_dask_scheduler(tmp_path, cluster):
    from click.testing import CliRunner

    from autograder import cli

    course = make_course(tmp_path / "course")
    put(tmp_path / "incoming", "quits_early", quits_early(course))
    args = ["grade", ASSIGNMENT, "--course", str(course), "--input", str(tmp_path / "incoming"),
            "--executor", "dask", "--scheduler", cluster.scheduler_address, "--cell-timeout", str(CELL_TIMEOUT)]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert "quits_early" in result.output and "kernel_died" in result.output
    (saved,) = load_results(course, ASSIGNMENT).submissions
    assert saved.status == Status.KERNEL_DIED and saved.score == 0.0 and saved.max_score == 10.0


def test_the_cli_asks_for_a_scheduler_with_the_dask_executor(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from autograder import cli

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    result = CliRunner().invoke(cli.main, ["grade", ASSIGNMENT, "--course", str(REPO_ROOT), "--executor", "dask"])
    assert result.exit_code == 2, result.output
    assert "--executor dask needs --scheduler ADDRESS" in result.output


def test_the_local_executor_needs_no_dask(monkeypatch):
    """Importing the grading code loads no dask, and with dask unimportable the local executor is still made
    while the dask executor names the missing extra."""
    code = "import sys; import autograder.cli, autograder.grading.pipeline, autograder.grading.executors; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip() == "[]"

    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert isinstance(make_executor("local", jobs=2), LocalExecutor)
    with pytest.raises(ExecutorError, match=r"pip install 'autograder\[dask\]'"):
        make_executor("dask", scheduler="tcp://127.0.0.1:8786")


def test_the_dask_executor_needs_an_address(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ExecutorError, match="needs a scheduler address"):
        make_executor("dask")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    assert make_executor("dask").cluster == "tcp://127.0.0.1:8786"
    with pytest.raises(ExecutorError, match="unknown executor"):
        make_executor("spark")


def test_payloads_stay_inside_the_work_folder_and_come_back_as_plain_data(tmp_path):
    from autograder.grading.dask_tasks import execution_from_payload
    from autograder.grading.worker_courses import write_files

    with pytest.raises(ValueError, match="outside"):
        write_files({"../escape.txt": b"x"}, tmp_path / "in")
    with pytest.raises(ValueError, match="outside"):
        write_files({"/etc/escape": b"x"}, tmp_path / "in")
    assert not (tmp_path / "escape.txt").exists()
    payload = {"status": "graded", "reason": "", "seconds": 1.5, "cpu_seconds": 1.0, "peak_memory_mb": 10.0,
               "notebook_name": "../../x.ipynb", "notebook": "{}"}
    execution = execution_from_payload(payload, tmp_path / "scratch")
    assert execution.status == Status.GRADED and execution.notebook == tmp_path / "scratch" / "x.ipynb"
    with pytest.raises(ValueError):
        execution_from_payload({**payload, "notebook_name": "x.py"}, tmp_path / "scratch")
    with pytest.raises(ValueError):
        execution_from_payload(["not", "a", "dict"], tmp_path / "scratch")


def test_kernels_share_a_hosts_cores_among_all_the_task_threads_of_its_workers(cluster):
    from dask.system import cpu_count
    from distributed import Client

    from autograder.grading.dask_tasks import _worker_threads, task_slots_by_host

    two_hosts = {"a": {"host": "10.0.0.1", "nthreads": 4}, "b": {"host": "10.0.0.1", "nthreads": 2},
                 "c": {"host": "10.0.0.2", "nthreads": 1}, "d": {"host": "10.0.0.3"}}
    assert task_slots_by_host(two_hosts) == {"10.0.0.1": 6, "10.0.0.2": 1}
    with Client(cluster, set_as_default=False) as client:
        slots = task_slots_by_host(client.scheduler_info()["workers"])
        assert slots == {"127.0.0.1": 2}, "two single-threaded workers on the loopback host"
        shared = client.gather([client.submit(_worker_threads, slots, pure=False, workers=[address])
                                for address in client.scheduler_info()["workers"]])
        alone = client.submit(_worker_threads, {}, pure=False).result()
    assert shared == [max(1, cpu_count() // 2)] * 2
    assert alone == max(1, cpu_count()), "a host it does not know: the worker's own task threads"


def test_the_workers_of_a_host_share_each_course_folder_and_leave_no_task_folder(graded, cluster):
    """The workers of one host keep each course in one folder of the host's (``host_share``): the course's copy
    with no task's files left in it, the data the sandboxes share (staged once), the fork servers' log and the
    spares made ahead, nothing else. A worker's own folder holds at most the shared data of the submissions it
    graded again cold (when the worker whose servers they ran on died), and no task's folder."""
    from distributed import Client

    def kept_here(dask_worker):
        from autograder.grading import dask_tasks
        from autograder.grading.dask_plugin import worker_courses

        own = dask_tasks._WORKER_FOLDER
        courses = worker_courses(dask_worker)
        return {"own": sorted(path.name for path in own.iterdir()) if own is not None and own.is_dir() else [],
                "courses": {str(course.base): (sorted(path.name for path in course.base.iterdir()),
                                               sorted(path.name for path in (course.copy.root / "submitted").iterdir()))
                            for course in (courses.courses() if courses is not None else [])}}

    with Client(cluster, set_as_default=False) as client:
        found = list(client.run(kept_here).values())
    assert all(set(worker["own"]) <= {".sandbox-shared"} for worker in found), found
    bases = {base: contents for worker in found for base, contents in worker["courses"].items()}
    assert bases, ("no worker keeps a course", found)
    for base, (entries, submitted) in bases.items():
        assert Path(base).parent.parent == host_share.host_folder(), base
        spares = [entry for entry in entries if entry.startswith("warm-")]
        assert sorted(set(entries) - set(spares)) == [".sandbox-shared", "course", "trusted-forks.log"], bases
        assert submitted == [], bases


def warm_courses_on_workers(client) -> dict[str, list[dict]]:
    """Each worker's warm courses, least recently used first: how their tasks' kernels started, the pids of
    their fork servers, their folder."""

    def here(dask_worker) -> list[dict]:
        from autograder.grading.dask_plugin import worker_courses

        courses = worker_courses(dask_worker)
        return [] if courses is None else [{"started": dict(course.started), "servers": course.server_pids(), "base": str(course.base),
                                            "borrowed": course.borrowed} for course in courses.courses()]

    return client.run(here)


def worker_folder_of_this_worker() -> str:
    from autograder.grading import dask_tasks

    return str(dask_tasks.worker_folder())


def running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.notebooks
def test_a_worker_keeps_each_courses_fork_servers_and_spares_and_closes_them_with_it(tmp_path, fastai_home):
    """On one single-threaded worker: three submissions of a course, then one of another course. The first
    submission of each course has its kernel forked from the course's new fork server, the next ones take the
    spare the previous one made; every result is the one a cold start gives; closing the cluster leaves no fork
    server running and no folder of the courses."""
    distributed = pytest.importorskip("distributed")
    first, second = make_course(tmp_path / "first", "first course"), make_course(tmp_path / "second", "second course")
    for student in ("ada", "bob", "cy"):
        put(tmp_path / "quick", student, quits_early(first))
    put(tmp_path / "full", "reference", answers(second))
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                                     scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    with local, distributed.Client(local, set_as_default=False) as client:
        options = GradeOptions(executor=DaskExecutor(client), limits=LIMITS)
        quick = grade(first, ASSIGNMENT, tmp_path / "quick", options)
        full = grade(second, ASSIGNMENT, tmp_path / "full", options)
        (kept,) = warm_courses_on_workers(client).values()
        servers = [pid for course in kept for pid in course["servers"]]
        assert len(servers) == 6 and all(map(running, servers)), kept
        (own,) = client.run(worker_folder_of_this_worker).values()
        assert Path(own).is_dir() and Path(own).name.startswith(processes.WORKER_PREFIX), own

    assert sorted((r.student, r.status, r.score, r.max_score) for r in quick.submissions) == [
        (student, Status.KERNEL_DIED, 0.0, 10.0) for student in ("ada", "bob", "cy")]
    (reference,) = full.submissions
    assert (reference.status, reference.score, reference.max_score) == (Status.GRADED, 10.0, 10.0), reference
    assert [course["started"] for course in kept] == [{"fork server": 1, "spare": 2}, {"fork server": 1}]

    deadline = time.monotonic() + 15
    while any(map(running, servers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in servers if running(pid)], "fork servers left running after the cluster closed"
    assert not [course["base"] for course in kept if Path(course["base"]).exists()]
    assert not Path(own).exists(), "the worker's grading folder outlived the worker"


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_workers_of_a_host_grade_on_one_set_of_fork_servers(tmp_path, fastai_home):
    """On two single-threaded workers of one host: six submissions of one course. One worker owns the course's
    three fork servers, the other borrows them; both grade, with the results a cold start gives; closing the
    cluster leaves no fork server running and no folder of the course."""
    distributed = pytest.importorskip("distributed")
    course = make_course(tmp_path / "course", "one course for two workers")
    students = ("ada", "bob", "cy", "dee", "eve", "fay")
    for student in students:
        put(tmp_path / "quick", student, quits_early(course))
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                                     scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    with local, distributed.Client(local, set_as_default=False) as client:
        quick = grade(course, ASSIGNMENT, tmp_path / "quick", GradeOptions(executor=DaskExecutor(client), limits=LIMITS))
        kept = [courses for courses in warm_courses_on_workers(client).values()]

    assert sorted((r.student, r.status, r.score) for r in quick.submissions) == [(s, Status.KERNEL_DIED, 0.0) for s in students]
    assert all(len(courses) == 1 for courses in kept), "both workers graded the course"
    owner, borrower = sorted((courses[0] for courses in kept), key=lambda course: course["borrowed"])
    assert not owner["borrowed"] and borrower["borrowed"]
    assert len(owner["servers"]) == 3 and borrower["servers"] == owner["servers"] and borrower["base"] == owner["base"]
    assert sum(owner["started"].values()) + sum(borrower["started"].values()) == len(students)
    assert "cold" not in owner["started"] and "cold" not in borrower["started"]

    deadline = time.monotonic() + 15
    while any(map(running, owner["servers"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in owner["servers"] if running(pid)], "fork servers left running after the cluster closed"
    assert not Path(owner["base"]).exists()


class FakeWarmStarts:
    """Stands in for a course's ``WarmStarts``: starts nothing, remembers whether it was closed."""

    def __init__(self, course_root: Path, assignment: str, limits: Limits, base: Path, waiting, servers=None) -> None:
        from autograder.grading.servers import BatchServers

        self.course_root, self.limits, self.waiting, self.closed = course_root, limits, waiting, False
        self.servers = BatchServers()

    def close(self) -> None:
        self.closed = True


def course_bytes(config: bytes) -> dict:
    return {"assignment": ASSIGNMENT, "config": config, "release": {NOTEBOOK: b"{}"}, "template": b"gradebook"}


def test_a_worker_keeps_its_recent_courses_warm_and_closes_them_when_it_closes(tmp_path, monkeypatch):
    from autograder.grading import worker_courses

    monkeypatch.setattr(worker_courses, "_StreamWarmStarts", FakeWarmStarts)
    courses = worker_courses.WarmCourses(tmp_path / "worker")
    with courses.lease(course_bytes(b"a"), LIMITS, followed=True) as a:
        assert a.warm.waiting() == 1, "one running task whose thread gets another submission: one spare wanted"
        with courses.lease({**course_bytes(b"a"), "submissions": 9, "task_slots": {"h": 3}}, LIMITS) as again:
            assert again is a and a.users == 2 and a.warm.waiting() == 1
        assert (a.copy.root / CONFIG_NAME).read_bytes() == b"a" and a.copy.template.read_bytes() == b"gradebook"
        assert (a.copy.root / "release" / ASSIGNMENT / NOTEBOOK).read_bytes() == b"{}"
        with courses.lease(course_bytes(b"b"), LIMITS) as b:
            pass
        with courses.lease(course_bytes(b"b"), Limits(cell_timeout=1)) as b_other_limits:
            assert b_other_limits is not b
        # a is in use, so it stays; b is the least recently used idle course beyond the two most recent
        assert [course.key for course in courses.courses()] == [a.key, b_other_limits.key]
        assert b.warm.closed and not b.base.exists() and not a.warm.closed
    assert a.users == 0 and a.warm.waiting() == 0
    courses.close()
    assert a.warm.closed and b_other_limits.warm.closed
    assert list((tmp_path / "worker").iterdir()) == []
    with pytest.raises(RuntimeError, match="closed"):
        with courses.lease(course_bytes(b"a"), LIMITS):
            pass


def test_a_course_whose_warm_starts_fail_leaves_no_folder(tmp_path, monkeypatch):
    from autograder.grading import worker_courses

    def refuse(*args, **kwargs):
        raise OSError("no fork server here")

    monkeypatch.setattr(worker_courses, "_StreamWarmStarts", refuse)
    courses = worker_courses.WarmCourses(tmp_path / "worker")
    with pytest.raises(OSError, match="no fork server here"):
        with courses.lease(course_bytes(b"a"), LIMITS):
            pass
    assert list((tmp_path / "worker").iterdir()) == [] and courses.courses() == []


def test_a_task_thread_gets_the_submission_one_round_of_threads_later():
    from autograder.grading.worker_courses import followed_here

    slots = {"10.0.0.1": 2, "10.0.0.2": 1}
    assert [followed_here(index, 7, slots) for index in range(7)] == [True] * 4 + [False] * 3
    assert followed_here(0, 2, {}) and not followed_here(1, 2, {})
    assert not followed_here(None, 7, slots) and not followed_here(0, None, slots)


def test_a_courses_digest_depends_on_the_course_not_on_the_batch():
    from autograder.grading.worker_courses import course_digest

    course = course_bytes(b"a")
    assert course_digest(course) == course_digest({**course, "submissions": 3, "task_slots": {"h": 2}, "warm": True})
    assert course_digest({**course, "config": b"b"}) != course_digest(course)
    assert course_digest({**course, "release": {"other.ipynb": b"{}"}}) != course_digest(course)
    assert course_digest({**course, "template": b"another"}) != course_digest(course)


def test_the_plugin_gives_a_worker_warm_courses_and_closes_them_at_teardown(monkeypatch):
    pytest.importorskip("distributed")
    from autograder.grading import dask_plugin

    closed = []
    monkeypatch.setattr(dask_plugin.WarmCourses, "close", lambda courses: closed.append(courses))
    plugin = dask_plugin.WarmStartsPlugin()
    plugin.setup(worker=None)
    courses = plugin.courses
    own = dask_tasks.worker_folder()
    assert isinstance(courses, dask_plugin.WarmCourses) and own.is_dir()
    plugin.teardown(worker=None)
    assert closed == [courses] and plugin.courses is None
    assert not own.exists(), "teardown removes the worker's grading folder"
    assert dask_plugin.worker_courses() is None, "outside a worker"


def test_a_workers_first_task_removes_the_folders_of_ended_workers_and_teardown_its_own(tmp_path, monkeypatch):
    left = made_by(dead_pid(), tmp_path, processes.WORKER_PREFIX)
    (left / ".sandbox-shared").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(dask_tasks, "_WORKER_FOLDER", None)
    own = dask_tasks.worker_folder()
    assert not left.exists(), "the folder of a worker that ended is removed"
    assert own.parent == tmp_path and processes.folder_owner(own) == os.getpid()
    dask_tasks.remove_worker_folder()
    assert not own.exists() and dask_tasks._WORKER_FOLDER is None
