"""How the student's kernel is kept from the hidden checks and the reference inside Gradescope's container.

Where a namespace sandbox can be made (bubblewrap, user namespaces or root), every kernel runs in one, as under
``autograder grade``: the zip's ``source/`` folder, the kit's package and the course are absent from its
filesystem. Gradescope's container may refuse namespaces; then the kernel is graded with the pipeline's fallback
(``--unsafe-no-sandbox``): as root, the kernel drops to the unprivileged user ``nobody`` before its first cell, under
the audit hook, and ``lock_down`` first makes those folders readable by root alone (mode 0700), so not even the
kernel's native code (``numpy.fromfile``, ``torch.from_file``) can open a file in them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PRIVATE = 0o700


@dataclass(frozen=True)
class Isolation:
    """How this container isolates the kernel.

    Attributes:
        sandboxed: kernels run in a namespace sandbox.
        description: one sentence for the instructor (``extra_data`` and the script's stdout).
        note: one neutral line for the results' top-level output, or "" (the sandboxed case).
    """

    sandboxed: bool
    description: str
    note: str = ""


def lock_down(paths: list[Path]) -> list[Path]:
    """Make each existing path readable by its owner alone (mode 0700); returns those changed."""
    changed = []
    for path in paths:
        if path.exists():
            os.chmod(path, PRIVATE)
            changed.append(path)
    return changed


def choose_isolation(private: list[Path]) -> Isolation:
    """The namespace sandbox where one can be made; else ``lock_down(private)`` and the fallback, described.

    ``private``: the folders the kernel must not read (the zip's ``source/`` and the package inside it; a package
    installed elsewhere, as in a development clone, is left as it is).
    """
    from autograder.grading.pipeline import no_sandbox_reason
    from autograder.grading.sandbox.layout import SANDBOX_USER, sandbox_user

    reason = no_sandbox_reason()
    if reason is None:
        return Isolation(True, "each kernel ran in a namespace sandbox (bubblewrap): the grading files were absent from it")
    locked = lock_down(private)
    user = sandbox_user(isolated=False)
    folders = ", ".join(str(path) for path in locked)
    if user is not None:
        description = (f"no namespace sandbox here ({reason}): the kernel ran as the unprivileged user {SANDBOX_USER} under the "
                       f"audit hook, and {folders} were readable by root alone (mode 0700)")
    else:
        description = (f"no namespace sandbox here ({reason}), and the kernel ran as the grader's own user "
                       f"(uid {os.geteuid()}): only the audit hook kept its Python code from {folders}")
    return Isolation(False, description, "Graded with the fallback isolation of this grading environment.")
