"""The checks' counting optimizer crosses the channel by value (``peer_values.CountingSGD``).

A check hands a student's ``train_epoch`` or ``train_model`` a ``CountingSGD``: the kernel gets one of its own over
the shared (tracked) parameters, so ``opt.step()`` and ``opt.zero_grad()`` in the student's loop cost no round trip,
and its record of the calls is written back to the checker's when the call returns, even a call that raised.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from test_channel_references import Channel
from test_sandbox_channel import CATALOG, remote_report
from test_channel_values import _data, _model

from autograder.checks.mnist_sgd import train_epoch
from autograder.checks.runner import run_checks
from autograder.grading.sandbox import peer_files, peer_values
from autograder.grading.sandbox.peer import ChannelError
from autograder.grading.sandbox.peer_values import CALLS_KEPT, STEP_WITHOUT_GRADIENT, CountingSGD
from autograder.reference import mnist_sgd as ms


def _batches(n: int = 1024) -> ms.TensorBatches:
    x, y = _data(n)
    return ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("lr", [1e-3, 0.1, 0.5, 1.0])
def test_it_steps_as_the_reference_basic_optim_bit_for_bit(lr):
    """The checks compare a student's training with the reference's, trained with ``BasicOptim``."""
    counted, reference = _model(), _model()
    ms.train_epoch(counted, _batches(), CountingSGD(counted.parameters(), lr), ms.mnist_loss)
    ms.train_epoch(reference, _batches(), ms.BasicOptim(reference.parameters(), lr), ms.mnist_loss)
    assert torch.equal(counted.weights, reference.weights) and torch.equal(counted.bias, reference.bias)
    assert not torch.equal(counted.weights, _model().weights)  # it trained


def test_in_the_lessons_loop_only_the_checkers_loss_crosses_and_the_calls_come_back():
    channel, dl = Channel(), _batches()
    local, remote = _model(), _model()
    ms.train_epoch(local, _batches(), ms.BasicOptim(local.parameters(), 0.5), ms.mnist_loss)
    opt = CountingSGD(remote.parameters(), 0.5)
    channel.student(ms.train_epoch)(remote, dl, opt, ms.mnist_loss)
    assert channel.checker_served == {"call": len(dl)}  # the reference's loss, once per batch; no step, no zero_grad
    assert torch.equal(remote.weights, local.weights) and torch.equal(remote.bias, local.bias)
    assert (opt.steps, opt.zero_grads) == (len(dl), len(dl))
    assert opt.calls == ["step", "zero_grad"] * len(dl)


def step_without_gradient(model, opt):
    """A student's loop that steps before any backward."""
    opt.step()


def test_a_step_without_gradient_raises_the_named_mistake_changes_nothing_and_is_recorded():
    channel, model = Channel(), _model()
    before = model.weights.detach().clone()
    opt = CountingSGD(model.parameters(), 0.5)
    with pytest.raises(AssertionError, match="no gradient"):
        channel.student(step_without_gradient)(model, opt)
    assert torch.equal(model.weights, before)
    assert (opt.steps, opt.zero_grads, opt.calls) == (1, 0, ["step"])
    assert STEP_WITHOUT_GRADIENT.startswith("opt.step() was called with no gradient")


def many_calls(opt, times):
    for _ in range(times):
        opt.zero_grad()


def test_the_counts_go_on_past_the_calls_kept_in_order():
    channel, model = Channel(), _model()
    opt = CountingSGD(model.parameters(), 0.5)
    channel.student(many_calls)(opt, CALLS_KEPT + 6)
    assert opt.zero_grads == CALLS_KEPT + 6 and opt.steps == 0
    assert opt.calls == ["zero_grad"] * CALLS_KEPT


def forged_epoch(model, dl, opt, loss_func):
    """A notebook that writes the record of a correct loop into its optimizer instead of training."""
    for _ in dl:
        opt._note(peer_values.STEP)
        opt._note(peer_values.ZERO_GRAD)


def test_a_record_the_notebook_writes_comes_back_but_the_training_is_judged_by_the_parameters(tmp_path):
    """The kernel's copy is the notebook's to write: the record it writes is the one a loop calling ``step`` and
    ``zero_grad`` once per batch leaves, so the per-batch count passes, as it would for those calls; the training
    itself is compared by the shared parameters, which did not change."""
    report = remote_report("train_epoch", {"train_epoch": forged_epoch}, tmp_path)
    verdicts = {result["name"]: (result["passed"], result["message"]) for result in report["results"]}
    assert verdicts[train_epoch.test_train_epoch_steps_once_per_batch.__doc__] == (True, "")
    assert verdicts[train_epoch.test_train_epoch_matches_the_reference_epoch.__doc__][0] is False
    assert "never trained" in verdicts[train_epoch.test_train_epoch_uses_the_given_loss_function.__doc__][1]


def test_a_subclass_crosses_as_a_handle():
    class Spied(CountingSGD):
        pass

    channel, model = Channel(), _model()
    opt = Spied(model.parameters(), 0.5)
    channel.student(many_calls)(opt, 3)
    assert channel.checker_served == {"callmethod": 3}
    assert opt.zero_grads == 3


def test_one_the_receiver_would_refuse_crosses_as_a_handle_and_still_counts():
    """An int learning rate is not an SGD setting ``rebuild`` accepts: sent by value, it would end the session."""
    channel, model = Channel(), _model()
    opt = CountingSGD(model.parameters(), 1)
    assert peer_values.fields_of(opt) is None
    channel.student(many_calls)(opt, 2)
    assert channel.checker_served == {"callmethod": 2}
    assert opt.zero_grads == 2


def _record(**at: int) -> torch.Tensor:
    record = torch.zeros(3 + CALLS_KEPT, dtype=torch.int64)
    for index, value in at.items():
        record[int(index[1:])] = value
    return record


@pytest.mark.parametrize("fields", [
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "record": _record().float()},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "record": torch.zeros(3, dtype=torch.int64)},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "record": _record(i0=-1)},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "record": _record(i2=CALLS_KEPT + 1)},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "record": [0, 0, 0]},
    {"params": [torch.ones(2)], "lr": 0.1, "record": _record()},  # not a parameter
    {"params": [torch.ones(2, requires_grad=True)], "lr": -0.1, "record": _record()},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1},
])
def test_a_malformed_counting_sgd_is_refused(fields):
    with pytest.raises(peer_values.MalformedValue):
        peer_values.rebuild("CountingSGD", fields)


def test_the_channel_refuses_a_malformed_counting_sgd():
    kernel = Channel().kernel
    buffers: list = []
    fields = [["params", kernel.encode([torch.ones(2, requires_grad=True)], buffers)], ["lr", 0.1], ["record", kernel.encode(_record(i1=-3), buffers)]]
    with pytest.raises(ChannelError):
        kernel.decode({"~": "value", "type": "CountingSGD", "fields": fields}, buffers)


def test_the_kernel_loads_it_with_the_channel_by_path():
    """The kernel cannot import ``autograder``: its ``CountingSGD`` is the one of ``peer_values.py`` loaded by path."""
    code = textwrap.dedent(f"""
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("channel", {peer_files.PEER!r})
        peer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(peer)
        w = torch.ones(2, requires_grad=True)
        opt = peer.values.rebuild("CountingSGD", dict(params=[w], lr=0.5, record=torch.zeros(3 + peer.values.CALLS_KEPT, dtype=torch.int64)))
        w.sum().backward(); opt.step(); opt.zero_grad()
        print(w.tolist(), opt.calls)
    """)
    shown = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == "[0.5, 0.5] ['step', 'zero_grad']"


TRAINING = [entry for entry in [*CATALOG.all_mutants(), *CATALOG.all_alternatives()]
            if entry.blank in ("train_epoch", "train_model") and not getattr(entry, "real_data", False)]


@pytest.mark.slow
@pytest.mark.parametrize("entry", [pytest.param(entry, id=entry.id) for entry in TRAINING])
def test_every_training_loop_of_the_catalog_gets_the_same_verdicts_and_messages_over_the_channel(entry, tmp_path):
    """The checks that hand a student's loop a ``CountingSGD`` read its record after the call: over the channel, from
    the kernel's copy written back, they name the same mistakes as in one process."""
    local = run_checks(entry.blank, 1.0, entry.objects, "cpu").to_json()["results"]
    remote = remote_report(entry.blank, entry.objects, tmp_path)["results"]
    assert [(r["name"], r["passed"], r["message"]) for r in remote] == [(r["name"], r["passed"], r["message"]) for r in local]
