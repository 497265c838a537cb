"""The courses a Dask worker grades: each written once to its disk, with its warm starts kept for the worker's life.

A Dask task carries its course as bytes (``dask_tasks.course_payload``). The first task of a course on a worker
writes that course into a folder of its own (``write_course``) and starts a ``WarmStarts`` there: the kernel fork
server, the two trusted fork servers and spares, as local grading does for a batch. The next tasks of the same
course and limits on that worker use them: their kernel comes from a spare, or else from the fork server; each
submission still gets a sandbox, processes and limits of its own, and the same result as with a cold start.
``WarmCourses`` keeps them, keyed by the course's digest and the limits, at most ``KEPT_COURSES`` at once; the
worker plugin (``dask_plugin.WarmStartsPlugin``) makes one per worker and closes it with the worker. Given the
host's folder (``host_share``), the course's copy and fork servers are those of the host: the first worker to
grade the course owns them, the other workers of the host borrow them, and only the spares are each worker's.

A fork server dies with the thread that started it (``processes.start``), and a Dask task's thread is not
ours to keep: each course's ``WarmStarts`` is made by a keeper thread of its own, which holds it until
the course is closed.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import autograder
from autograder.course import CONFIG_NAME
from autograder.grading.host_share import PUBLISH_WAIT_SECONDS, BorrowedServers, HostSlot
from autograder.grading.limits import Limits
from autograder.grading.servers import BatchServers
from autograder.grading.warm import WarmStarts

KEPT_COURSES = 2
"""How many courses a worker keeps warm at once: opening another closes the least recently used ones that no
task uses."""
SUBMITTED = "submitted"
"""The folder of a course copy that holds each task's submitted files, in a folder of the task's own."""


def write_files(files: dict[str, bytes], into: Path) -> None:
    """Write ``files`` (relative POSIX path -> bytes) under ``into``, refusing paths that would leave it."""
    for name, data in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"refusing to write {name!r} outside the work folder")
        target = into.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@dataclass(frozen=True)
class CourseCopy:
    """A course rebuilt from its payload: ``root`` holds ``nbgrader_config.py``, ``release/<assignment>/`` and
    ``submitted/``; ``template`` is the template gradebook."""

    root: Path
    template: Path

    def submission_folder(self) -> Path:
        """A new, empty folder inside the course for one task's submitted files (hidden from every kernel, as
        the whole course is)."""
        return Path(tempfile.mkdtemp(prefix="task-", dir=self.root / SUBMITTED))


def write_course(course: dict[str, Any], root: Path) -> CourseCopy:
    """Write the course of a ``dask_tasks.course_payload`` into ``root`` (made here)."""
    write_files({CONFIG_NAME: course["config"]}, root)
    write_files(course["release"], root / "release" / course["assignment"])
    (root / SUBMITTED).mkdir()
    template = root / "gradebook.db"
    template.write_bytes(course["template"])
    return CourseCopy(root, template)


def course_digest(course: dict[str, Any]) -> str:
    """A digest of what grading a course's submissions depends on: its assignment, configuration, released
    files and template gradebook (not the batch's size or its workers)."""
    digest = hashlib.sha256(course["assignment"].encode() + b"\0" + course["config"] + b"\0")
    for name in sorted(course["release"]):
        digest.update(name.encode() + b"\0" + course["release"][name] + b"\0")
    digest.update(course["template"])
    return digest.hexdigest()


def followed_here(index: Any, submissions: Any, task_slots: dict[str, int]) -> bool:
    """Whether the task thread grading submission ``index`` of a batch of ``submissions`` will get another one.

    The scheduler hands a batch's tasks out in order (``DaskExecutor`` gives them decreasing priorities) as task
    threads free up: with ``S`` task threads in all (``task_slots``, per host), the thread of submission ``i``
    gets submission ``i + S`` next, if there is one.
    False when the task does not say where it stands in its batch.
    """
    if not isinstance(index, int) or not isinstance(submissions, int):
        return False
    return index + max(1, sum(task_slots.values())) < submissions


def _host_key(key: tuple[str, Limits]) -> str:
    """The name of a course's folder on the host: its digest and limits, and what the servers run (this
    interpreter, this ``autograder``, the data it stages from): workers share servers only when all are the same."""
    same = (key, sys.executable, str(Path(autograder.__file__).parent), os.environ.get("FASTAI_HOME", ""))
    return hashlib.sha256(repr(same).encode()).hexdigest()[:24]


class _StreamWarmStarts(WarmStarts):
    """``WarmStarts`` for a stream of tasks of unknown length: how many submissions will want a spare is asked of
    ``waiting`` each time a spare might be made, instead of counted down from a batch's size."""

    def __init__(self, course_root: Path, assignment: str, limits: Limits, base: Path, waiting: Callable[[], int],
                 servers: BatchServers | None = None) -> None:
        super().__init__(course_root, assignment, limits, base, 0, servers)
        self._count_waiting = waiting

    def refill(self) -> None:
        self.expect(self._count_waiting())
        super().refill()


class _Keeper:
    """A thread that makes a ``WarmStarts`` and holds it, and so its fork servers, until ``close``."""

    def __init__(self, make: Callable[[], WarmStarts]) -> None:
        self._made: queue.Queue = queue.Queue(maxsize=1)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._keep, args=(make,), name="autograder-warm-starts", daemon=True)
        self._thread.start()
        made = self._made.get()
        if isinstance(made, BaseException):
            self._thread.join()
            raise made
        self.warm: WarmStarts = made

    def _keep(self, make: Callable[[], WarmStarts]) -> None:
        try:
            warm = make()
        except BaseException as error:  # noqa: BLE001 - handed to the thread that asked for it
            self._made.put(error)
            return
        self._made.put(warm)
        self._closing.wait()
        warm.close()

    def close(self) -> None:
        """Close the ``WarmStarts`` (its spares and fork servers) and end the thread."""
        self._closing.set()
        self._thread.join()


@dataclass
class WarmCourse:
    """One course on this worker: its copy on disk (in ``base``, beside the tasks' work folders and the data
    their sandboxes share), its warm starts, and how its tasks' kernels started (``started``).

    With a ``slot`` (``host_share``), ``base`` is the host's folder of the course: this worker either owns it (it
    wrote the copy and started the fork servers there) or borrows the servers that ``generation`` names."""

    key: tuple[str, Limits]
    base: Path
    copy: CourseCopy
    keeper: _Keeper | None = None
    slot: HostSlot | None = None
    generation: str | None = None
    """The servers it borrows (``host_share.Published.generation``); None when it owns its servers."""
    users: int = 0
    """Tasks running in it now."""
    followed: int = 0
    """Tasks running in it now whose thread will get another submission (``followed_here``): spares to make."""
    started: Counter = field(default_factory=Counter)
    """Its tasks so far by how their kernel started: ``spare``, ``fork server`` or ``cold``."""

    @property
    def warm(self) -> WarmStarts:
        assert self.keeper is not None
        return self.keeper.warm

    def keep_warm(self, assignment: str, limits: Limits, servers: BatchServers | None = None) -> None:
        """Start its warm starts in a keeper thread: spares in ``base`` as its tasks want them, and fork servers
        unless ``servers`` (borrowed) are given."""
        self.keeper = _Keeper(lambda: _StreamWarmStarts(self.copy.root, assignment, limits, self.base, lambda: self.followed, servers))

    @property
    def borrowed(self) -> bool:
        """Whether its fork servers are another worker's (``host_share``)."""
        return self.generation is not None

    def server_pids(self) -> list[int]:
        """The pids of its fork servers that started."""
        servers = self.warm.servers
        return [server.process.pid for server in (servers.kernels, servers.checkers, servers.graders) if server is not None]

    @contextmanager
    def task(self) -> Iterator[bool]:
        """Hold the course for one task; yields False when its borrowed servers are no longer offered (the task
        must not start on them)."""
        if self.slot is None:
            yield True
            return
        with self.slot.task():
            yield self.serves()

    def serves(self) -> bool:
        """Whether its servers are still there: always for its own, while their owner offers them when borrowed."""
        return self.slot is None or self.generation is None or self.slot.serves(self.generation)

    def close(self) -> None:
        """Stop its spares and fork servers and remove its folder; borrowed servers and the host's folder are left
        to their owner."""
        if self.slot is not None and self.slot.owned:
            self.slot.close(self.keeper.close if self.keeper is not None else lambda: None)
        elif self.keeper is not None:
            self.keeper.close()
        if self.slot is None:
            shutil.rmtree(self.base, ignore_errors=True)


class WarmCourses:
    """The courses one worker keeps warm, in folders under ``folder``. Thread-safe; call ``close`` when the
    worker closes.

    With ``host`` (``host_share.host_folder``), a course is kept in the host's folder and its fork servers are
    shared with the other workers of the host that grade it; ``folder`` then holds only the courses whose host
    folder could not be used.
    """

    def __init__(self, folder: Path, host: Path | None = None) -> None:
        self.folder = folder
        self.host = host
        self._courses: dict[tuple[str, Limits], WarmCourse] = {}
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def lease(self, course: dict[str, Any], limits: Limits, followed: bool = False) -> Iterator[WarmCourse]:
        """The warm course for one task of ``course`` (a ``course_payload``) under ``limits``, opened at its first
        task; not closed while leased.

        Args:
            followed: this task's thread will get another submission (``followed_here``): worth a spare.

        Raises:
            RuntimeError: the worker's courses are closed.
        """
        key = (course_digest(course), limits)
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("this worker's warm courses are closed")
                warm = self._courses.pop(key, None) or self._open(key, course, limits)
                self._courses[key] = warm  # the most recently used last
                warm.users += 1
                warm.followed += followed
                idle = self._idle_beyond(KEPT_COURSES)
            for old in idle:
                old.close()
            try:
                with warm.task() as served:
                    if served:
                        yield warm
                        return
                with self._lock:  # its owner withdrew the servers it borrowed: forget it, open the course again
                    if self._courses.get(warm.key) is warm:
                        del self._courses[warm.key]
            finally:
                with self._lock:
                    warm.users -= 1
                    warm.followed -= followed
                    forgotten = warm.users == 0 and self._courses.get(warm.key) is not warm and not self._closed
                if forgotten:
                    warm.close()

    def _open(self, key: tuple[str, Limits], course: dict[str, Any], limits: Limits) -> WarmCourse:
        shared = self._open_on_host(key, course, limits) if self.host is not None else None
        if shared is not None:
            return shared
        self.folder.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix=f"course-{key[0][:12]}-", dir=self.folder))
        try:
            warm = WarmCourse(key, base, write_course(course, base / "course"))
            warm.keep_warm(course["assignment"], limits)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return warm

    def _open_on_host(self, key: tuple[str, Limits], course: dict[str, Any], limits: Limits) -> WarmCourse | None:
        """The course in the host's folder: owned (copy written, servers started and published) when no live worker
        owns it, else borrowing its owner's servers; None when neither can be done within ``PUBLISH_WAIT_SECONDS``
        (the course is then kept privately)."""
        slot = HostSlot(self.host, _host_key(key))
        if not slot.usable():
            return None
        copy = CourseCopy(slot.base / "course", slot.base / "course" / "gradebook.db")
        deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
        while not slot.try_to_own():
            published = slot.published()
            if published is not None:
                warm = WarmCourse(key, slot.base, copy, slot=slot, generation=published.generation)
                warm.keep_warm(course["assignment"], limits, BorrowedServers.of(published))
                return warm
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)  # its owner is starting its servers, or stopping them
        warm = WarmCourse(key, slot.base, copy, slot=slot)
        try:
            write_course(course, copy.root)
            warm.keep_warm(course["assignment"], limits)
            slot.publish(warm.warm.servers)
        except BaseException:
            slot.close(warm.keeper.close if warm.keeper is not None else lambda: None)
            raise
        return warm

    def _idle_beyond(self, kept: int) -> list[WarmCourse]:
        """Take out the least recently used courses that no task uses until at most ``kept`` are left, or only
        courses in use (lock held)."""
        excess = max(0, len(self._courses) - kept)
        idle = [warm for warm in self._courses.values() if warm.users == 0][:excess]
        for warm in idle:
            del self._courses[warm.key]
        return idle

    def courses(self) -> list[WarmCourse]:
        """The courses kept now, least recently used first."""
        with self._lock:
            return list(self._courses.values())

    def close(self) -> None:
        """Close every course: its spares, its fork servers and its folder."""
        with self._lock:
            self._closed = True
            courses, self._courses = list(self._courses.values()), {}
        for warm in courses:
            warm.close()
