"""Comparisons shared by the check modules: values, gradients, gradcheck and naming the likely mistake.

Tolerances (used with ``torch.testing.assert_close``-style ``|a - b| <= atol + rtol * |b|``):

- float32: ``rtol=1e-4, atol=1e-5``. A student may sum in another order than the reference
  (``F.mse_loss`` vs ``((a-b)**2).mean()``); float32 has ~7 significant digits, and reordering a sum
  of up to a few thousand terms moves the last 2-3 of them.
- float64: ``rtol=1e-7, atol=1e-9``: reordering moves only the last few of ~16 digits.
- A wrong formula differs by far more (typically > 1e-2 relative), so these never hide a mistake.

Gradients use the same tolerances. ``torch.autograd.gradcheck`` runs in float64 with its own defaults
(``eps=1e-6, atol=1e-5, rtol=1e-3``), as its documentation recommends.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

TOLERANCES = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-7, 1e-9)}


def tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` for comparing tensors of ``dtype``; float32's for any other dtype."""
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


def device_for(dtype: torch.dtype, device: str | torch.device) -> torch.device:
    """Where a check builds its tensors of ``dtype``: ``device``, or the CPU for float64 on Apple's MPS.

    MPS has no float64, so a float64 case of a check runs on the CPU there; every other case, and every
    case on CUDA or the CPU, runs on ``device``. Results are always compared on the CPU in float64.
    """
    device = torch.device(device)
    if dtype == torch.float64 and device.type == "mps":
        return torch.device("cpu")
    return device


def _on_cpu_as_float64(value: Any) -> Tensor | None:
    """``value`` (a tensor of any dtype or device, or numbers) as a float64 CPU tensor; None when it is not numeric."""
    try:
        return torch.as_tensor(value).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def close(actual: Any, expected: Tensor) -> bool:
    """True when ``actual`` has ``expected``'s shape and values within the dtype's tolerances.

    ``actual`` may be a tensor of any dtype or device, or a Python number for a 0-d ``expected``.
    """
    actual = _on_cpu_as_float64(actual)
    expected64 = expected.detach().to("cpu", torch.float64)
    if actual is None or actual.shape != expected64.shape:
        return False
    rtol, atol = tolerances(expected.dtype)
    return bool(torch.allclose(actual, expected64, rtol=rtol, atol=atol, equal_nan=False))


def describe(value: Any) -> str:
    """A short description of a result for messages: its value if small, else its type, shape and dtype."""
    if isinstance(value, Tensor):
        if value.numel() <= 4:
            return f"tensor({[round(v, 4) for v in value.detach().double().flatten().tolist()]}, shape={tuple(value.shape)})"
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:80]


def _two_numbers(expected: Sequence[float], actual: Sequence[float]) -> tuple[str, str]:
    """``expected`` and ``actual`` written with the fewest significant digits (4 or more) that tell them apart."""
    for digits in range(4, 18):
        pair = tuple(", ".join(f"{v:.{digits}g}" for v in values) for values in (expected, actual))
        if pair[0] != pair[1]:
            break
    return pair


def describe_difference(actual: Any, expected: Tensor, what: str = "the result") -> str | None:
    """Where ``actual`` differs from ``expected`` (same shape): how many elements, and the largest difference.

    One line, e.g. "weights.grad differs from the reference at 784 of 784 elements: largest difference
    0.0312 at index (12, 0): expected 0.0101, got -0.0211". None when ``actual`` is not a tensor-like value
    of ``expected``'s shape, or no element differs beyond the tolerances.
    """
    got, want = _on_cpu_as_float64(actual), expected.detach().to("cpu", torch.float64)
    if got is None or got.shape != want.shape:
        return None
    rtol, atol = tolerances(expected.dtype)
    wrong = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    count = int(wrong.sum())
    if count == 0:
        return None
    gap = (got - want).abs()
    ranked = torch.where(wrong, torch.nan_to_num(gap, nan=float("inf")), torch.full_like(gap, -1.0))
    flat = int(ranked.flatten().argmax())
    where = ""
    if want.dim() > 0:
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), want.shape))
        where = f" at index {index[0] if len(index) == 1 else index}"
    d = f"{float(gap.flatten()[flat]):.3g}"
    if want.numel() <= 4:
        e, a = _two_numbers(want.flatten().tolist(), got.flatten().tolist())
        if want.dim() > 0:
            e, a = f"[{e}]", f"[{a}]"
        return f"{what} differs from the reference: expected {e}, got {a}"
    e, a = _two_numbers([float(want.flatten()[flat])], [float(got.flatten()[flat])])
    return (
        f"{what} differs from the reference at {count} of {want.numel()} elements: "
        f"largest difference {d}{where}: expected {e}, got {a}"
    )


def likely_mistake(actual: Any, mistakes: Mapping[str, Tensor]) -> str | None:
    """The message of the first known mistake whose result ``actual`` matches, or None."""
    for message, wrong in mistakes.items():
        if close(actual, wrong):
            return message
    return None


def difference_message(actual: Any, expected: Tensor, what: str = "the result") -> str:
    """One line saying how ``actual`` differs from ``expected``: its shape, or where its values differ.

    Two descriptions in the message are never identical: when shapes agree, the values that differ are shown.
    """
    if isinstance(actual, Tensor) and isinstance(expected, Tensor) and actual.shape != expected.shape:
        return f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    where = describe_difference(actual, expected, what)
    if where is not None:
        return where[:300]
    want, got = describe(expected), describe(actual)
    if want == got:
        got = f"{got} of type {type(actual).__name__}"
    return f"{what} differs from the reference: expected {want}, got {got}"[:300]


def expect_close(actual: Any, expected: Tensor, mistakes: Mapping[str, Tensor] = {}, what: str = "the result") -> None:
    """Assert ``actual`` matches ``expected``; on failure name the likely mistake, else show how they differ."""
    if close(actual, expected):
        return
    message = likely_mistake(actual, mistakes)
    raise AssertionError(message if message is not None else difference_message(actual, expected, what))


def leaf_copies(inputs: Sequence[Tensor]) -> list[Tensor]:
    """Fresh leaf tensors with the same values that require grad (floating inputs only)."""
    return [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]


def gradients(fn: Callable[..., Any], inputs: Sequence[Tensor], weight_seed: int = 0) -> list[Tensor | None]:
    """Gradients of ``fn(*inputs)`` with respect to each floating input.

    A non-scalar output is reduced by a fixed random weighting (so every element's gradient matters).
    Returns one entry per input: the gradient, or None where no gradient reached it.

    Raises:
        AssertionError: the output is not a tensor attached to the autograd graph, with the likely cause.
    """
    leaves = leaf_copies(inputs)
    output = call_student(fn, *leaves)
    if not isinstance(output, Tensor):
        raise AssertionError(
            f"returned {type(output).__name__}, not a tensor: keep the result a tensor (no .item() or float()) "
            "so gradients can flow back"
        )
    if not output.requires_grad:
        raise AssertionError(
            "the result is cut off from autograd (no gradient flows back): avoid .item(), .detach(), .data, "
            "numpy and comparisons in the computation"
        )
    weight = torch.rand(output.shape, generator=torch.Generator().manual_seed(weight_seed), dtype=torch.float64)
    (output * weight.to(output.device, output.dtype)).sum().backward()
    return [leaf.grad if leaf.is_floating_point() else None for leaf in leaves]


def expect_same_gradients(student_fn: Callable[..., Any], reference_fn: Callable[..., Any], inputs: Sequence[Tensor], names: Sequence[str]) -> None:
    """Assert the student's gradients match the reference's with respect to every floating input."""
    expected = gradients(reference_fn, inputs)
    actual = gradients(student_fn, inputs)
    for name, got, want in zip(names, actual, expected):
        if want is None:
            continue
        if got is None:
            raise AssertionError(f"no gradient reaches {name}: the result does not depend on it through autograd")
        if not close(got, want):
            raise AssertionError(difference_message(got, want, f"the gradient with respect to {name}"))


def expect_gradcheck(fn: Callable[..., Any], inputs: Sequence[Tensor]) -> None:
    """Assert ``torch.autograd.gradcheck`` passes for ``fn`` at float64 copies of ``inputs``."""
    leaves = [x.detach().to(torch.float64).clone().requires_grad_() for x in inputs]
    call_student(fn, *leaves)
    try:
        ok = torch.autograd.gradcheck(fn, leaves, raise_exception=False)
    except Exception as error:  # noqa: BLE001 - any failure inside gradcheck is the same verdict
        raise AssertionError(f"gradcheck could not differentiate the function: {type(error).__name__}: {error}") from error
    if not ok:
        raise AssertionError(
            "torch.autograd.gradcheck failed: the analytical gradient disagrees with finite differences "
            "(a step done outside autograd, e.g. .item(), .detach(), .data or a rounding step?)"
        )


def expect_unchanged(before: Sequence[Tensor], after: Sequence[Tensor], names: Sequence[str]) -> None:
    """Assert the inputs still hold their original values (the function did not modify its arguments)."""
    for name, old, new in zip(names, before, after):
        if not torch.equal(old, new.detach()):
            raise AssertionError(f"the function changed its input {name} in place; compute a new tensor instead")


def expect_dtype_and_device(result: Any, like: Tensor) -> None:
    """Assert ``result`` is a tensor with ``like``'s dtype and device."""
    if not isinstance(result, Tensor):
        raise AssertionError(f"returned {type(result).__name__}, expected a tensor")
    if result.dtype != like.dtype:
        raise AssertionError(f"returned dtype {result.dtype} for {like.dtype} inputs: keep the input's dtype")
    if result.device != like.device:
        raise AssertionError(f"returned a tensor on {result.device} for inputs on {like.device}: keep the input's device")


IN_PLACE_ON_A_LEAF = "a leaf Variable that requires grad is being used in an in-place operation"
STEPPED_OUTSIDE_NO_GRAD = "stepped outside torch.no_grad(): an in-place update of a parameter must be inside `with torch.no_grad():`"
CHANGED_AN_INPUT = ("the function changed its input in place; compute a new tensor instead (an in-place operation such as "
                    "x.neg_() or x -= ... on a tensor that requires grad)")
UPDATES_PARAMETERS: ContextVar[bool] = ContextVar("updates_parameters", default=True)
"""Whether the blank being checked updates parameters in place (an optimizer step, a training loop). The runner
sets it from its check module's ``UPDATES_PARAMETERS``. Only there does an in-place error on a tensor that requires
grad mean a step outside ``torch.no_grad()``; in any other blank it means the function changed its input."""

KNOWN_ERRORS = (
    (IN_PLACE_ON_A_LEAF, STEPPED_OUTSIDE_NO_GRAD),
    ("shapes cannot be multiplied",
     "matrix shapes do not fit: multiply (rows of data) @ (weights), e.g. x@a rather than a@x"),
    ("'NoneType' object is not callable",
     "called None as a function: if loss_func defaults to None, pass the loss_func you were given on "
     "(e.g. calc_grad(xb, yb, model, loss_func))"),
    ("NoneType",
     "a gradient was None: call loss.backward() before using .grad, and update the parameter in place "
     "(params -= ...): a new tensor made by params = params - ... has no .grad"),
    ("element 0 of tensors does not require grad",
     "the loss is cut off from the parameters: compute loss_func(model(xb), yb), predictions first, without .detach(), .data or .item()"),
    ("mean(): could not infer output dtype",
     "took the mean of a True/False tensor: convert it with .float() first"),
)


INSTRUMENT_VERDICTS: set[str] = set()
"""Messages of the checks' own instruments handed to a student's function (an optimizer that counts its calls):
raised inside the student's call, they are the checker's verdict, not an assertion of the student's code."""


def call_student(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a student's function; turn what it raises into an AssertionError that names the likely cause."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        raise AssertionError(f"not implemented yet ({error}): replace the `raise NotImplementedError` line") from error
    except AssertionError as error:
        if str(error) in INSTRUMENT_VERDICTS:
            raise AssertionError(str(error)) from error
        raise AssertionError(f"your code failed an assertion of its own: {error}") from error
    except Exception as error:
        text = str(error)
        for pattern, hint in KNOWN_ERRORS:
            if pattern in text:
                if pattern == IN_PLACE_ON_A_LEAF and not UPDATES_PARAMETERS.get():
                    hint = CHANGED_AN_INPUT
                raise AssertionError(hint) from error
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise AssertionError(f"your code raised {type(error).__name__}: {first}"[:300]) from error


def grad_is_cleared(param: Tensor) -> bool:
    """True when ``param.grad`` was reset: None or all zeros (both are accepted)."""
    return param.grad is None or not bool(param.grad.any())


def expect_still_a_parameter(param: Tensor, name: str = "params") -> None:
    """Assert ``param`` is still a leaf that requires grad and the step recorded no autograd graph."""
    if not param.requires_grad:
        raise AssertionError(f"{name} no longer requires grad after the step: update it in place and keep requires_grad")
    if param.grad_fn is not None or not param.is_leaf:
        raise AssertionError(f"the step was recorded by autograd ({name} is no longer a leaf): update inside torch.no_grad()")


def reference_step_on_a_copy(step: Callable[..., Any], params: Tensor, *args: Any) -> tuple[Tensor, Tensor]:
    """Run a reference step ``step(copy, *args)`` on a fresh leaf copy of ``params``.

    Returns:
        The copy's values after the step and what the step returned, both detached; ``params`` is untouched.
    """
    twin = params.detach().clone().requires_grad_()
    returned = step(twin, *args)
    return twin.detach(), returned.detach()
