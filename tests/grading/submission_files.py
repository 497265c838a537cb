"""Writing a student's notebook where nbgrader's layout expects it, for the grading tests' batches."""

from __future__ import annotations

from pathlib import Path

import nbformat


def put_submission(folder: Path, student: str, nb: nbformat.NotebookNode, assignment: str) -> Path:
    """Write ``nb`` as ``folder/<student>/<assignment>/<assignment>.ipynb`` (folders made as needed); return its path."""
    target = folder / student / assignment / f"{assignment}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target
