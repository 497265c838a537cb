"""One course's fork servers, shared by the Dask workers of one machine.

Several Dask worker processes often run on one host (a ``LocalCluster``, ``dask-worker --nworkers``). Started
per worker, each would import the kernel's libraries, torch and nbgrader into fork servers of its own: seconds
of CPU per worker that the host's cores then spend again. Instead, the workers of a host that grade the same
course under the same limits share one ``HostSlot``, a private folder of the user's under the temporary folder
(``host_folder``):

- the first worker to open the slot *owns* it (an exclusive ``flock`` on ``owner.lock``, held while it keeps
  the course): it writes the course's copy into ``base/``, starts the fork servers there and publishes their
  sockets and pids in ``servers.json``;
- the other workers *borrow* them (``BorrowedServers``): their submissions' work folders and spares are made in
  the same ``base/``, and each one's processes are forked from the owner's servers, with a sandbox, processes
  and limits of its own, as in local grading;
- every task of every worker holds a shared ``flock`` on ``users.lock`` while it runs. Closing, the owner first
  withdraws ``servers.json`` (no task starts on its servers any more), waits for those tasks to end (at most
  ``CLOSE_WAIT_SECONDS``), then stops its servers and removes ``base/``. The next task of a borrower finds the
  slot unowned and owns it.

A borrowed task whose owner went away while it ran (a killed worker takes its servers with it) is not served
any more (``HostSlot.serves``): ``dask_tasks`` grades it again with a cold start. What a killed owner leaves in
its slot is removed by the next worker that starts on the host (``remove_abandoned``), or by the slot's next owner.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import psutil

from autograder.grading.servers import BatchServers, ForkServer
from autograder.grading.trusted_forks import CHECKER, NBGRADER_WORKER, TrustedForks

HOST_PREFIX = "autograder-host-"
OWNER_LOCK, USERS_LOCK, SERVERS_FILE, BASE = "owner.lock", "users.lock", "servers.json", "base"
CLOSE_WAIT_SECONDS = 120.0
"""How long an owner that closes waits for the tasks running on its servers; a task still running after that
is graded again cold by its worker."""
PUBLISH_WAIT_SECONDS = 30.0
"""How long a worker waits for the owner of a slot to publish its servers (or to let go of it) before keeping
the course privately, with servers of its own."""


def private_folder(path: Path) -> Path | None:
    """``path`` as a folder that only this user can list or change (made here if missing; others may only pass
    through it, as they must to reach a sandboxed kernel's folder); None when it is anything else: a link,
    another user's, or readable or writable by others."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = os.lstat(path)
        if stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid() and not found.st_mode & 0o066:
            os.chmod(path, 0o711)
            return path
    except OSError:
        pass
    return None


def _private_file(path: Path) -> IO:
    """``path`` opened for appending, made readable by this user only when it is new (locks: another user who
    could open them could hold them)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600), "a")


def host_folder() -> Path | None:
    """This user's folder of shared courses on this machine, under the temporary folder; None when it is unsafe
    to use (``private_folder``)."""
    return private_folder(Path(tempfile.gettempdir()) / f"{HOST_PREFIX}{os.getuid()}")


@dataclass(frozen=True)
class Published:
    """What an owner publishes: its servers' sockets and pids (None: that server did not start), and who it is."""

    generation: str
    owner_pid: int
    owner_started: float
    kernels: str | None
    kernels_pid: int | None
    checkers: str | None
    checkers_pid: int | None
    graders: str | None
    graders_pid: int | None

    @classmethod
    def of(cls, servers: BatchServers) -> Published:
        me = psutil.Process()
        kernels, checkers, graders = servers.kernels, servers.checkers, servers.graders
        return cls(
            uuid.uuid4().hex, me.pid, me.create_time(),
            str(kernels.socket) if kernels else None, kernels.process.pid if kernels else None,
            str(checkers.socket_path) if checkers else None, checkers.process.pid if checkers else None,
            str(graders.socket_path) if graders else None, graders.process.pid if graders else None,
        )

    def owner_alive(self) -> bool:
        try:
            return abs(psutil.Process(self.owner_pid).create_time() - self.owner_started) < 0.01
        except psutil.Error:
            return False


class BorrowedProcess:
    """A server process of another worker, answering what ``ForkServer`` and ``TrustedForks`` ask of theirs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            if psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            pass
        self.returncode = -9
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.poll()

    def kill(self) -> None:
        """Not this process's to kill: its owner stops it."""


class BorrowedServers(BatchServers):
    """The servers an owner published (``Published``); closing them leaves them to their owner."""

    @classmethod
    def of(cls, published: Published) -> BorrowedServers:
        def trusted(socket: str | None, pid: int | None, module: str) -> TrustedForks | None:
            return None if socket is None or pid is None else TrustedForks(Path(socket), BorrowedProcess(pid), module)

        kernels = None
        if published.kernels is not None and published.kernels_pid is not None:
            kernels = ForkServer(Path(published.kernels), BorrowedProcess(published.kernels_pid))
        return cls(kernels, trusted(published.checkers, published.checkers_pid, CHECKER),
                   trusted(published.graders, published.graders_pid, NBGRADER_WORKER))

    def close(self) -> None:
        pass


class HostSlot:
    """The folder on this host of one course under one set of limits (``key``), in ``folder`` (``host_folder``).

    Thread-safe for the tasks of one worker; each worker process opens a slot of its own on the same folder.
    """

    def __init__(self, folder: Path, key: str) -> None:
        self.root = folder / key
        self.base = self.root / BASE
        self._owner_lock: IO | None = None

    @property
    def owned(self) -> bool:
        return self._owner_lock is not None

    def usable(self) -> bool:
        """Whether the host's folder and the slot's are this user's alone to change (``private_folder``)."""
        return private_folder(self.root.parent) is not None and private_folder(self.root) is not None

    def try_to_own(self) -> bool:
        """Own the slot if no live worker does; its ``base/`` is then emptied, for this owner to fill."""
        if not self.usable():
            return False
        lock = _private_file(self.root / OWNER_LOCK)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._owner_lock = lock
        (self.root / SERVERS_FILE).unlink(missing_ok=True)  # left by an owner that was killed
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(mode=0o700)
        return True

    def publish(self, servers: BatchServers) -> Published:
        """(Owner) Offer ``servers`` to the other workers of the host."""
        published = Published.of(servers)
        partial = self.root / f".{SERVERS_FILE}.{os.getpid()}"
        with _private_file(partial) as file:
            file.truncate(0)
            file.write(json.dumps(asdict(published)))
        partial.replace(self.root / SERVERS_FILE)
        return published

    def published(self) -> Published | None:
        """The servers a live owner offers now."""
        try:
            found = Published(**json.loads((self.root / SERVERS_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return found if found.owner_alive() else None

    def serves(self, generation: str) -> bool:
        """Whether the servers of ``generation`` are still offered by their live owner."""
        found = self.published()
        return found is not None and found.generation == generation

    @contextmanager
    def task(self) -> Iterator[None]:
        """Hold the slot for one task (its owner closes only after the task ends, or after ``CLOSE_WAIT_SECONDS``)."""
        with _private_file(self.root / USERS_LOCK) as users:
            fcntl.flock(users, fcntl.LOCK_SH)
            yield

    def close(self, stop: Callable[[], None]) -> None:
        """(Owner) Withdraw the servers, wait for the tasks on them, ``stop()`` them, remove ``base/`` and let go."""
        if self._owner_lock is None:
            return
        (self.root / SERVERS_FILE).unlink(missing_ok=True)
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        with _private_file(self.root / USERS_LOCK) as users:
            while True:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.1)
            try:
                stop()
                shutil.rmtree(self.base, ignore_errors=True)
            finally:
                self._owner_lock.close()
                self._owner_lock = None


def remove_abandoned(folder: Path) -> list[Path]:
    """Empty the slots in ``folder`` (``host_folder``) that no live worker owns or uses: the course's folder and
    servers file that a killed owner left. Their lock files stay (a lock file removed while another process opens
    it would let two workers own one slot).

    Returns:
        The ``base/`` folders removed.
    """
    removed = []
    for root in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not (root / OWNER_LOCK).is_file() or private_folder(root) is None:
            continue
        with _private_file(root / OWNER_LOCK) as owner, _private_file(root / USERS_LOCK) as users:
            try:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # owned, or a task still runs there
            (root / SERVERS_FILE).unlink(missing_ok=True)
            if (root / BASE).exists():
                shutil.rmtree(root / BASE, ignore_errors=True)
                removed.append(root / BASE)
    return removed
