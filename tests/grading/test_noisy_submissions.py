"""Honest noise on stderr (harmless warnings, matplotlib's font cache message) does not zero a test cell.

nbgrader scores a test cell with any stderr output as 0; the course's ``IgnorePattern.pattern`` drops a stderr
output made only of such noise, and nothing else. The texts below were captured by executing small notebooks
with nbclient (torch 2.14, fastai 2.8, matplotlib 3.11, ipykernel): one stderr output each.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.preprocessors import IgnorePattern
from nbgrader.utils import determine_grade
from submission_files import put_submission
from traitlets.config.loader import PyFileConfigLoader

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "01_gradient_descent"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"

OLD_PATTERN = r"\A(?:[^\n]*(?:FutureWarning|UserWarning|DeprecationWarning): [^\n]*\n(?:  [^\n]*\n?)?)+\Z"
"""The pattern before this fix: a warning's message had to fit on its header line."""

# `losses.append(float(loss))` with a loss that requires grad, in a notebook cell:
TORCH_SCALAR = (
    "/tmp/ipykernel_6939/2966458767.py:5: UserWarning: Converting a tensor with requires_grad=True to a scalar "
    "may lead to unexpected behavior.\n"
    "Consider using tensor.detach() first. (Triggered internally at "
    "/__w/pytorch/pytorch/torch/csrc/autograd/generated/python_variable_methods.cpp:820.)\n"
    "  losses.append(float(loss))\n"
)
# `warnings.warn('old api', FutureWarning)` in a function defined in a cell:
FUTURE = "/tmp/ipykernel_6939/2802021932.py:2: FutureWarning: old api\n  warnings.warn('old api', FutureWarning)\n"
# `from fastai.basics import *` (the first import of fastai in a kernel):
FASTAI_IMPORT = (
    "/work/main/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1491: FutureWarning: `torch.jit.script` "
    "is deprecated. Please switch to `torch.compile` or `torch.export`.\n"
    "  warnings.warn(\n"
)
# `warnings.warn('two', UserWarning); warnings.warn('lines\nhere', DeprecationWarning)`: two in one output
TWO_WARNINGS = (
    "/tmp/ipykernel_6939/1009592802.py:1: UserWarning: two\n"
    "  warnings.warn('two', UserWarning); warnings.warn('lines\\nhere', DeprecationWarning)\n"
    "/tmp/ipykernel_6939/1009592802.py:1: DeprecationWarning: lines\n"
    "here\n"
    "  warnings.warn('two', UserWarning); warnings.warn('lines\\nhere', DeprecationWarning)\n"
)
# `np.log(np.zeros(1))`
RUNTIME = "/tmp/ipykernel_6939/2240594679.py:1: RuntimeWarning: divide by zero encountered in log\n  np.log(np.zeros(1))\n"
# a warning whose source cannot be shown (frozen module): its header alone
NO_SOURCE = "<frozen importlib._bootstrap>:241: DeprecationWarning: builtin type SwigPyPacked has no __module__ attribute\n"
# the first `import matplotlib.pyplot` on a machine without its font cache, after 5 s of building it
FONT_CACHE = "Matplotlib is building the font cache; this may take a moment.\n"
# `learn.fit(2)` of a fastai Learner in an nbclient kernel: its rows (and any console bar) go to stdout, the bar
# under Jupyter is HTML display data; only the import's warning reaches stderr.
FIT_STDOUT = "[0, 4.798756122589111, 4.7962236404418945, '00:00']\n[1, 4.7857513427734375, 4.772064685821533, '00:00']\n"

HONEST = {
    "torch_two_line_warning": TORCH_SCALAR,
    "future_warning_with_source_line": FUTURE,
    "library_warning_with_source_line": FASTAI_IMPORT,
    "two_warnings_in_a_row": TWO_WARNINGS,
    "runtime_warning": RUNTIME,
    "warning_without_source_line": NO_SOURCE,
    "pending_deprecation": "a.py:3: PendingDeprecationWarning: soon\n  old()\n",
    "library_subclass": "m.py:9: MatplotlibDeprecationWarning: the x parameter\n  plt.foo(x=1)\n",
    "font_cache": FONT_CACHE,
    "font_cache_then_warning": FONT_CACHE + FUTURE,
    "everything": FASTAI_IMPORT + TORCH_SCALAR + FONT_CACHE + TWO_WARNINGS,
}
NOT_HONEST = {
    "free_text": "my debug output\n",
    "student_stderr_print": "loss is 18.35\n",
    "empty_line": "\n",
    "text_before_a_warning": "debugging...\n" + FUTURE,
    "text_after_a_warning": TORCH_SCALAR + "debugging...\n",
    "header_then_free_text": "/tmp/ipykernel_1/2.py:1: UserWarning: fine\nthis line is not part of a warning\n",
    "text_between_warnings": FUTURE + "debugging...\n" + FUTURE,
    "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: bad\n',
    "other_category": "a.py:1: SyntaxWarning: \"is\" with a literal. Did you mean \"==\"?\n  x is 1\n",
    "category_not_a_warning": "a.py:1: UserError: no\n  x\n",
    "no_line_number": "a.py: UserWarning: no line number\n",
    "font_cache_altered": "Matplotlib is building the font cache; this may take a moment. Or not.\n",
}


@pytest.fixture(scope="module")
def pattern() -> str:
    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config().IgnorePattern.pattern


def ignored(pattern: str, text: str) -> bool:
    """As ``IgnorePattern.preprocess_cell`` decides for one stderr output."""
    return re.search(pattern, text) is not None


@pytest.mark.parametrize("text", HONEST.values(), ids=HONEST.keys())
def test_honest_noise_is_ignored(pattern, text):
    assert ignored(pattern, text)


@pytest.mark.parametrize("text", NOT_HONEST.values(), ids=NOT_HONEST.keys())
def test_other_stderr_is_not_ignored(pattern, text):
    assert not ignored(pattern, text)


def test_the_old_pattern_missed_the_torch_warning_and_the_new_one_keeps_its_verdicts():
    """Why `float(loss)` scored 0: the second line of torch's message escaped the old pattern."""
    assert not ignored(OLD_PATTERN, TORCH_SCALAR)
    assert not ignored(OLD_PATTERN, TWO_WARNINGS)
    assert all(ignored(OLD_PATTERN, text) for text in (FUTURE, FASTAI_IMPORT))


def grade_cell(*outputs: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("check(...)", outputs=list(outputs))
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "test_x", "points": 2}
    return cell


def stderr(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stderr", text=text)


def test_nbgraders_preprocessor_with_the_course_pattern_restores_the_cells_points(pattern):
    """The real `IgnorePattern` and nbgrader's scoring: honest stderr is dropped, other stderr still scores 0."""
    preprocessor = IgnorePattern(pattern=pattern, enabled=True)
    stdout = nbformat.v4.new_output("stream", name="stdout", text=FIT_STDOUT)
    honest = grade_cell(stderr(FASTAI_IMPORT), stdout, stderr(TORCH_SCALAR), stderr(FONT_CACHE))
    assert determine_grade(honest) == (0, 2)
    honest, _ = preprocessor.preprocess_cell(honest, {}, 0)
    assert honest.outputs == [stdout]
    assert determine_grade(honest) == (2, 2)

    mixed, _ = preprocessor.preprocess_cell(grade_cell(stderr(TORCH_SCALAR), stderr("my debug output\n")), {}, 0)
    assert [output.text for output in mixed.outputs] == ["my debug output\n"]
    assert determine_grade(mixed) == (0, 2)


@pytest.mark.parametrize("text", [
    "a.py:1: UserWarning: x\n" * 200_000 + "free\n",
    "a.py:1: UserWarning: x\n" + "  source\n" * 200_000 + "free\n",
    "a.py:1: UserWarning: x\n" + "more\n" * 200_000 + "free\n",
    "  a.py:1: UserWarning: x\n" * 200_000 + "free\n",
    ("a.py:1: UserWarning: x:1: UserWarning: " * 20 + "\n") * 20_000 + "free\n",
    ":1: " * 1_000_000,
], ids=["headers", "source_lines", "message_lines", "indented_headers", "many_headers_per_line", "colons"])
def test_crafted_stderr_cannot_make_the_pattern_slow(pattern, text):
    """Megabytes of stderr made to backtrack are still decided in linear time (measured: under a second each;
    the bound leaves room for a busy machine)."""
    start = time.perf_counter()
    assert not ignored(pattern, text)
    assert time.perf_counter() - start < 5


# End to end: a correct 01_gradient_descent whose fit_quadratic records `float(loss)` (torch's two-line
# UserWarning in the test cell's visible part) and whose mae warns a FutureWarning itself.

FLOAT_LOSS = '''def fit_quadratic(params, x, y, lr=0.01, steps=10):
    losses = []
    for _ in range(steps):
        loss = quad_mse(params, x, y)
        loss.backward()
        gd_step(params, lr)
        losses.append(float(loss))
    return losses
'''
WARNING_MAE = '''import warnings

def mae(preds, acts):
    warnings.warn("mae: this answer uses an old API", FutureWarning)
    return (preds - acts).abs().mean()
'''
NOISY_CELLS = ("test_fit_quadratic", "test_mae")


def make_course(into: Path) -> Path:
    from autograder.course import scratch_course

    course = scratch_course(REPO_ROOT, into)
    shutil.copytree(REPO_ROOT / "release", course / "release")
    return course


def noisy_submission(course: Path) -> nbformat.NotebookNode:
    from autograder.grading.demo import fill, solution_snippets

    answers = solution_snippets(course / "source" / ASSIGNMENT / NOTEBOOK)
    answers.update(fit_quadratic=FLOAT_LOSS, mae=WARNING_MAE)
    return fill(course / "release" / ASSIGNMENT / NOTEBOOK, answers)


put = functools.partial(put_submission, assignment=ASSIGNMENT)


def stderr_of(course: Path, student: str, grade_id: str) -> str:
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    [cell] = [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")


@pytest.mark.slow
@pytest.mark.notebooks
def test_plain_nbgrader_gives_honest_noisy_code_full_points(tmp_path, pattern):
    """`nbgrader autograde` with the course's configuration: full points, and no stderr left in the noisy cells."""
    from autograder.nbgrader_api import autograde, cell_grades, generate_assignment

    course = make_course(tmp_path / "course")
    generate_assignment(course, ASSIGNMENT)
    put(course / "submitted", "noisy", noisy_submission(course))
    autograde(course, ASSIGNMENT, "noisy")
    grades = {g.cell: (g.score, g.max_score) for g in cell_grades(course, ASSIGNMENT, "noisy")}
    assert set(NOISY_CELLS) <= set(grades)
    assert all(score == max_score for score, max_score in grades.values()), grades
    assert sum(max_score for _, max_score in grades.values()) == 10.0
    assert all(not stderr_of(course, "noisy", cell) for cell in NOISY_CELLS)


@pytest.mark.slow
@pytest.mark.notebooks
def test_hardened_grading_gives_honest_noisy_code_full_points(tmp_path):
    from autograder.grading.pipeline import GradeOptions, grade
    from autograder.grading.results import Status
    from autograder.grading.worker import Limits

    course = make_course(tmp_path / "course")
    put(course / "incoming", "noisy", noisy_submission(course))
    [result] = grade(course, ASSIGNMENT, course / "incoming", GradeOptions(jobs=1, limits=Limits(cell_timeout=60))).submissions
    assert result.status == Status.GRADED, result.reason
    assert result.score == result.max_score == 10.0, result
