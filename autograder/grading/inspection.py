"""Whether a notebook file is a gradable copy of one assignment's notebook, read as JSON before anything trusts it.

A notebook is gradable when it is valid nbformat 4 JSON with a list of cells and shares at least one answer or
test cell (by ``grade_id``) with the assignment's release notebook. Otherwise ``NotebookInspector.problem`` gives
the status and a sentence naming the file: corrupt, not an nbgrader notebook, or another assignment's (named
when another release notebook of the course shares its cells).
"""

from __future__ import annotations

import json
from pathlib import Path

from autograder.grading.results import Status
from autograder.nbgrader_cells import nbgrader_metadata

NOTEBOOK_SUFFIX = ".ipynb"


def graded_ids(data: dict) -> tuple[set[str], bool]:
    """The grade_ids of the answer and test cells of a notebook read as JSON, and whether any cell has nbgrader
    metadata."""
    ids, any_nbgrader = set(), False
    for cell in data.get("cells", []):
        meta = nbgrader_metadata(cell)
        if not meta:
            continue
        any_nbgrader = True
        if (meta.get("solution") or meta.get("grade")) and meta.get("grade_id"):
            ids.add(str(meta["grade_id"]))
    return ids, any_nbgrader


def _read(notebook: Path) -> tuple[dict | None, str]:
    """The notebook's JSON, or None and why it cannot be read as a notebook."""
    name = notebook.name
    try:
        data = json.loads(notebook.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        return None, f"{name} is not a text file: {error}"
    except json.JSONDecodeError as error:
        return None, f"{name} is not valid JSON: {error}"
    except OSError as error:
        return None, f"{name} cannot be read: {error.strerror or error}"
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        version = data.get("nbformat") if isinstance(data, dict) else None
        return None, f"{name} is not an nbformat 4 notebook (nbformat: {version!r})"
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) and "cell_type" in cell for cell in cells):
        return None, f"{name} has no valid list of cells"
    return data, ""


class NotebookInspector:
    """Checks notebooks against one assignment's release notebook.

    Args:
        assignment: the assignment's name.
        expected_ids: the grade_ids of the release notebook's answer and test cells (``graded_ids``).
        release_notebook: ``release/<assignment>/<notebook>``; its sibling folders are the course's other
            assignments, read only to name the one a wrong notebook belongs to.
    """

    def __init__(self, assignment: str, expected_ids: set[str], release_notebook: Path) -> None:
        self.assignment = assignment
        self.expected_ids = expected_ids
        self.release_notebook = Path(release_notebook)
        self._others: dict[str, set[str]] | None = None

    def problem(self, notebook: Path) -> tuple[Status | None, str]:
        """``(None, "")`` when ``notebook`` can be graded, else its status and a sentence naming the file."""
        name = notebook.name
        data, unreadable = _read(notebook)
        if data is None:
            return Status.CORRUPT, unreadable
        ids, any_nbgrader = graded_ids(data)
        if not any_nbgrader:
            return Status.WRONG_ASSIGNMENT, f"{name} has no nbgrader cells: it is not a copy of the {self.assignment} notebook"
        if ids & self.expected_ids:
            return None, ""
        other = self._guess(ids)
        listed = ", ".join(sorted(ids)[:6]) or "none"
        if other:
            return Status.WRONG_ASSIGNMENT, f"{name} is a notebook of {other}, not {self.assignment} (its graded cells: {listed})"
        return Status.WRONG_ASSIGNMENT, f"{name} has none of the graded cells of {self.assignment} (its graded cells: {listed})"

    def _guess(self, ids: set[str]) -> str | None:
        """The other assignment of the course whose release notebook shares the most grade_ids with ``ids``."""
        if self._others is None:
            self._others = self._other_assignments()
        scores = {name: len(ids & other) for name, other in self._others.items()}
        best = max(scores, key=lambda name: scores[name], default=None)
        return best if best is not None and scores[best] > 0 else None

    def _other_assignments(self) -> dict[str, set[str]]:
        """Per other assignment of the course, the grade_ids of its release notebook (those that can be read)."""
        others: dict[str, set[str]] = {}
        release_root = self.release_notebook.parent.parent
        folders = sorted(p for p in release_root.iterdir() if p.is_dir()) if release_root.is_dir() else []
        for folder in folders:
            if folder.name == self.release_notebook.parent.name:
                continue
            for candidate in folder.glob(f"*{NOTEBOOK_SUFFIX}"):
                try:
                    others[folder.name] = graded_ids(json.loads(candidate.read_text(encoding="utf-8")))[0]
                except (OSError, ValueError, AttributeError):
                    continue
        return others
