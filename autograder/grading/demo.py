"""Demo submissions for an assignment, built from ``release/`` and the solutions in ``source/``.

``write_demo_submissions`` writes five students who together show what the grader reports: full marks, partial
credit with named mistakes, an untouched notebook, a cell that never finishes, and a corrupt file.
``run_demo_course`` puts them beside a copy of the course, ready for ``autograder grade``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Mapping

import nbformat
from nbformat import NotebookNode

from autograder.course import check_assignment, notebook, scratch_course
from autograder.nbgrader_cells import grade_id, is_solution

_MARKER = re.compile(r"\s*#+\s*(BEGIN|END) SOLUTION\s*")
HANG = "while True: pass"
DEMO_MARKER = ".autograder-demo"

WRONG_SNIPPETS: dict[str, dict[str, str]] = {
    "04_mnist_sgd": {
        "BasicOptim": '''class BasicOptim:
    """Plain stochastic gradient descent over a list of parameters, with learning rate `lr`.

    step():      p <- p - lr * d(loss)/d(p) for every parameter p, changing the values in place (via p.data)
    zero_grad(): forget every parameter's gradient (p.grad becomes None)
    """

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for param in self.params:
            param.data.add_(param.grad.data, alpha=-self.lr)

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None
            return''',
        "train_epoch": '''def train_epoch(model, dl, opt, loss_func=None):
    """One pass over the minibatches (xb, yb) of `dl`: calc_grad(xb, yb, model, loss_func), then opt.step(),
    then opt.zero_grad(). Returns nothing; the model's parameters are updated in place.
    Without a `loss_func`, uses the `mnist_loss` defined at the time of the call.
    """
    if loss_func is None: loss_func = mnist_loss  # looked up when called: a fixed mnist_loss reaches training without rerunning this cell
    for xb, yb in dl:
        calc_grad(xb, yb, model, loss_func)
    opt.step()
    opt.zero_grad()''',
        "train_model": '''def train_model(model, dl, valid_dl, opt, epochs, loss_func=None):
    """`epochs` times: train_epoch(model, dl, opt, loss_func), then validate_epoch(model, valid_dl).

    Returns the list of the `epochs` validation accuracies (Python floats), in order.
    Without a `loss_func`, uses the `mnist_loss` defined at the time of the call.
    """
    if loss_func is None: loss_func = mnist_loss  # looked up when called: a fixed mnist_loss reaches training without rerunning this cell
    for _ in range(epochs):
        train_epoch(model, dl, opt, loss_func)
    return validate_epoch(model, valid_dl)''',
    },
}
"""Per assignment, realistic wrong answers (grade_id -> the whole answer cell). For ``04_mnist_sgd``:
``BasicOptim.zero_grad`` returns inside its loop (only the first gradient is cleared), ``train_epoch`` steps
once per epoch (``opt.step()`` indented one level too little) and ``train_model`` returns only the last accuracy.
Their visible tests catch all three and name the mistake under the failing assert, so these cells score 0, while
the hidden checks' report names each mistake too. No other blank's visible test calls these three, so the rest of
the notebook scores in full."""

HANGING_BLANKS: dict[str, str] = {"04_mnist_sgd": "sigmoid"}
"""Per assignment, the blank that never returns in the ``edsger`` demo (default: the first answer cell with a
function)."""

DETACHED_SNIPPETS: dict[str, dict[str, str]] = {
    "04_mnist_sgd": {
        "mnist_loss": '''def mnist_loss(predictions, targets):
    """Mean distance between the sigmoid of each prediction and its 0/1 target.

    p    = sigmoid(predictions)
    loss = mean( where(targets == 1, 1 - p, p) )

    `predictions` and `targets` have the same shape, e.g. (n, 1); returns a 0-d tensor.
    """
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()''',
    },
}
"""Per assignment, correct answers that do not call the hanging blank, used by ``edsger`` so that only the
cells calling that blank directly wait for the time limit."""


def _without_markers(source: str) -> str:
    lines = source.splitlines(keepends=True)
    return "".join(line for line in lines if not _MARKER.fullmatch(line.rstrip("\n"))).rstrip("\n")


def _with_hang(source: str) -> str:
    """``source`` with its solution, preceded by ``while True: pass`` at the solution's indentation."""
    out, hung = [], False
    for line in source.splitlines(keepends=True):
        match = _MARKER.fullmatch(line.rstrip("\n"))
        if match and match.group(1) == "BEGIN" and not hung:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{HANG}\n")
            hung = True
        elif not match:
            out.append(line)
    if not hung:
        raise ValueError("the answer cell has no '### BEGIN SOLUTION' line to put the loop at")
    return "".join(out).rstrip("\n")


def _answer_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {grade_id(cell): cell for cell in nb.cells if is_solution(cell)}


def solution_snippets(source_notebook: Path) -> dict[str, str]:
    """The answers of a student who solved every blank.

    Args:
        source_notebook: the instructor's notebook (``source/<assignment>/<assignment>.ipynb``).

    Returns:
        grade_id -> the source of that answer cell with its solution kept, the ``### BEGIN SOLUTION`` and
        ``### END SOLUTION`` lines removed and indentation kept, in notebook order.
    """
    nb = nbformat.read(source_notebook, as_version=4)
    return {name: _without_markers(cell.source) for name, cell in _answer_cells(nb).items()}


def fill(release_notebook: Path, answers: Mapping[str, str]) -> NotebookNode:
    """The release notebook with the sources of the answer cells named in ``answers`` replaced.

    Args:
        release_notebook: the student notebook (``release/<assignment>/<assignment>.ipynb``).
        answers: grade_id -> the new source of that answer cell.

    Returns:
        The notebook; every other cell is as released.

    Raises:
        ValueError: ``answers`` names a grade_id that is not an answer cell of the release notebook.
    """
    nb = nbformat.read(release_notebook, as_version=4)
    cells = _answer_cells(nb)
    unknown = sorted(set(answers) - set(cells))
    if unknown:
        raise ValueError(f"{Path(release_notebook).name} has no answer cell {', '.join(unknown)}")
    for name, source in answers.items():
        cells[name].source = source
    return nb


def _hanging_blank(source_nb: NotebookNode, assignment: str) -> str:
    if assignment in HANGING_BLANKS:
        return HANGING_BLANKS[assignment]
    for name, cell in _answer_cells(source_nb).items():
        if cell.cell_type == "code" and re.search(r"^\s*def ", cell.source, re.M):
            return name
    raise ValueError(f"{assignment} has no answer cell with a function to make hang")


def _write(nb: NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def write_demo_submissions(course_root: Path, assignment: str, into: Path) -> dict[str, str]:
    """Write five demo students' notebooks to ``into/<student>/<assignment>/<notebook>`` (nbgrader's layout).

    - ``ada``: every blank solved as in the source notebook;
    - ``grace``: the ``WRONG_SNIPPETS`` of the assignment, the other blanks solved (for an assignment without
      any, every blank but the last solved);
    - ``alan``: the release notebook untouched;
    - ``edsger``: every blank solved, but an early blank starts with ``while True: pass`` and never returns;
    - ``barbara``: ``ada``'s notebook cut off in the middle of its JSON.

    Args:
        course_root: the course folder (with ``source/`` and ``release/``).
        assignment: the assignment's name.
        into: the folder to write into (created if missing; the demo students' files are overwritten).

    Returns:
        student -> a short description of what that student's submission shows.

    Raises:
        CourseError: the course has no such assignment.
    """
    check_assignment(course_root, assignment)
    source_path = notebook(course_root, "source", assignment)
    release_path = notebook(course_root, "release", assignment)

    def target(student: str) -> Path:
        return Path(into) / student / assignment / release_path.name

    solved = solution_snippets(source_path)
    described: dict[str, str] = {}

    ada = fill(release_path, solved)
    _write(ada, target("ada"))
    described["ada"] = "every blank solved: full marks"

    wrong = WRONG_SNIPPETS.get(assignment)
    if wrong:
        _write(fill(release_path, {**solved, **wrong}), target("grace"))
        described["grace"] = f"wrong {', '.join(wrong)}, the rest solved: partial credit, each failed check names the mistake"
    else:
        last = list(solved)[-1]
        _write(fill(release_path, {name: source for name, source in solved.items() if name != last}), target("grace"))
        described["grace"] = f"{last} left as released, the rest solved: partial credit"

    target("alan").parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release_path, target("alan"))
    described["alan"] = "the release notebook untouched: every blank raises NotImplementedError, zero points"

    source_nb = nbformat.read(source_path, as_version=4)
    blank = _hanging_blank(source_nb, assignment)
    hanging = _with_hang(_answer_cells(source_nb)[blank].source)
    _write(fill(release_path, {**solved, **DETACHED_SNIPPETS.get(assignment, {}), blank: hanging}), target("edsger"))
    described["edsger"] = f"{blank} never returns ({HANG}): the cells calling it time out and score 0, the rest is graded"

    text = nbformat.writes(ada)
    barbara = target("barbara")
    barbara.parent.mkdir(parents=True, exist_ok=True)
    barbara.write_text(text[: len(text) // 2], encoding="utf-8")
    described["barbara"] = "a notebook file cut off in the middle: reported as a corrupt notebook, not graded"
    return described


def run_demo_course(course_root: Path, assignment: str, into: Path) -> dict[str, str]:
    """Make ``into`` a fresh demo course: the course's configuration, ``source/`` and ``release/<assignment>/``,
    with the demo submissions in ``into/incoming/`` (nbgrader's layout, ready for ``autograder grade``).

    A demo course left by an earlier run (it holds a ``.autograder-demo`` file) is replaced whole.

    Returns:
        student -> a short description, as ``write_demo_submissions``.

    Raises:
        ValueError: ``into`` is a non-empty folder that is not a demo course.
        CourseError: the course has no such assignment.
    """
    check_assignment(course_root, assignment)
    into = Path(into)
    if into.exists():
        if (into / DEMO_MARKER).is_file():
            shutil.rmtree(into)
        elif any(into.iterdir()):
            raise ValueError(f"{into} is not empty and not a demo course; give an empty or new folder")
    scratch_course(course_root, into)
    (into / DEMO_MARKER).write_text("a demo course made by `autograder demo`; replaced on every run\n")
    shutil.copytree(course_root / "release" / assignment, into / "release" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return write_demo_submissions(course_root, assignment, into / "incoming")
