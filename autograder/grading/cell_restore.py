"""Put back the grading metadata of a submitted notebook's cells from the released assignment.

A student can edit a cell's nbgrader metadata (in Jupyter's cell toolbar, or by editing the JSON): duplicate a
test cell, turn an answer cell into a graded cell worth 10 points, make a test cell ungraded, rename its
``grade_id`` or delete its metadata. nbgrader then refuses the notebook or scores it wrongly. ``restore``
gives every cell the metadata the assignment says it has, so that the honest parts are graded as released:

- a cell whose ``grade_id`` the assignment has (its first occurrence) gets that cell's flags and points back;
- a later cell with the same ``grade_id`` (a copy) becomes a plain, ungraded cell;
- a cell with an unknown ``grade_id``, or none, is matched to a tracked cell missing from the submission when
  its visible source is that cell's, or, for a cell that still carries nbgrader metadata, when it stands where
  that cell stood (first after the tracked cell that precedes it in the release); else it becomes a plain cell;
- a tracked cell found nowhere stays missing (nbgrader scores a missing test cell 0).

Nothing here reads a file: the assignment's cells come from the release notebook (``tracked_cells``) or from
nbgrader's gradebook (``nbgrader_ext.RestoreCellMetadata``), so the coordinator's report and nbgrader's
scoring apply the same rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import nbformat

from autograder.nbgrader_cells import grade_id, nbgrader_metadata

HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
FLAGS = ("grade", "solution", "locked", "task")


@dataclass(frozen=True)
class TrackedCell:
    """One cell the assignment grades or tracks, as released.

    Attributes:
        grade_id: its nbgrader id (``test_mnist_loss``).
        cell_type: ``code`` or ``markdown``.
        source: its source as the student received it (hidden tests removed).
        grade, solution, locked, task: nbgrader's flags.
        points: its points when it is a graded cell, else None.
    """

    grade_id: str
    cell_type: str
    source: str
    grade: bool
    solution: bool
    locked: bool
    task: bool = False
    points: float | None = None

    @property
    def kind(self) -> str:
        if self.grade and not self.solution:
            return "test cell"
        return "answer cell" if self.solution else "locked cell"


def visible_source(source: str) -> str:
    """``source`` without its hidden-tests region (as nbgrader's ClearHiddenTests removes it), stripped."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept).strip()


def tracked_cells(release: nbformat.NotebookNode) -> list[TrackedCell]:
    """The tracked cells of a released notebook, in order."""
    cells = []
    for cell in release.cells:
        meta = nbgrader_metadata(cell)
        if "grade_id" not in meta or not any(meta.get(flag) for flag in FLAGS):
            continue
        cells.append(TrackedCell(
            meta["grade_id"], cell.cell_type, visible_source(cell.source), bool(meta.get("grade")), bool(meta.get("solution")),
            bool(meta.get("locked")), bool(meta.get("task")), float(meta["points"]) if meta.get("grade") else None,
        ))
    return cells


def _put_back(cell: nbformat.NotebookNode, wanted: TrackedCell) -> None:
    """Set the cell's id, flags and points to the release's, keeping its other nbgrader keys (checksum, ...)."""
    meta = nbgrader_metadata(cell)
    meta.update({"grade": wanted.grade, "grade_id": wanted.grade_id, "locked": wanted.locked, "solution": wanted.solution,
                 "task": wanted.task})
    meta.setdefault("schema_version", 3)
    if wanted.grade:
        meta["points"] = wanted.points
    else:
        meta.pop("points", None)
    cell.metadata["nbgrader"] = meta


def _differs(cell: nbformat.NotebookNode, expected: TrackedCell) -> bool:
    meta = nbgrader_metadata(cell)
    if any(bool(meta.get(flag)) != getattr(expected, flag) for flag in FLAGS):
        return True
    if expected.grade:
        try:
            return float(meta.get("points")) != expected.points
        except (TypeError, ValueError):
            return True
    return False


def _make_plain(cell: nbformat.NotebookNode) -> None:
    cell.metadata.pop("nbgrader", None)


def restore(nb: nbformat.NotebookNode, expected: list[TrackedCell]) -> list[str]:
    """Give ``nb``'s cells the grading metadata of ``expected`` (the release's tracked cells), in place.

    Returns:
        What was changed, one phrase per cell (``"test_update renamed to test_mine (restored)"``); empty when
        the submission's metadata was already the release's.
    """
    by_id = {cell.grade_id: cell for cell in expected}
    changes: list[str] = []
    owner = _owners(nb, expected)  # grade_id -> index of the submission cell that carries it
    strangers: list[int] = []      # cells without a known grade_id
    for index, cell in enumerate(nb.cells):
        carried = grade_id(cell)
        if carried in by_id and owner[carried] != index:
            changes.append(f"{carried} duplicated (the copy is not graded)")
            _make_plain(cell)
        elif carried not in by_id:
            strangers.append(index)
    missing = [cell for cell in expected if cell.grade_id not in owner]
    for wanted in missing:
        index = _match(nb, wanted, strangers, expected, owner)
        if index is None:
            continue
        strangers.remove(index)
        owner[wanted.grade_id] = index
        found = grade_id(nb.cells[index])
        if found is None:
            changes.append(f"{wanted.grade_id}'s grading metadata removed (restored)")
        else:
            changes.append(f"{wanted.grade_id} renamed to {found} (restored)")
        _put_back(nb.cells[index], wanted)
    for index in strangers:
        found = grade_id(nb.cells[index])
        if found is not None or "nbgrader" in nb.cells[index].metadata:
            if found is not None:
                changes.append(f"cell {found!r} is not part of the assignment (not graded)")
            _make_plain(nb.cells[index])
    for owned, index in owner.items():
        cell, wanted = nb.cells[index], by_id[owned]
        if _differs(cell, wanted):
            changes.append(f"{owned}'s grading metadata edited (restored)")
            _put_back(cell, wanted)
    changes.extend(f"{cell.grade_id} deleted (scores 0)" for cell in expected if cell.grade_id not in owner and cell.grade)
    return changes


def _owners(nb: nbformat.NotebookNode, expected: list[TrackedCell]) -> dict[str, int]:
    """For each released id carried by several cells, the one that stands after the previous tracked cell's
    (the original, not a copy pasted elsewhere); the first one when none does."""
    carriers: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        carriers.setdefault(grade_id(cell), []).append(index)
    owner: dict[str, int] = {}
    previous = -1
    for wanted in expected:
        found = carriers.get(wanted.grade_id)
        if found:
            owner[wanted.grade_id] = next((i for i in found if i > previous), found[0])
            previous = owner[wanted.grade_id]
    return owner


def _match(nb: nbformat.NotebookNode, wanted: TrackedCell, strangers: list[int], expected: list[TrackedCell],
           owner: dict[str, int]) -> int | None:
    """The untracked submission cell that is ``wanted``: same visible source, else the same place."""
    same_type = [i for i in strangers if nb.cells[i].cell_type == wanted.cell_type]
    for index in same_type:
        if wanted.locked and visible_source(nb.cells[index].source) == wanted.source:
            return index
    position = expected.index(wanted)
    before = owner.get(expected[position - 1].grade_id) if position > 0 else -1
    if before is None:
        return None
    after = min((i for i in owner.values() if i > before), default=len(nb.cells))
    between = [i for i in range(before + 1, after) if nb.cells[i].cell_type != "markdown" or wanted.cell_type == "markdown"]
    candidates = [i for i in between if i in same_type and "nbgrader" in nb.cells[i].metadata]
    return candidates[0] if candidates and candidates[0] == between[0] else None


def restored_copy(nb: nbformat.NotebookNode, expected: list[TrackedCell]) -> tuple[nbformat.NotebookNode, list[str]]:
    """A restored copy of ``nb`` and the changes, leaving ``nb`` as it is."""
    twin = copy.deepcopy(nb)
    return twin, restore(twin, expected)


def changed_test_cells(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """What the student changed in the tracked cells of ``submitted``, one phrase each; empty when nothing.

    The changes ``restore`` undoes (deleted, renamed, re-labelled cells), then every locked test cell whose
    visible source differs from the release's (nbgrader restores the original for grading).
    """
    expected = tracked_cells(release)
    restored, problems = restored_copy(submitted, expected)
    by_id = {grade_id(cell): cell for cell in restored.cells}
    for wanted in expected:
        mine = by_id.get(wanted.grade_id)
        if wanted.grade and wanted.locked and mine is not None and visible_source(mine.source) != wanted.source:
            problems.append(f"{wanted.grade_id} edited (the original was restored for grading)")
    return problems
