"""What the kernels of a batch share read-only, staged once into the batch's shared folder: the MNIST sample and
matplotlib's font cache.

Every process that builds sandboxes in one folder stages into the same shared folder (the grading threads of a
local batch; the Dask workers of one host, see ``host_share``). Staging is serialized across threads and
processes by a lock file in that folder, and a complete copy of the sample is marked (``STAGED_MARK``), so that no
process removes or copies again what another one's kernels may be reading.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_staged: dict[Path, Path | None] = {}
_staging = threading.Lock()
STAGED_MARK = ".staged"
"""Written beside the MNIST sample's copy once it is complete."""
STAGING_LOCK = ".staging.lock"


@contextmanager
def _staging_in(into: Path) -> Iterator[None]:
    """Hold the staging of ``into``: against this process's other threads, and against the other processes that
    stage into the same folder (the Dask workers of one host sharing a course, see ``host_share``). The lock file
    is this user's alone: a kernel running as another user cannot open it, so cannot hold it."""
    with _staging:
        into.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(into / STAGING_LOCK, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def stage_data(into: Path, hard_links: bool) -> Path | None:
    """A copy of the provisioned MNIST sample under ``into``, made once and shared by the batch's kernels (and by
    every process staging into ``into``: a complete copy is never made again).

    With ``hard_links``, the files are hard links to the provisioned ones (a quarter of a CPU second for the
    14,434 images instead of about 5 for copies): the caller asks for them only where no kernel can write the
    shared files (see ``layout._stage_kernel_home``).
    """
    from autograder.data import mnist_sample_dir

    with _staging:
        if into in _staged and (_staged[into] is None or _staged[into].is_dir()):
            return _staged[into]
    with _staging_in(into):
        source = mnist_sample_dir()
        if not source.is_dir():
            _staged[into] = None
            return None
        target, complete = into / "mnist_sample", into / STAGED_MARK
        if complete.is_file() and target.is_dir():
            _staged[into] = target
            return target

        def link_or_copy(src: str, dst: str) -> None:
            try:
                (os.link if hard_links else shutil.copy2)(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns("*.pt"))
        for folder in (into, *[Path(root) for root, _, _ in os.walk(target)]):
            os.chmod(folder, 0o755)
        complete.touch()
        _staged[into] = target
        return target


FONT_CACHE = "fontlist-*.json"
"""matplotlib's font cache in its configuration folder."""


def stage_matplotlib(into: Path) -> Path:
    """A matplotlib configuration folder with its font cache, made once per batch.

    Building the cache runs ``fc-list``; the kernels, which may not start processes, copy it instead. It comes from
    this process's own matplotlib folder (``MPLCONFIGDIR``; ``autograder grade`` sets the course's
    ``grading/.cache/matplotlib``, see ``class_report.matplotlib_in_the_course``), built there first when that has
    none: a course builds it once, for its batches' kernels and its class reports alike. Without ``MPLCONFIGDIR``
    it is built in the batch's folder.
    """
    with _staging_in(into):
        target = into / "matplotlib"
        if not any(target.glob(FONT_CACHE)):
            target.mkdir(parents=True, exist_ok=True)
            own = Path(os.environ["MPLCONFIGDIR"]) if os.environ.get("MPLCONFIGDIR") else target
            if not any(own.glob(FONT_CACHE)):
                own.mkdir(parents=True, exist_ok=True)
                subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ, "MPLCONFIGDIR": str(own)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
            if own != target:
                for cache in own.glob(FONT_CACHE):
                    shutil.copyfile(cache, target / cache.name)
                    os.chmod(target / cache.name, 0o644)  # kernels of another user read it
        return target
