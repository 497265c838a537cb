"""Naming a mistake only when it is confirmed.

A check names a mistake when the student's result matches exactly one known wrong result
(``confirmed_mistake``), when a counterfactual run shows it (the reference run with the notebook's globals in
place of the arguments: ``lesson_global_variants``), or when the student's call changed an input in place
(``call_watching_inputs``, ``call_on_copies``); the reference and the known mistakes are computed on private
copies made before the student's call.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from autograder.checks.compare import call_student, close, difference_message, expect_unchanged


def confirmed_mistake(actual: Any, mistakes: Mapping[str, Any]) -> str:
    """``": <message>"`` of the one known mistake whose result ``actual`` matches, or "".

    A mistake is named only when exactly one known wrong answer matches: when two mistakes give the same
    value on these inputs, the value cannot tell them apart and neither is named.
    """
    matching = {message for message, wrong in mistakes.items() if close(actual, torch.as_tensor(wrong))}
    return f": {matching.pop()}" if len(matching) == 1 else ""


def expect_close_confirmed(actual: Any, expected: Tensor, mistakes: Mapping[str, Any] = {}, what: str = "the result") -> None:
    """Assert ``actual`` matches ``expected``; on failure name the one known mistake it matches, else show the values.

    Like ``compare.expect_close``, except that a mistake is named only when no other known mistake gives the
    same result on these inputs (``confirmed_mistake``).
    """
    if close(actual, expected):
        return
    named = confirmed_mistake(actual, mistakes)
    raise AssertionError(named[2:] if named else difference_message(actual, expected, what))


def used_globals_message(names: Sequence[str], blank_name: str) -> str:
    """The message for a function that read the notebook's globals ``names`` instead of its own arguments."""
    if len(names) == 1:
        return (f"used the notebook's global `{names[0]}` instead of its argument: use the `{names[0]}` "
                f"passed to {blank_name}")
    quoted = " and ".join(f"`{name}`" for name in names)
    return f"used the notebook's globals {quoted} instead of its arguments: use the ones passed to {blank_name}"


def lesson_global_variants(given: Mapping[str, Any], lesson: Mapping[str, Any]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Each way a function could read the notebook's globals instead of its arguments.

    Returns, for every non-empty subset of ``lesson``'s names, the subset and ``given`` with those arguments
    replaced by the lesson's values (what a function reading those globals computes with).
    """
    names = list(lesson)
    return [
        (subset, {**given, **{name: lesson[name] for name in subset}})
        for size in range(1, len(names) + 1)
        for subset in itertools.combinations(names, size)
    ]


def copies(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Private copies of ``tensors``, made before a student's function runs (it may change its inputs)."""
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}


def call_watching_inputs(fn: Any, *args: Any, watch: Mapping[str, Tensor], **kwargs: Any) -> Any:
    """``call_student(fn, *args, **kwargs)``, failing with "changed its input <name> in place" when ``fn`` modified
    one of the ``watch``ed inputs, whether it then returned or raised (the in-place change is the cause to report).
    """
    before = copies(watch)
    try:
        result = call_student(fn, *args, **kwargs)
    except AssertionError:
        expect_unchanged(list(before.values()), list(watch.values()), list(watch))
        raise
    expect_unchanged(list(before.values()), list(watch.values()), list(watch))
    return result


def expect_inputs_left_alone(fn: Any, inputs: Sequence[Tensor], names: Sequence[str]) -> None:
    """Call ``fn`` on copies of ``inputs`` and assert it leaves them unchanged.

    Run before a gradient check: there the inputs require grad, and an in-place change of one makes torch
    raise an error about in-place operations on leaves, which would hide the real cause.
    """
    own = [tensor.detach().clone() for tensor in inputs]
    call_watching_inputs(fn, *own, watch=dict(zip(names, own)))


def call_on_copies(fn: Any, reference: Callable[..., Any], mistakes_of: Callable[..., Mapping[str, Tensor]],
                   inputs: Sequence[Tensor], names: Sequence[str]) -> tuple[Any, Any, Mapping[str, Tensor]]:
    """Call the student's ``fn`` on ``inputs`` and assert it left them unchanged.

    The reference's result and the known mistakes are computed first, on clones of the inputs.

    Returns:
        (the student's result, the reference's result, the known mistakes by message).
    """
    before = [tensor.clone() for tensor in inputs]
    expected, mistakes = reference(*before), mistakes_of(*before)
    result = call_student(fn, *inputs)
    expect_unchanged(before, list(inputs), list(names))
    return result, expected, mistakes
