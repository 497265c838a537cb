"""A named mistake is claimed only when it is confirmed, and a failure message never shows two identical values.

- "ignored the loss_func argument" is said only when the loss_func the checks passed (a spy) was never
  called. That no mutant whose id does not mention loss_func gets it is asserted for every mutant in
  the catalogs (``catalog.assert_mutant_caught``), and that no correct alternative gets any failing
  message there too; here, only the checks' modules and a spy that was called.
- ``expect_close`` describes a wrong result by where its values differ when the shapes agree, so that
  "expected X, got X" never appears.
"""

from __future__ import annotations

import pytest
import torch

from autograder.checks import run_checks
from autograder.checks import mnist_sgd as checks
from autograder.checks.compare import describe_difference, difference_message, expect_close
from autograder.reference import mnist_sgd as ms

from catalog import IGNORED_LOSS_FUNC

LOSS_FUNC_BLANKS = ("calc_grad", "train_epoch", "train_model")
"""The blanks whose checks pass a loss_func: the only ones that can say "ignored the loss_func"."""


def _failures(blank, objects):
    """The failing checks of ``blank`` for ``objects``, as "name: message" lines."""
    report = run_checks(blank, 1.0, objects, device="cpu")
    assert not report.error, f"the checks could not run: {report.error}"
    return [f"{r.name}: {r.message}" for r in report.results if not r.passed]


def _sources(module):
    """The source of ``module``, and of every submodule when it is a package."""
    import inspect
    import pkgutil
    from importlib import import_module

    found = {module.__name__: inspect.getsource(module)}
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        found.update(_sources(import_module(f"{module.__name__}.{info.name}")))
    return found


def test_only_the_loss_func_checks_can_say_it_was_ignored():
    from autograder.checks import gradient_descent, linear_regression, pixel_similarity

    for module in (gradient_descent, linear_regression, pixel_similarity):
        for name, source in _sources(module).items():
            assert IGNORED_LOSS_FUNC not in source, name
    assert set(LOSS_FUNC_BLANKS) <= set(checks.BLANKS)


def test_a_spy_that_was_called_is_not_reported_as_ignored():
    """train_epoch stepping once per epoch calls loss_func for every batch: its weights differ, and the message says where."""

    def steps_once_per_epoch(model, dl, opt, loss_func=ms.mnist_loss):
        for xb, yb in dl:
            ms.calc_grad(xb, yb, model, loss_func)
        opt.step()
        opt.zero_grad()

    failures = _failures("train_epoch", {"train_epoch": steps_once_per_epoch})
    loss_check = [f for f in failures if f.startswith("trains with the loss_func it is given")]
    assert loss_check and "weights after an epoch with another loss_func differs from the reference at" in loss_check[0]
    assert "loss_func 3 time(s) and opt.step() 1 time(s), for 3 batches" in loss_check[0]


def _message(actual, expected, **kwargs):
    with pytest.raises(AssertionError) as caught:
        expect_close(actual, expected, **kwargs)
    return str(caught.value)


def test_a_big_tensor_is_described_by_where_it_differs():
    expected = torch.linspace(-1, 1, 784).reshape(784, 1)
    actual = expected.clone()
    actual[12, 0] += 0.5
    message = _message(actual, expected, what="weights.grad")
    assert message.startswith("weights.grad differs from the reference at 1 of 784 elements: largest difference 0.5 at index (12, 0)")
    assert "shape (784, 1) and dtype" not in message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize(
    "actual, expected",
    [
        (torch.full((784, 1), 0.5), torch.full((784, 1), 0.25)),
        (torch.tensor([1.00001e-5, 2.0]), torch.tensor([3e-5, 2.0])),
        (1.0000003, torch.tensor(1.0000001, dtype=torch.float64)),
        (torch.full((5,), float("nan")), torch.ones(5)),
        (torch.ones(6, dtype=torch.float64) * (1 + 1e-6), torch.ones(6, dtype=torch.float64)),
    ],
    ids=["big", "small-rounds-alike", "python-float", "nan", "float64-close"],
)
def test_expected_and_got_never_read_the_same(actual, expected):
    message = _message(actual, expected)
    expected_part, got_part = message.rsplit("expected ", 1)[1].split(", got ")
    assert expected_part != got_part, message


def test_shape_mismatch_and_no_difference():
    assert difference_message(torch.ones(3, 2), torch.ones(2, 3)) == "the result has shape (3, 2), expected (2, 3)"
    assert describe_difference(torch.ones(3), torch.ones(3)) is None
