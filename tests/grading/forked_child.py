"""Running a test's body in a forked child that joins a namespace sandbox, and reading back what it saw."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable


def findings_of_forked_child(holder: Any, body: Callable[[], dict], findings: Path) -> dict:
    """Fork; the child runs ``body`` (which joins ``holder``'s sandbox itself) and writes the dict it returns to
    ``findings`` as JSON, a path writable inside the sandbox at the same name. ``holder`` is closed once the child
    has ended, whatever happened.

    Returns:
        The child's findings.

    Raises:
        AssertionError: the child did not exit 0 (``body`` raised, or the child was killed).
    """
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked process
            code = 3
            try:
                findings.write_text(json.dumps(body()))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        holder.close()
    assert os.waitstatus_to_exitcode(status) == 0, f"the forked child ended with {os.waitstatus_to_exitcode(status)}"
    return json.loads(findings.read_text())
