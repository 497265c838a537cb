"""Owned folders (``processes.owned_folder``) as a process that has ended would have left them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autograder.grading import processes


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def made_by(pid: int, base: Path, prefix: str = processes.CHANNEL_PREFIX) -> Path:
    """An owned folder in ``base`` as process ``pid`` would have made it."""
    mine = processes.owned_folder(prefix, base=base)
    theirs = base / mine.name.replace(f"-{os.getpid()}-", f"-{pid}-", 1)
    mine.rename(theirs)
    return theirs
