"""Tie a process's life to its parent's: when the grader dies, everything it started dies too.

Every grading process runs in a session of its own (so that it can be killed as a whole), which a SIGKILL of
the grader's process group does not reach. One mechanism ties each to its parent:

- ``die_with_parent``, where the platform has a parent-death signal (Linux's ``prctl(PR_SET_PDEATHSIG)``): the
  operating system sends SIGKILL to the process when the *thread* that started it ends, however it ends. Call it
  between fork and exec (``processes.child_setup``), or first thing in a forked child.
- ``watch_parent``, the fallback where it has none, or where the starting thread is not known (a process that
  Jupyter starts): a daemon thread that notices the parent is gone (the process was adopted) within
  ``PARENT_POLL_SECONDS`` and ends this process.

A process that stands between its parent and the process doing the work (the kernel's stand-in, the sandbox's
waiter) passes signals on with ``forward_signals``. This file is standalone: it imports only the standard
library, and loads the C library when imported (a forked child must not load libraries).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 0.5
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""Loaded at import: between fork and exec a child must not load libraries."""


def die_with_parent(parent: int) -> bool:
    """Ask for SIGKILL when the parent dies; die now if ``parent`` already died.

    Args:
        parent: the pid of the process that forked this one, taken before the fork (if it died before the
            request was made, this process was already adopted and the request alone would never fire). A parent
            in an enclosing PID namespace shows as 0 and counts as alive.

    Returns:
        True when the signal is armed; False where the platform has none (the caller then relies on
        ``watch_parent``, or on its own bounds).

    Raises:
        OSError: the operating system refused the request.
    """
    if _LIBC is None:
        return False
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() not in (parent, 0):
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(1)  # the first process of a PID namespace ignores signals sent from inside it
    return True


def watch_parent(on_death: Callable[[], None] | None = None, poll_seconds: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that calls ``on_death`` (default: exit at once) when this process's parent ends."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        (on_death or (lambda: None))()
        os._exit(1)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def forward_signals(pid: int, signals: tuple[int, ...] = FORWARDED_SIGNALS) -> Callable[[int, object], None]:
    """Pass ``signals`` received by this process on to ``pid``; returns the handler (call it to send one more)."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for signum in signals:
        signal.signal(signum, forward)
    return forward


__all__ = ["FORWARDED_SIGNALS", "die_with_parent", "forward_signals", "watch_parent"]
