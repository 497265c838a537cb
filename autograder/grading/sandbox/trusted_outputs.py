"""Replace the test cells' outputs of an executed notebook with the trusted checker's reports.

nbgrader scores a test cell from its outputs (an error scores 0, a number as the last output is partial
credit, otherwise full points). In hardened grading those outputs come from the student's kernel, which
may print or return anything, so before scoring every test cell gets outputs built from the checker's
report alone:

- the cell raised (a visible assert failed, the cell timed out, the kernel was interrupted) and the checker
  has a report for its blank: the report's lines, saying the visible test failed (or the cell did not
  finish) and what the hidden checks found, the report itself with score 0, and the error last, so that
  it scores 0 as in plain nbgrader and the student still reads the likely mistake;
- the cell raised and there is no report (the checks never ran): its error alone;
- the checker has a report for the cell's blank: the report's lines, the report itself (for exports and
  feedback) and its score as the cell's result;
- no report (the checks never ran): an error saying so, which scores 0. A test cell that finished
  without an error yet has no report called something other than the real ``check``: the notebook
  replaced or bypassed it, and ``apply_reports`` names the blank so that the grader can say so.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from autograder.checks import REPORT_MIME_TYPE
from autograder.checks.report import format_report
from autograder.checks.results import BlankReport, one_line, with_visible_test_error
from autograder.nbgrader_cells import TEST_PREFIX, blank_of

__all__ = ["TEST_PREFIX", "apply_reports", "blank_of", "error_line", "report_output", "write_replacing"]

def error_line(error: nbformat.NotebookNode) -> str:
    """An error output on one line, ``"<ename>: <evalue>"`` (just the name when there is no value)."""
    name, value = str(error.get("ename", "") or "Error"), str(error.get("evalue", "") or "")
    return one_line(f"{name}: {value}" if value else name)


def report_output(report: dict) -> nbformat.NotebookNode:
    """The display output that carries a full report, for exports and feedback (nothing shows in Jupyter)."""
    return nbformat.v4.new_output("display_data", data={REPORT_MIME_TYPE: report})


def _trusted_outputs(report: dict) -> list[nbformat.NotebookNode]:
    parsed = BlankReport.from_json(report)
    text, score = format_report(parsed), parsed.score
    return [
        nbformat.v4.new_output("stream", name="stdout", text=text + "\n"),
        report_output(report),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(float(score))}, execution_count=None),
    ]


def _raised_outputs(report: dict, error: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """A cell that raised after its checks ran: the report's lines, the report (score 0), then the error."""
    report = with_visible_test_error(report, error_line(error))
    text = format_report(BlankReport.from_json(report))
    return [nbformat.v4.new_output("stream", name="stdout", text=text + "\n"), report_output(report), error]


def _missing(blank: str) -> nbformat.NotebookNode:
    message = f"the hidden checks of {blank} did not run (no report from the checker): 0 points"
    return nbformat.v4.new_output("error", ename="ChecksDidNotRun", evalue=message, traceback=[message])


def apply_reports(notebook: Path, reports: dict[str, dict]) -> list[str]:
    """Rewrite ``notebook``'s test cells from ``reports`` (blank name → ``BlankReport.to_json()``).

    Returns:
        The blanks whose test cell ran to its end without an error but never reached the checker.
    """
    nb = nbformat.read(notebook, as_version=4)
    bypassed = []
    for cell in nb.cells:
        blank = blank_of(cell)
        if blank is None:
            continue
        errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        if errors and blank in reports:
            cell.outputs = _raised_outputs(reports[blank], errors[0])
        elif errors:
            cell.outputs = errors[:1]
        elif blank in reports:
            cell.outputs = _trusted_outputs(reports[blank])
        else:
            if cell.get("execution_count") is not None:
                bypassed.append(blank)
            cell.outputs = [_missing(blank)]
    write_replacing(nb, notebook)
    return bypassed


def write_replacing(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` to ``path`` through a new file renamed over it, keeping the old file's mode.

    nbgrader leaves its autograded notebooks read-only (mode 444): root may write them in place, an ordinary
    user may not, but may replace them in a folder of its own.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    staged = path.with_name(f".{path.name}.{os.getpid()}.partial")
    nbformat.write(nb, staged)
    os.chmod(staged, mode)
    os.replace(staged, path)
