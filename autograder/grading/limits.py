"""What one submission may use, and the environment its checker gets from that."""

from __future__ import annotations

import os
from dataclasses import dataclass

MATH_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Limits:
    """Per-submission limits; past one, the submission is stopped and gets a status naming it."""

    cell_timeout: int = 300
    """Seconds one cell may run (nbgrader's ``Execute.timeout``); the cell then scores 0."""
    cpu_seconds: int = 900
    """CPU seconds for the whole submission (grader process and kernel together)."""
    memory_mb: int = 6144
    """Resident memory of the whole process tree, in MiB."""
    wall_seconds: int = 1800
    """Wall-clock seconds for the whole submission."""
    threads: int = 0
    """CPU threads the kernel's math libraries may use (``OMP_NUM_THREADS``); the pipeline sets cores // jobs so
    that parallel kernels do not fight over the cores."""
    output_mb: int = 64
    """MiB the notebook may print, and MiB of files it may write in its folder."""
    processes: int = 64
    """Processes the submission may run at once (kernel, grading and checker processes included)."""
    isolate: bool = True
    """Run each kernel in a namespace sandbox of its own (``layout.build_sandbox``); False only with
    ``--unsafe-no-sandbox``."""

    @property
    def memory_backstop_bytes(self) -> int:
        """Writable memory each kernel process may map (RLIMIT_DATA, set by the operating system): half again
        ``memory_mb``. The watcher reports a process tree over ``memory_mb``; this stops a single process that
        outruns the watcher, with a MemoryError in its cell."""
        return self.memory_mb * 2**20 * 3 // 2

    @property
    def output_bytes(self) -> int:
        """``output_mb`` in bytes."""
        return self.output_mb * 2**20


def checker_env(limits: Limits) -> dict[str, str]:
    """The checker's environment: this process's, with the kernels' number of math threads."""
    env = dict(os.environ)
    if limits.threads > 0:
        env.update({name: str(limits.threads) for name in MATH_THREAD_VARIABLES})
    return env
