"""The workers of one host share each course's fork servers (``host_share``), and a borrower never grades on
servers that went away.

Two ``WarmCourses`` on one host folder stand in for two Dask worker processes (``flock`` locks taken through
separate open files conflict within one process as between two). Their warm starts are stand-ins that start
nothing, so these tests run no notebook.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from autograder.grading import dask_tasks, host_share, worker_courses
from autograder.grading.servers import BatchServers
from autograder.grading.worker import Limits

LIMITS = Limits(cell_timeout=40, cpu_seconds=300, memory_mb=4096, wall_seconds=600, threads=1)
ASSIGNMENT = "01_gradient_descent"


class FakeWarmStarts:
    """Stands in for a course's ``WarmStarts``: starts nothing (or keeps the servers it is lent), remembers
    whether it was closed."""

    made: list[FakeWarmStarts] = []

    def __init__(self, course_root: Path, assignment: str, limits: Limits, base: Path, waiting, servers=None) -> None:
        self.course_root, self.base, self.closed = course_root, base, False
        self.servers = servers if servers is not None else BatchServers()
        FakeWarmStarts.made.append(self)

    def close(self) -> None:
        self.closed = True


def course_bytes(config: bytes = b"c") -> dict:
    return {"assignment": ASSIGNMENT, "config": config, "release": {f"{ASSIGNMENT}.ipynb": b"{}"}, "template": b"gradebook"}


@pytest.fixture
def two_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_courses, "_StreamWarmStarts", FakeWarmStarts)
    host = host_share.private_folder(tmp_path / "host")
    first, second = worker_courses.WarmCourses(tmp_path / "first", host), worker_courses.WarmCourses(tmp_path / "second", host)
    yield first, second
    first.close()
    second.close()


def test_the_second_worker_of_a_host_borrows_the_first_ones_course_and_servers(two_workers, tmp_path):
    first, second = two_workers
    with first.lease(course_bytes(), LIMITS) as owned, second.lease(course_bytes(), LIMITS) as borrowed:
        assert not owned.borrowed and borrowed.borrowed
        assert borrowed.base == owned.base and owned.base.is_relative_to(tmp_path / "host")
        assert borrowed.copy == owned.copy and (owned.copy.root / "nbgrader_config.py").read_bytes() == b"c"
        assert isinstance(borrowed.warm.servers, host_share.BorrowedServers)
        assert borrowed.warm.base == owned.warm.base, "the borrower's spares and work folders go beside the owner's"
    assert list((tmp_path / "first").glob("*")) == list((tmp_path / "second").glob("*")) == [], "nothing kept privately"
    with first.lease(course_bytes(b"other"), LIMITS) as other:
        assert other.base != owned.base, "another course has a slot of its own"


def test_an_owner_that_closes_waits_for_the_borrowers_running_task_then_hands_the_course_over(two_workers, monkeypatch):
    first, second = two_workers
    with first.lease(course_bytes(), LIMITS) as owned:
        owner_starts = owned.warm
    finished, closed_at = threading.Event(), []

    def borrowers_task():
        with second.lease(course_bytes(), LIMITS) as borrowed:
            assert borrowed.borrowed
            time.sleep(1.0)
            finished.set()

    task = threading.Thread(target=borrowers_task)
    task.start()
    time.sleep(0.3)
    first.close()
    closed_at.append(finished.is_set())
    task.join()
    assert closed_at == [True], "the owner stopped its servers while a borrower's task ran on them"
    assert owner_starts.closed and not owned.base.exists()

    with second.lease(course_bytes(), LIMITS) as again:
        assert not again.borrowed, "the borrower found the course unowned and owns it now"
        assert again.base == owned.base and (again.copy.root / "nbgrader_config.py").read_bytes() == b"c"


def test_an_owner_waits_for_a_stuck_borrower_only_so_long(two_workers, monkeypatch):
    first, second = two_workers
    monkeypatch.setattr(host_share, "CLOSE_WAIT_SECONDS", 0.5)
    with first.lease(course_bytes(), LIMITS):
        pass
    with second.lease(course_bytes(), LIMITS) as borrowed:
        start = time.monotonic()
        first.close()
        assert time.monotonic() - start < 5
        assert not borrowed.serves(), "its servers were withdrawn while it ran"


def test_a_worker_whose_owner_was_killed_owns_the_course(two_workers):
    first, second = two_workers
    with first.lease(course_bytes(), LIMITS) as owned:
        pass
    servers = owned.slot.root / host_share.SERVERS_FILE
    published = json.loads(servers.read_text())
    owned.slot._owner_lock.close()  # as when its process is killed: the lock goes, the files stay
    owned.slot._owner_lock = None
    servers.write_text(json.dumps({**published, "owner_started": published["owner_started"] - 100}))  # a process since gone
    with second.lease(course_bytes(), LIMITS) as taken:
        assert not taken.borrowed


def test_a_task_graded_on_servers_that_went_away_is_graded_again_cold(two_workers, monkeypatch):
    first, second = two_workers
    with first.lease(course_bytes(), LIMITS):
        pass
    runs = []

    def execute(copy, assignment, job, limits, base, warm):
        runs.append(warm)
        if len(runs) == 1:
            first.close()  # the owner goes away while the borrower's task runs (after CLOSE_WAIT_SECONDS)
        return {"status": "graded", "started": "spare" if warm is not None else "cold"}

    monkeypatch.setattr(host_share, "CLOSE_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(dask_tasks, "_warm_courses", lambda: second)
    monkeypatch.setattr(dask_tasks, "_execute", execute)
    result = dask_tasks.grade_on_worker({**course_bytes(), "task_slots": {}}, {"student": "ada", "submitted": {}, "limits": LIMITS.__dict__})
    assert result == {"status": "graded", "started": "cold"}
    assert [warm is not None for warm in runs] == [True, False]


@pytest.mark.parametrize("unsafe", ["link", "open to others", "another user's"])
def test_a_host_folder_that_others_could_change_is_not_used(tmp_path, unsafe):
    folder = tmp_path / "host"
    if unsafe == "link":
        (tmp_path / "elsewhere").mkdir()
        folder.symlink_to(tmp_path / "elsewhere")
    elif unsafe == "open to others":
        folder.mkdir()
        folder.chmod(0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can make a folder of another user's")
        folder.mkdir()
        os.chown(folder, 65534, 65534)
    assert host_share.private_folder(folder) is None


def test_a_worker_without_a_usable_host_folder_keeps_its_courses_privately(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_courses, "_StreamWarmStarts", FakeWarmStarts)
    courses = worker_courses.WarmCourses(tmp_path / "worker", tmp_path / "host")
    (tmp_path / "host").mkdir(mode=0o777)
    (tmp_path / "host").chmod(0o777)
    with courses.lease(course_bytes(), LIMITS) as warm:
        assert warm.slot is None and warm.base.is_relative_to(tmp_path / "worker")
    courses.close()
    assert list((tmp_path / "worker").iterdir()) == []


def test_a_process_that_finds_the_data_staged_by_another_uses_it_as_it_is(tmp_path, mnist_folder, monkeypatch):
    """The workers of a host stage the shared data into the same folder: the second finds the first one's
    complete copy and neither removes nor copies it again (its kernels may be reading it)."""
    from autograder.grading.sandbox import layout, shared_data

    shared = tmp_path / "base" / layout.SHARED
    staged = shared_data.stage_data(shared, hard_links=False)
    mark = staged / "seen-by-a-kernel"
    mark.write_text("a file that a new copy would not have")
    monkeypatch.setattr(shared_data, "_staged", {})  # another process: it has staged nothing itself
    assert shared_data.stage_data(shared, hard_links=False) == staged
    assert mark.exists(), "the complete copy was made again"
    (shared / shared_data.STAGED_MARK).unlink()  # a copy that was never completed (its maker died)
    monkeypatch.setattr(shared_data, "_staged", {})
    assert shared_data.stage_data(shared, hard_links=False) == staged and (shared / shared_data.STAGED_MARK).is_file()
    assert not mark.exists(), "an incomplete copy is made again"
    assert (shared / shared_data.STAGING_LOCK).stat().st_mode & 0o077 == 0, "a kernel of another user could hold the lock"
    assert sorted(p.relative_to(staged) for p in staged.rglob("*")) == sorted(p.relative_to(mnist_folder) for p in mnist_folder.rglob("*")
                                                                          if p.suffix != ".pt")


def test_what_a_killed_owner_left_is_removed_and_nothing_in_use(two_workers, tmp_path):
    first, second = two_workers
    host = tmp_path / "host"
    with first.lease(course_bytes(b"in use"), LIMITS) as owned:
        pass
    with second.lease(course_bytes(b"abandoned"), LIMITS) as abandoned:
        pass
    abandoned.slot._owner_lock.close()  # its owner was killed: the lock goes, the folder stays
    abandoned.slot._owner_lock = None
    with first.lease(course_bytes(b"borrowed while its owner died"), LIMITS) as running_owner:
        pass
    with second.lease(course_bytes(b"borrowed while its owner died"), LIMITS) as running:
        running_owner.slot._owner_lock.close()
        running_owner.slot._owner_lock = None
        assert host_share.remove_abandoned(host) == [abandoned.base], "only the slot nobody owns or uses"
    assert owned.base.is_dir() and running.base.is_dir() and not abandoned.base.exists()
    assert (abandoned.slot.root / host_share.OWNER_LOCK).is_file() and not (abandoned.slot.root / host_share.SERVERS_FILE).exists()
    assert host_share.remove_abandoned(host) == [running.base], "once its last task ended"
