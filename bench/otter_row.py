"""The otter-grader row of ``bench/grading_throughput.py``: the same submissions graded by ``otter run``.

otter-grader (ucbds-infra/otter-grader) grades a batch with ``otter grade``, which runs every submission in a
Docker container; where there is no Docker daemon, its local mode ``otter run`` grades one notebook at a time
without a container, in the current environment. This row uses ``otter run``, one submission after the other,
as otter's own documentation describes for grading without Docker.

Otter reads its own test format, so the bench converts the course once, outside the timing:

- one exception-based otter test file per blank (``tests/<blank>.py``), made from the source notebook's test
  cell: it runs the cell's visible asserts again and the blank's hidden checks (``autograder.checks.run_checks``,
  in the kernel, as plain ``nbgrader autograde`` runs them), one otter test case per hidden check, so that a
  blank earns ``points x passed / total`` as in nbgrader, and nothing when a visible assert fails;
- ``otter generate`` packs the tests into ``autograder.zip``;
- each submitted notebook is copied with otter's cell metadata ``{"otter": {"tests": [blank]}}`` on its test
  cells, so that otter checks each blank right after its test cell, where nbgrader scores it.

The kernel is the one every other row uses (this environment's Python, ``ipykernel``, torch, fastai) with
otter's kernel-side packages put on its ``PYTHONPATH`` from otter's own environment, through a kernel
specification in ``$WORK/otter/jupyter`` (``JUPYTER_PATH``). Run as a script it is the timed loop:
``python bench/otter_row.py --otter OTTER --autograder ZIP --json SECONDS NOTEBOOK...``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KERNEL_PACKAGES = ("otter", "dill", "fica", "frontmatter", "ipylab")
"""What ``from otter import Notebook`` needs in a kernel, beyond what this environment has."""

HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS\n?", re.S)

TEST_FILE = '''\
"""Otter test for `{blank}`: its visible asserts, then its {total} hidden check(s), one test case each."""

from otter.test_files import test_case

OK_FORMAT = False
name = {blank!r}
points = {points!r}
VISIBLE = {visible!r}
OBJECTS = {objects!r}


def _outcome(env):
    """(visible error, [passed per hidden check]), computed once per notebook."""
    done = env.setdefault("_bench_otter_outcomes", {{}})
    if name not in done:
        error = ""
        try:
            exec(VISIBLE, env)
        except Exception as exc:  # noqa: BLE001 - a failed visible assert scores the blank 0, as in nbgrader
            error = f"{{type(exc).__name__}}: {{exc}}"
        from autograder.checks import run_checks

        report = run_checks(name, points, {{key: env.get(key) for key in OBJECTS}})
        done[name] = (error, [result.passed for result in report.results])
    return done[name]


def _case(index):
    def check(env):
        error, passed = _outcome(env)
        assert not error, error
        assert index < len(passed) and passed[index], f"hidden check {{index + 1}} of {{name}} failed"
    return check


for _index in range({total}):
    globals()[f"check_{{_index}}"] = test_case(name=f"{{name}} {{_index + 1}}", hidden=True)(_case(_index))
'''


@dataclass(frozen=True)
class OtterBlank:
    """One blank as otter sees it: its test cell's visible asserts and the checks its hidden block calls.

    Attributes:
        blank: the blank's name (the first argument of ``check``), also the otter test's name.
        points: the blank's points (the test cell's nbgrader points).
        visible: the test cell without its hidden-test block.
        objects: the notebook names the hidden block passes to ``check``.
    """

    blank: str
    points: float
    visible: str
    objects: tuple[str, ...]


def blanks_of(source_notebook) -> list[OtterBlank]:
    """The graded test cells of a source notebook, each with the ``check(...)`` call of its hidden block."""
    from autograder.nbgrader_cells import is_grade, points

    found = []
    for cell in source_notebook.cells:
        hidden = HIDDEN_BLOCK.search(cell.source) if cell.cell_type == "code" and is_grade(cell) else None
        if hidden is None:
            continue
        call = next(node for node in ast.walk(ast.parse(hidden.group(1)))
                    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check")
        objects = tuple(k.arg for k in call.keywords if k.arg not in ("points", "device"))
        found.append(OtterBlank(call.args[0].value, float(points(cell)), HIDDEN_BLOCK.sub("", cell.source), objects))
    return found


def test_file(blank: OtterBlank, total: int) -> str:
    """The otter test file of ``blank`` with ``total`` hidden checks (its count on the reference solution)."""
    return TEST_FILE.format(blank=blank.blank, points=blank.points, visible=blank.visible, objects=list(blank.objects),
                            total=total)


def reference_totals(blanks: list[OtterBlank], reference) -> dict[str, int]:
    """How many hidden checks each blank has: ``run_checks`` on the reference solution's objects."""
    from autograder.checks import run_checks

    return {b.blank: run_checks(b.blank, b.points, {k: getattr(reference, k) for k in b.objects}).total for b in blanks}


def tagged(notebook, blanks: list[OtterBlank]):
    """A copy of a submitted notebook whose test cells carry otter's ``tests`` metadata (checked after the cell)."""
    import copy

    from autograder.nbgrader_cells import grade_id

    names = {f"test_{b.blank}": b.blank for b in blanks}
    nb = copy.deepcopy(notebook)
    for cell in nb.cells:
        if grade_id(cell) in names:
            cell.metadata["otter"] = {"tests": [names[grade_id(cell)]]}
    return nb


def kernel_spec(folder: Path, otter: Path) -> Path:
    """A ``python3`` kernel specification: this Python with otter's kernel-side packages; returns JUPYTER_PATH."""
    site = next((otter.parent.parent / "lib").glob("python3*/site-packages"))
    shim = folder / "kernel-packages"
    shim.mkdir(parents=True, exist_ok=True)
    for package in KERNEL_PACKAGES:
        link = shim / package
        if not link.exists():
            link.symlink_to(site / package)
    spec = folder / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python 3 (ipykernel)",
        "language": "python", "env": {"PYTHONPATH": str(shim)},
    }))
    return folder / "jupyter"


def prepare(folder: Path, otter: Path, source_notebook, reference) -> tuple[Path, list[OtterBlank]]:
    """Write the otter tests, run ``otter generate`` on them; returns (autograder.zip, the blanks)."""
    blanks = blanks_of(source_notebook)
    totals = reference_totals(blanks, reference)
    tests = folder / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    for blank in blanks:
        (tests / f"{blank.blank}.py").write_text(test_file(blank, totals[blank.blank]))
    (folder / "otter_config.json").write_text(json.dumps({"pdf": False, "print_summary": False}))
    archive = folder / "autograder.zip"
    subprocess.run([str(otter), "generate", "-t", "tests", "-o", str(archive), "--no-requirements", "--no-environment"],
                   cwd=folder, check=True, capture_output=True)
    return archive, blanks


def otter_score(results: Path) -> float:
    """The total points of otter's ``results.json`` (the sum of its tests' scores)."""
    data = json.loads(results.read_text())
    return sum(test.get("score", 0.0) for test in data["tests"])


def grade_each(otter: Path, archive: Path, notebooks: list[Path]) -> dict[str, float]:
    """``otter run`` of each notebook in turn (results beside it); wall seconds per notebook path."""
    seconds = {}
    for notebook in notebooks:
        start = time.perf_counter()
        subprocess.run([str(otter), "run", "-a", str(archive), "-o", str(notebook.parent), "--no-logo", str(notebook)],
                       check=True, stdin=subprocess.DEVNULL, cwd=notebook.parent)
        seconds[str(notebook)] = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade notebooks one after the other with `otter run`; write seconds per notebook.")
    parser.add_argument("--otter", type=Path, required=True)
    parser.add_argument("--autograder", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("notebooks", type=Path, nargs="+")
    args = parser.parse_args(argv)
    args.json.write_text(json.dumps(grade_each(args.otter, args.autograder, args.notebooks)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
