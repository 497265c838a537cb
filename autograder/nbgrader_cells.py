"""What nbgrader's metadata says about a notebook cell, read with nbgrader's own helpers.

Every module that asks "is this a test cell?", "which blank is this?" or "how many points?" asks here, so
the ``metadata.nbgrader`` layout is read in one place. The flags come from ``nbgrader.utils`` (``is_grade``,
``is_solution``, ``is_locked``, ``is_task``); cells may be ``nbformat.NotebookNode`` objects or the plain
dicts of a notebook read with ``json`` (a submission that is not yet known to be valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nbformat
from nbgrader.utils import is_grade, is_locked, is_solution, is_task

TEST_PREFIX = "test_"

__all__ = [
    "TEST_PREFIX", "as_cell", "blank_of", "grade_id", "is_grade", "is_locked", "is_solution", "is_task",
    "nbgrader_metadata", "points",
]


def as_cell(cell: Mapping[str, Any]) -> nbformat.NotebookNode:
    """The cell as a ``NotebookNode`` (nbgrader's helpers read ``cell.metadata``); a node is returned as it is."""
    if isinstance(cell, nbformat.NotebookNode):
        return cell
    metadata = cell.get("metadata")
    return nbformat.from_dict({**cell, "metadata": metadata if isinstance(metadata, Mapping) else {}})


def nbgrader_metadata(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's ``metadata.nbgrader`` as a dict; ``{}`` when it has none or it is not a dict."""
    metadata = cell.get("metadata")
    found = metadata.get("nbgrader") if isinstance(metadata, Mapping) else None
    return dict(found) if isinstance(found, Mapping) else {}


def grade_id(cell: Mapping[str, Any]) -> str | None:
    """The cell's nbgrader ``grade_id``, or None when it has none."""
    found = nbgrader_metadata(cell).get("grade_id")
    return None if found is None else str(found)


def points(cell: Mapping[str, Any]) -> float:
    """The points of a grade cell (0.0 for any other cell)."""
    return float(nbgrader_metadata(cell).get("points", 0) or 0) if is_grade(as_cell(cell)) else 0.0


def blank_of(cell: Mapping[str, Any]) -> str | None:
    """The blank a test cell checks (its ``grade_id`` without ``test_``), or None for any other cell.

    A test cell is a code cell that is a grade cell and not a solution cell.
    """
    node = as_cell(cell)
    if node.get("cell_type") != "code" or not is_grade(node) or is_solution(node):
        return None
    return (grade_id(node) or "").removeprefix(TEST_PREFIX)
