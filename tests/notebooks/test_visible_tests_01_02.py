"""The visible tests of 01_gradient_descent and 02_linear_regression, run as a student runs them.

Each test cell of the source notebooks (its hidden block left out, as in the release) is run in the notebook's
own namespace with every wrong and correct version of its blank from the catalogs (``tests/checks``):

- the visible test and the blank's gates give the same verdict: a gate fails exactly when the visible test does;
- every correct alternative passes the visible test;
- a wrong version that fails the visible test shows, on the error's last line, the hint of its own mistake
  (``VISIBLE_FAILURES``); those the visible test cannot see are listed in ``VISIBLE_PASSES``, and the hidden
  checks take points off them (the catalogs prove it).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from pathlib import Path
from typing import Any

import matplotlib
import nbformat
import pytest
import torch

from autograder.checks import run_checks

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "checks"))
ASSIGNMENTS = {"gradient_descent": "01_gradient_descent", "linear_regression": "02_linear_regression"}
HIDDEN_END = "### END HIDDEN TESTS"

VISIBLE_FAILURES = {
    "mse_sum_instead_of_mean": "expected 5/3 = 1.6667, got 5.0000 on the lesson's example: did you forget .mean()?",
    "mse_absolute_values": "got 1.0000 on the lesson's example: did you take absolute values? That is mae",
    "mse_root_mean_squared": "got 1.2910 on the lesson's example: did you take the square root?",
    "mse_squares_the_inputs": "got -7.0000 on the lesson's example: did you square preds and acts separately?",
    "mse_no_square": "got -1.0000 on the lesson's example: did you forget to square the differences?",
    "mse_item": "mse should return a tensor, not a Python number: got float",
    "mae_no_abs": "got -1.0000 on the lesson's example: did you forget .abs()?",
    "mae_squares": "got 1.6667 on the lesson's example: did you square the differences? That is mse",
    "mae_abs_of_the_mean": "expected 2.0, got 1.0000 on errors of both signs: did you take the absolute value after averaging?",
    "mae_sum_instead_of_mean": "got 3.0000 on the lesson's example: did you forget .mean()?",
    "mae_mean_over_rows_only": "mae should return a 0-d tensor, got shape (1,)",
    "mae_python_float": "mae should return a tensor, not a Python number: got float",
    "gd_step_outside_no_grad": "a leaf Variable that requires grad is being used in an in-place operation",
    "gd_step_wrong_sign": "got [1.2, 2.4]: did you add the step?",
    "gd_step_forgot_lr": "got [-1.0, -2.0]: did you multiply the gradient by the learning rate lr?",
    "gd_step_never_zeroes_grad": "did you forget params.grad.zero_()?",
    "gd_step_rebinds_params": "'NoneType' object has no attribute 'zero_'",
    "gd_step_returns_new_params": "got [1.0, 2.0]: did the parameters change?",
    "gd_step_divides_by_lr": "got [-19.0, -38.0]: did you divide by the learning rate?",
    "gd_step_zeroes_grad_before_stepping": "got [1.0, 2.0]: did the parameters change?",
    "fit_quadratic_never_zeroes_grad": "the third loss should be about 13.58, got 11.432: do the gradients add up across steps?",
    "fit_quadratic_loss_after_step": "should be about 18.35, got 15.741: did you record the loss after the step?",
    "fit_quadratic_one_step_short": "return a list with one loss per step: got list of length 2",
    "fit_quadratic_forgets_to_return": "return a list with one loss per step: got NoneType",
    "fit_quadratic_forgot_backward": "unsupported operand type(s) for *: 'float' and 'NoneType'",
    "fit_quadratic_tensor_losses": "the losses should be Python floats: use loss.item() (got Tensor)",
    "double_relu_no_clip": "did you clip each line at zero?",
    "double_relu_multiplies": "did you multiply the two rectified lines?",
    "double_relu_maximum": "did you take the larger of the two rectified lines?",
    "double_relu_same_line_twice": "did you use the same line twice?",
    "double_relu_clips_the_sum": "did you clip the sum?",
    "double_relu_reads_global_x": "double_relu should return one value per element of x, shape (3,), got (20, 1)",
    "apply_step_forgot_lr": "did you multiply the gradient by the learning rate lr?",
    "apply_step_returns_the_loss": "shape (20,), got (): did you return the loss?",
    "apply_step_returns_new_predictions": "return the predictions made BEFORE the update",
    "apply_step_never_clears_grad": "clear the gradient after the update",
    "apply_step_wrong_sign": "did you add the step? Subtract lr * grad",
    "apply_step_outside_no_grad": "a leaf Variable that requires grad is being used in an in-place operation",
    "apply_step_subtracts_from_speed_in_place": "apply_step changed time or speed in place",
    "update_a_matmul_x": "shapes cannot be multiplied",
    "update_never_zeroes_grad": "did you forget a.grad.zero_()?",
    "update_returns_loss_after_step": "got 6.5298: did you return the loss after the step?",
    "update_sum_of_squares": "got 823.1794: did you use the sum of squared errors?",
    "update_rebinds_a": "got (-1.0, 1.0): did a change?",
    "update_forgets_to_return": "update returned nothing: did you forget `return loss`?",
    "update_outside_no_grad": "a leaf Variable that requires grad is being used in an in-place operation",
    "update_forgot_lr": "got (1.8863, 4.1682): did you multiply the gradient by the learning rate lr?",
    "update_returns_python_float": "update should return the loss as a 0-d tensor, got float",
    "update_subtracts_from_y_in_place": "update changed x or y in place",
}
"""The wrong versions that fail the visible test, and words of the error a student sees under it."""

VISIBLE_PASSES = {
    "mse_detached": "the value is right; only the gradient check sees the cut from autograd",
    "mse_subtracts_in_place": "the value is right; the hidden checks see the changed input",
    "mse_casts_to_float32": "float32 in, float32 out; the hidden checks use float64",
    "fit_quadratic_ignores_lr": "the visible test uses lr 0.01, the value it hard-codes",
    "fit_quadratic_reads_global_data": "the visible test passes the notebook's own x and y",
    "fit_quadratic_reads_global_y": "the visible test passes the notebook's own y",
    "apply_step_hardcoded_lr": "the visible test uses lr 1e-5, the value it hard-codes",
    "apply_step_reads_global_speed": "the visible test passes the notebook's own speed",
    "apply_step_reads_global_time_and_speed": "the visible test passes the notebook's own time and speed",
    "update_reads_global_data": "the visible test passes the notebook's own x and y",
    "update_reads_global_y": "the visible test passes the notebook's own y",
}
"""The wrong versions the visible test cannot see, and why; the hidden checks' other checks catch them."""


def _cells(assignment: str) -> list:
    return nbformat.read(REPO_ROOT / "source" / assignment / f"{assignment}.ipynb", as_version=4).cells


def _grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def _visible_part(source: str) -> str:
    """A test cell as the release shows it: everything after its hidden block."""
    return source.split(HIDDEN_END, 1)[1]


@pytest.fixture(scope="module")
def namespaces() -> dict[str, dict[str, Any]]:
    """Each notebook's namespace after running its code cells (the solutions in place) up to its last test cell."""
    matplotlib.use("Agg")
    result = {}
    for module, assignment in ASSIGNMENTS.items():
        cells = [cell for cell in _cells(assignment) if cell.cell_type == "code"]
        last_test = max(i for i, cell in enumerate(cells) if _grade_id(cell).startswith("test_"))
        namespace: dict[str, Any] = {}
        with contextlib.redirect_stdout(io.StringIO()):
            for cell in cells[:last_test]:
                if not _grade_id(cell).startswith("test_"):
                    exec(compile(cell.source, _grade_id(cell) or "cell", "exec"), namespace)
        result[module] = namespace
    return result


def _private_copy(value: Any) -> Any:
    """A leaf tensor of the notebook's namespace copied (a wrong version may change it in place); anything else as is."""
    if isinstance(value, torch.Tensor) and value.is_leaf:
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def run_visible_test(namespaces: dict, module: str, blank: str, fn: Any) -> str:
    """Run ``blank``'s visible test with ``fn`` in place of the solution; "" when it passes, else its error's line."""
    [cell] = [c for c in _cells(ASSIGNMENTS[module]) if _grade_id(c) == f"test_{blank}"]
    namespace = {name: _private_copy(value) for name, value in namespaces[module].items()}
    namespace[blank] = fn
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(compile(_visible_part(cell.source), f"test_{blank}", "exec"), namespace)
    except Exception as error:  # noqa: BLE001 - whatever the student would see under the cell
        return f"{type(error).__name__}: {error}"
    assert out.getvalue().strip().endswith(f"{blank}: visible tests passed")
    return ""


def _entries(kind: str) -> list:
    params = []
    for module in ASSIGNMENTS:
        catalog = importlib.import_module(f"test_catalog_{module}").CATALOG
        for entry in getattr(catalog, kind):
            params.append(pytest.param(module, entry, id=entry.id))
    return params


@pytest.mark.parametrize("module, wrong", _entries("mutants"))
def test_a_wrong_version_fails_the_visible_test_with_its_hint_or_is_known_to_pass_it(namespaces, module, wrong):
    error = run_visible_test(namespaces, module, wrong.blank, wrong.objects[wrong.blank])
    if wrong.id in VISIBLE_PASSES:
        assert error == "", f"{wrong.id} fails the visible test: {error}"
    else:
        assert wrong.id in VISIBLE_FAILURES, f"{wrong.id} is in neither table; its visible test says {error!r}"
        assert VISIBLE_FAILURES[wrong.id] in error, f"{wrong.id}: the student sees {error!r}"


@pytest.mark.parametrize("module, right", _entries("alternatives"))
def test_a_correct_version_passes_the_visible_test(namespaces, module, right):
    assert run_visible_test(namespaces, module, right.blank, right.objects[right.blank]) == ""


@pytest.mark.parametrize("module, entry", _entries("mutants") + _entries("alternatives"))
def test_the_gates_fail_exactly_when_the_visible_test_fails(namespaces, module, entry):
    error = run_visible_test(namespaces, module, entry.blank, entry.objects[entry.blank])
    report = run_checks(entry.blank, 1.0, entry.objects, device="cpu")
    gates = [result for result in report.results if result.gate]
    assert gates, f"{entry.blank} has no gate"
    failed = [f"{result.name}: {result.message}" for result in gates if not result.passed]
    assert bool(failed) == bool(error), f"visible test: {error or 'passed'}; failed gates: {failed or 'none'}"


def test_every_mutant_of_these_blanks_is_in_one_table():
    ids = {entry.values[1].id for entry in _entries("mutants")}
    assert ids == set(VISIBLE_FAILURES) | set(VISIBLE_PASSES)
    assert not set(VISIBLE_FAILURES) & set(VISIBLE_PASSES)
