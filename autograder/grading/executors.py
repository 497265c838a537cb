"""Where submissions are executed: threads on this machine, or tasks on a Dask cluster.

An executor runs ``worker.execute_submission`` for each submission and yields ``(submission, Execution)``
pairs as they complete; the pipeline records each pair in the course's gradebook as it arrives, so the
coordinating process stays the only writer whichever executor ran the notebooks.

- ``LocalExecutor``: ``jobs`` threads, each watching one grading process on this machine.
- ``DaskExecutor``: one Dask task per submission (``dask_tasks.grade_on_worker``: bytes in, plain data out;
  no Python object of the student ever leaves the worker), with each worker's fork servers and spares started
  once per course and kept for the worker's life (``dask_plugin``). A worker that dies mid-task
  makes Dask run the task on another worker; a submission under which more than the scheduler's
  ``allowed-failures`` workers died while it ran ends as ``grader_error`` (see ``DaskExecutor``).

``dask.distributed`` is imported only by ``DaskExecutor``: the base install grades locally without it.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from autograder.grading.dask_tasks import course_payload, execution_from_payload, grade_on_worker, job_payload, task_slots_by_host
from autograder.grading.limits import Limits
from autograder.grading.outcome import Execution
from autograder.grading.results import Status
from autograder.grading.submissions import Submission
from autograder.grading.warm import WarmStarts
from autograder.grading.worker import execute_submission

SCHEDULER_ENV_VAR = "DASK_SCHEDULER_ADDRESS"
EXECUTORS = ("local", "dask")
DASK_EXTRA_HINT = "pip install 'autograder[dask]'"
CONNECT_TIMEOUT = "30s"

Completed = Iterator[tuple[Submission, Execution]]


class ExecutorError(RuntimeError):
    """The executor cannot run: dask is not installed, no scheduler address, the scheduler cannot be reached."""


class Executor(Protocol):
    """Runs submissions and yields each ``(submission, execution)`` as it completes."""

    def execute(
        self, course_root: Path, template_db: Path, assignment: str, submissions: list[Submission], work: Path, limits: Limits
    ) -> Completed:
        """Execute ``submissions`` (staged in ``course_root/submitted/<student>/<assignment>/``).

        Args:
            template_db: the gradebook from ``prepare_template``.
            work: an empty folder for scratch files; an execution's notebook lives there until the consumer
                asks for the next pair.
            limits: the per-submission limits.
        """
        ...


def _failure(reason: str) -> Execution:
    return Execution(Status.GRADER_ERROR, reason[:300], None, 0.0, 0.0, 0.0)


class LocalExecutor:
    """``jobs`` submissions at once on this machine, each in its own grading process watched by a thread.

    With ``warm``, the grading process and kernel of a waiting submission start while another is graded
    (``warm.WarmStarts``).
    """

    def __init__(self, jobs: int | None = None, warm: bool = True) -> None:
        self.jobs = max(1, jobs if jobs is not None else os.cpu_count() or 1)
        self.warm = warm

    def execute(
        self, course_root: Path, template_db: Path, assignment: str, submissions: list[Submission], work: Path, limits: Limits
    ) -> Completed:
        if limits.threads == 0:
            limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // self.jobs))
        warm = WarmStarts(course_root, assignment, limits, work, len(submissions)) if self.warm else None
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                pending: dict[Future, tuple[Submission, Path]] = {}
                for index, submission in enumerate(submissions):
                    scratch = work / f"{index:05d}"
                    scratch.mkdir(parents=True)
                    submitted = course_root / "submitted" / submission.student / assignment
                    future = pool.submit(
                        execute_submission, course_root, template_db, assignment, submission.student, submitted, scratch, limits, warm
                    )
                    pending[future] = (submission, scratch)
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        submission, scratch = pending.pop(future)
                        try:
                            execution = future.result()
                        except Exception as error:  # noqa: BLE001 - a worker failure is this submission's status
                            execution = _failure(f"the worker failed: {error}")
                        yield submission, execution
                        shutil.rmtree(scratch, ignore_errors=True)
                        if execution.folder is not None:
                            shutil.rmtree(execution.folder, ignore_errors=True)
        finally:
            if warm is not None:
                warm.close()


def _identity(value: Any) -> Any:
    return value


def _announce_start(topic: str, index: int) -> None:
    """Tell the scheduler, and through it the coordinator, that submission ``index`` starts executing here.

    The message goes synchronously through the worker's client, so it is recorded before the submission runs
    even if the worker dies right after; if that client cannot be had, the worker's own (batched) event log.
    """
    from distributed import get_client, get_worker

    message = {"index": index}
    try:
        get_client().log_event(topic, message)
    except Exception:  # noqa: BLE001 - the count is a safeguard; grading goes on without it
        try:
            get_worker().log_event(topic, message)
        except Exception:  # noqa: BLE001
            pass


def run_task(task: Callable[[dict, dict], dict], topic: str, index: int, course: dict, job: dict) -> dict:
    """What each Dask task runs: announce the start of submission ``index``, then ``task(course, job)``."""
    _announce_start(topic, index)
    return task(course, job)


def _import_distributed():
    try:
        import distributed
    except ImportError as error:
        raise ExecutorError(f"the dask executor needs dask.distributed, which is not installed: {DASK_EXTRA_HINT}") from error
    return distributed


class DaskExecutor:
    """One Dask task per submission on a Dask cluster (``grade_on_worker``), recorded here as results arrive.

    Dying workers: the scheduler runs a task again elsewhere when its worker dies, and fails it as
    ``KilledWorker`` once more than ``distributed.scheduler.allowed-failures`` (default 3) workers died while it
    was assigned to them, whether it was running there or only waiting behind another task. Each task tells the
    coordinator when it starts executing, so a submission is marked failed only when at least
    ``allowed-failures + 1`` of those workers died while it was running; a submission that was only waiting on
    them is submitted again (at most ``max_attempts`` times in all).

    Args:
        cluster: a scheduler address (``tcp://host:8786``), a ``distributed.Client``, or a cluster object
            (``LocalCluster``, ``KubeCluster``, ``SLURMCluster``, a Dask Gateway cluster: anything with a
            ``scheduler_address``). None: ``$DASK_SCHEDULER_ADDRESS``. A client or cluster given here is left
            open; a client this executor opens is closed when the batch ends.
        retries: extra tries of a task that raised an error (the grader's own failure, e.g. a full disk on one
            worker); Dask's ``retries``.
        max_attempts: how many times one submission may be given to the scheduler in all (a bound on the
            workers a submission can take down when its start messages are lost).
        task: the function run on workers (default ``grade_on_worker``); it must take and return the same data.
        warm: give every worker the warm starts of local grading (``dask_plugin.WarmStartsPlugin``: fork servers
            and spares per course, kept for the worker's life); False: each task starts its processes cold.

    Raises:
        ExecutorError: dask.distributed is not installed, or no scheduler address is known.
    """

    def __init__(
        self, cluster: Any = None, retries: int = 1, task: Callable[[dict, dict], dict] | None = None, max_attempts: int = 3,
        warm: bool = True,
    ) -> None:
        _import_distributed()
        if cluster is None:
            cluster = os.environ.get(SCHEDULER_ENV_VAR) or None
        if cluster is None or (isinstance(cluster, str) and not cluster.strip()):
            raise ExecutorError(
                f"the dask executor needs a scheduler address: pass --scheduler tcp://HOST:8786 or set {SCHEDULER_ENV_VAR}"
            )
        self.cluster = cluster.strip() if isinstance(cluster, str) else cluster
        self.retries = retries
        self.max_attempts = max(1, max_attempts)
        self.task = task or grade_on_worker
        self.warm = warm

    def _connect(self):
        """The client to submit through, and whether this executor opened it (and must close it)."""
        distributed = _import_distributed()
        if isinstance(self.cluster, distributed.Client):
            return self.cluster, False
        try:
            return distributed.Client(self.cluster, timeout=CONNECT_TIMEOUT, set_as_default=False), True
        except (OSError, TimeoutError) as error:
            where = self.cluster if isinstance(self.cluster, str) else getattr(self.cluster, "scheduler_address", self.cluster)
            raise ExecutorError(f"cannot reach the Dask scheduler at {where}: {error}") from error

    def execute(
        self, course_root: Path, template_db: Path, assignment: str, submissions: list[Submission], work: Path, limits: Limits
    ) -> Completed:
        if not submissions:
            return
        distributed = _import_distributed()
        client, opened = self._connect()
        token = uuid.uuid4().hex
        starts = _Starts(f"autograder-started-{token}")
        futures: dict[Any, tuple[int, int]] = {}
        client.subscribe_topic(starts.topic, starts.record)
        try:
            if self.warm:
                from autograder.grading.dask_plugin import register

                register(client)
            course = client.submit(_identity, self._course(client, course_root, template_db, assignment, len(submissions)),
                                   key=f"autograder-course-{token}")
            jobs = [{**job_payload(course_root, assignment, submission, limits), "index": index}
                    for index, submission in enumerate(submissions)]

            def submit(index: int, attempt: int):
                key = f"autograder-grade-{token}-{index:05d}-{attempt}"
                future = client.submit(run_task, self.task, starts.topic, index, course, jobs[index], key=key, retries=self.retries,
                                       priority=-index)  # in order: the workers' spares count on it (worker_courses)
                futures[future] = (index, attempt)
                return future

            completed = distributed.as_completed([submit(index, 1) for index in range(len(submissions))], loop=client.loop)
            for future in completed:
                index, attempt = futures.pop(future)
                submission, scratch = submissions[index], work / f"{index:05d}"
                execution = self._execution(future, submission, scratch, lambda: starts[index], attempt)
                if execution is None:
                    completed.add(submit(index, attempt + 1))  # it was waiting, not running, on some of them
                    continue
                future.release()
                yield submission, execution
                shutil.rmtree(scratch, ignore_errors=True)
        finally:
            for future in futures:
                future.cancel()
            try:
                client.unsubscribe_topic(starts.topic)
            except Exception:  # noqa: BLE001 - the client may already be closing
                pass
            if opened:
                client.close()

    def _course(self, client: Any, course_root: Path, template_db: Path, assignment: str, submissions: int) -> dict[str, Any]:
        """The batch's course payload, with what the workers' warm starts need: the batch's size, the task
        threads per host, whether to keep warm."""
        return {**course_payload(course_root, template_db, assignment), "submissions": submissions, "warm": self.warm,
                "task_slots": task_slots_by_host(client.scheduler_info()["workers"])}

    def _execution(self, future: Any, submission: Submission, scratch: Path, killed: Callable[[], int], attempt: int
                   ) -> Execution | None:
        """The submission's execution from its finished task; None when it is to be submitted again.

        ``killed``: how many workers died while this submission was running on them, so far.
        """
        from distributed.scheduler import KilledWorker

        try:
            return execution_from_payload(future.result(), scratch)
        except CancelledError as error:
            raise ExecutorError(
                f"the Dask cluster dropped the task of {submission.student} (scheduler lost or restarted?): {error}; "
                "the results recorded so far are saved, run the same command again to grade the rest"
            ) from error
        except KilledWorker as error:
            allowed = error.allowed_failures if isinstance(getattr(error, "allowed_failures", None), int) else 3
            died = killed()
            if died <= allowed and attempt < self.max_attempts:
                return None
            if died > allowed:
                return _failure(f"killed {died} grading workers; marked failed")
            return _failure(f"{allowed + 1} grading workers died while it waited for them, {attempt} times; marked failed")
        except Exception as error:  # noqa: BLE001 - a task failure is this submission's status
            return _failure(f"the worker failed: {error}")


class _Starts:
    """How many times each submission started executing on a worker, from the tasks' messages on ``topic``."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._counts: Counter[int] = Counter()
        self._lock = threading.Lock()

    def record(self, event: tuple[float, Any]) -> None:
        message = event[1]
        if isinstance(message, dict) and isinstance(message.get("index"), int):
            with self._lock:
                self._counts[message["index"]] += 1

    def __getitem__(self, index: int) -> int:
        with self._lock:
            return self._counts[index]


def make_executor(executor: Any = "local", jobs: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor that ``GradeOptions(executor=..., jobs=..., scheduler=...)`` asks for.

    Args:
        executor: ``"local"``; ``"dask"`` (with ``scheduler`` or ``$DASK_SCHEDULER_ADDRESS``); a
            ``distributed.Client`` or cluster object; or an object with an ``execute`` method, used as is.
        jobs: submissions at once for ``"local"``.
        scheduler: the Dask scheduler address for ``"dask"``.

    Raises:
        ExecutorError: an unknown name, dask not installed, or no scheduler address for ``"dask"``.
    """
    if isinstance(executor, str):
        if executor == "local":
            return LocalExecutor(jobs)
        if executor == "dask":
            return DaskExecutor(scheduler)
        raise ExecutorError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if hasattr(executor, "execute"):
        return executor
    return DaskExecutor(executor)

