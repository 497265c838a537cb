"""Which cells grading executes: everything up to the notebook's last graded, solution or task cell."""

from __future__ import annotations

import asyncio

import nbformat
import pytest

from autograder.nbgrader_ext import last_tracked_cell


def _cell(**nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("1")
    if nbgrader:
        cell.metadata["nbgrader"] = {"grade_id": "x", **nbgrader}
    return cell


@pytest.mark.parametrize(("cells", "last"), [
    ([_cell(), _cell(solution=True), _cell(), _cell()], 1),
    ([_cell(grade=True, points=1), _cell(locked=True, grade=False, solution=False), _cell()], 0),
    ([_cell(), _cell(task=True, points=1), _cell(grade=False, solution=False, locked=True)], 1),
    ([_cell(solution=True), _cell(), _cell(grade=True, points=1)], 2),
    ([_cell(), _cell(locked=True)], 1),  # nothing nbgrader tracks: nothing is left out
    ([], -1),
])
def test_the_last_tracked_cell_is_the_last_graded_solution_or_task_cell(cells, last):
    assert last_tracked_cell(nbformat.v4.new_notebook(cells=cells)) == last


class _Channel:
    """A channel whose message is there after ``ready_after`` polls (each poll waits its whole timeout)."""

    def __init__(self, ready_after: int) -> None:
        self.polls: list[float | None] = []
        self.ready_after = ready_after

    async def get_msg(self, timeout=None):
        from queue import Empty

        self.polls.append(timeout)
        if len(self.polls) > self.ready_after:
            return {"msg": len(self.polls)}
        await asyncio.sleep(0)
        raise Empty


def test_a_channel_is_polled_in_slices_until_its_timeout(monkeypatch):
    from queue import Empty

    from autograder import nbgrader_ext

    monkeypatch.setattr(nbgrader_ext, "POLL_SLICE_SECONDS", 0.01)
    channel = _Channel(ready_after=3)
    nbgrader_ext.poll_in_slices(channel)
    assert asyncio.run(channel.get_msg(timeout=300)) == {"msg": 4}
    assert all(timeout <= 0.01 for timeout in channel.polls), "no poll waits longer than a slice"
    forever = _Channel(ready_after=5)
    nbgrader_ext.poll_in_slices(forever)
    assert asyncio.run(forever.get_msg(timeout=None)) == {"msg": 6}, "no timeout: slices until a message comes"
    never = _Channel(ready_after=10**9)
    nbgrader_ext.poll_in_slices(never)
    with pytest.raises(Empty):
        asyncio.run(never.get_msg(timeout=0.05))
