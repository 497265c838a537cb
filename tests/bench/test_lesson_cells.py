"""The CPU probe of ``bench/lesson_cells.py`` reads its line however the kernel's stdout arrives."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import lesson_cells  # noqa: E402


def probe(*outputs: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(lesson_cells.CPU_PROBE)
    cell.outputs = list(outputs)
    return cell


def stdout(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def test_a_line_split_over_several_stream_outputs_is_read_whole():
    assert lesson_cells.probe_reading(probe(stdout("CPU"), stdout(" 12.5"), stdout("\n"))) == 12.5
    assert lesson_cells.probe_reading(probe(stdout("CPU 3.25\n"))) == 3.25


@pytest.mark.parametrize("outputs", [(), (nbformat.v4.new_output("stream", name="stderr", text="CPU 1.0\n"),), (stdout("oops\n"),)])
def test_a_probe_without_its_reading_is_an_error_that_says_so(outputs):
    with pytest.raises(RuntimeError, match="the CPU probe printed"):
        lesson_cells.probe_reading(probe(*outputs))
