"""Tie a grading child's life to its parent's: when the grader dies, its sandboxed children die too.

The grader starts the checker and the nbgrader process in sessions of their own, so that each can be
killed as a whole; a SIGKILL of the grader's process group therefore does not reach them. On Linux the
parent-death signal (``prctl(PR_SET_PDEATHSIG)``) makes the kernel send SIGKILL to the child when the
thread that started it ends. Elsewhere ``die_with_parent`` does nothing; the checker then relies on its own
watch of its parent (``checker._exit_with_parent``), and the nbgrader process runs on until its notebook is
done (each cell bounded by the cell timeout).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""Loaded at import: between fork and exec a child must not load libraries."""


def die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent dies; die now if ``parent`` already died. Call between fork and exec.

    Args:
        parent: the pid of the process that forked this one, taken before the fork (if it died before the
            request was made, this process was already adopted and the request alone would never fire).
    """
    if _LIBC is None:
        return
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
