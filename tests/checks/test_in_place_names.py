"""An in-place error on a tensor that requires grad names the mistake of the blank it happened in.

In a blank that updates parameters (an optimizer step, a training loop) it means a step outside
``torch.no_grad()``; in any other blank (``sigmoid``, ``mnist_loss``, ``mse``...) it means the function changed
its input in place, and "stepped outside torch.no_grad()" would name a mistake the student did not make.
"""

from __future__ import annotations

import pytest
import torch
from catalog import all_mutants

from autograder.checks import run_checks
from autograder.checks.compare import CHANGED_AN_INPUT, STEPPED_OUTSIDE_NO_GRAD, UPDATES_PARAMETERS, call_student
from autograder.checks.runner import known_blanks

STEPPED = "stepped outside torch.no_grad()"
IN_PLACE_MUTANTS = [pytest.param(m, id=m.id) for m in all_mutants() if "in place" in m.expect and not m.real_data]
NO_GRAD_MUTANTS = [pytest.param(m, id=m.id) for m in all_mutants() if m.expect == STEPPED]


def _negate_in_place(x: torch.Tensor) -> torch.Tensor:
    return x.neg_()


def test_the_hint_depends_on_whether_the_blank_updates_parameters():
    leaf = torch.ones(2, requires_grad=True)
    with pytest.raises(AssertionError, match="stepped outside torch.no_grad"):
        call_student(_negate_in_place, leaf)
    token = UPDATES_PARAMETERS.set(False)
    try:
        with pytest.raises(AssertionError) as raised:
            call_student(_negate_in_place, leaf)
    finally:
        UPDATES_PARAMETERS.reset(token)
    assert str(raised.value) == CHANGED_AN_INPUT and STEPPED_OUTSIDE_NO_GRAD != CHANGED_AN_INPUT


def test_every_blank_that_updates_parameters_exists():
    from importlib import import_module

    for blank, module in known_blanks().items():
        assert set(getattr(import_module(f"autograder.checks.{module}"), "UPDATES_PARAMETERS")) <= set(known_blanks())


@pytest.mark.parametrize("wrong", IN_PLACE_MUTANTS)
def test_a_function_that_changes_its_input_is_not_told_it_stepped_outside_no_grad(wrong):
    report = run_checks(wrong.blank, 1.0, wrong.objects, device="cpu")
    messages = [check.message for check in report.failed]
    assert any(wrong.expect in message for message in messages), messages
    assert not any(STEPPED in message for message in messages), messages


@pytest.mark.parametrize("wrong", NO_GRAD_MUTANTS)
def test_a_step_outside_no_grad_is_still_named(wrong):
    report = run_checks(wrong.blank, 1.0, wrong.objects, device="cpu")
    assert any(STEPPED in check.message for check in report.failed)
