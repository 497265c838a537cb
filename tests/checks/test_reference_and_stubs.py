"""The reference passes every hidden check on every available device; untouched stubs score zero."""

from __future__ import annotations

import pytest

from autograder.checks import check, known_blanks, run_checks
from autograder.data import mnist_sample_dir
from autograder.reference import gradient_descent, linear_regression, mnist_sgd, pixel_similarity

REFERENCE_MODULES = {
    "gradient_descent": gradient_descent,
    "linear_regression": linear_regression,
    "pixel_similarity": pixel_similarity,
    "mnist_sgd": mnist_sgd,
}
BLANKS = sorted(known_blanks().items())
MNIST_MODULES = {"pixel_similarity", "mnist_sgd"}


def reference_objects(blank: str, module: str) -> dict:
    return {blank: getattr(REFERENCE_MODULES[module], blank)}


def stub(name: str):
    def not_implemented(*args, **kwargs):
        raise NotImplementedError(f"{name}: replace this line with your code")

    return not_implemented


class StubOptim:
    """What the released BasicOptim cell defines before the student fills it in."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        raise NotImplementedError("BasicOptim: replace this line with your code")

    def zero_grad(self, *args, **kwargs):
        raise NotImplementedError("BasicOptim: replace this line with your code")


@pytest.mark.parametrize("blank, module", BLANKS, ids=[blank for blank, _ in BLANKS])
def test_reference_passes_every_check(blank, module, device, request):
    if module in MNIST_MODULES:
        request.getfixturevalue("mnist_folder")  # their checks include one on the real sample
    report = run_checks(blank, 2.0, reference_objects(blank, module), device=device)
    failures = [f"{r.name}: {r.message}" for r in report.results if not r.passed]
    assert not report.error, report.error
    assert failures == [] and report.score == 2.0


@pytest.mark.parametrize("blank", sorted(known_blanks()))
def test_untouched_stub_scores_zero(blank):
    objects = {blank: StubOptim if blank == "BasicOptim" else stub(blank)}
    report = run_checks(blank, 3.0, objects, device="cpu")
    assert report.score == 0.0
    could_not_run = "" if mnist_sample_dir().is_dir() else "could not run: "  # a check on the absent sample
    assert all("not implemented yet" in r.message or (could_not_run and r.message.startswith(could_not_run))
               for r in report.results if not r.passed)


def test_every_blank_has_several_checks():
    for blank, module in BLANKS:
        report = run_checks(blank, 1.0, reference_objects(blank, module), device="cpu")
        assert report.total >= 2, f"{blank} has only {report.total} check(s)"


def test_check_prints_one_line_per_check_and_returns_partial_points(capsys):
    score = check("mse", points=2, mse=lambda preds, acts: ((preds - acts) ** 2).mean().float())
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].startswith("mse: ") and "checks passed" in lines[0]
    assert any(line.startswith("  FAIL") for line in lines) and any(line.startswith("  PASS") for line in lines)
    assert 0.0 < score < 2.0
    assert out.err == "", "hidden checks must never write to stderr (nbgrader would score the cell 0)"


def test_a_failed_gate_scores_the_blank_zero_and_says_why(capsys):
    summed = lambda preds, acts: ((preds - acts) ** 2).sum()  # noqa: E731 - fails the visible test's example
    report = run_checks("mse", 2.0, {"mse": summed}, device="cpu")
    assert report.passed > 0, "some checks still pass: the gate, not the checks, makes the score 0"
    assert [r.name for r in report.failed_gates] == ["gives the right number on the lesson's small example"]
    assert report.score == 0.0
    assert check("mse", points=2, mse=summed) == 0.0
    assert "repeats the visible test" in capsys.readouterr().out


@pytest.mark.parametrize("blank, module", BLANKS, ids=[blank for blank, _ in BLANKS])
def test_every_blank_has_a_gate_that_its_reference_passes(blank, module, request):
    """Without a gate, tampering with the visible asserts in the kernel would earn partial credit."""
    if module in MNIST_MODULES:
        request.getfixturevalue("mnist_folder")
    report = run_checks(blank, 1.0, reference_objects(blank, module), device="cpu")
    gates = [r for r in report.results if r.gate]
    assert gates and all(r.passed for r in gates), f"{blank}: gates {gates}"


def test_unknown_blank_is_reported_not_raised():
    report = run_checks("no_such_blank", 1.0, {})
    assert report.score == 0.0 and "no checks for a blank named" in report.error


def test_check_messages_are_identical_across_devices(device):
    wrong = {"mse": lambda preds, acts: (preds - acts).abs().mean()}
    on_cpu = run_checks("mse", 1.0, wrong, device="cpu")
    here = run_checks("mse", 1.0, wrong, device=device)
    assert [(r.passed, r.message) for r in here.results] == [(r.passed, r.message) for r in on_cpu.results]
