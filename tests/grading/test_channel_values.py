"""The reference's model and batches cross the channel by value (``peer_values.py``).

A check lends the student's kernel a ``Linear1`` and ``TensorBatches``: the kernel gets objects of its own,
so iterating the batches and calling the model cost no round trip and no batch's bytes, while the model's
parameters stay shared with the checker (tracked) and the batches come in the order the checker's would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from test_channel_references import Channel

from autograder.grading.sandbox import peer_files, peer_values
from autograder.grading.sandbox.peer import ChannelError, Peer
from autograder.reference import mnist_sgd as ms

PEER = peer_files.PEER


def _data(n: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.rand(n, 784), (torch.rand(n, 1) > 0.5).float()


def _model() -> ms.Linear1:
    torch.manual_seed(1)
    return ms.Linear1(torch.randn(784, 1, requires_grad=True), torch.randn(1, requires_grad=True))


def _shuffled(x: torch.Tensor, y: torch.Tensor, seed: int = 3) -> ms.TensorBatches:
    return ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(seed))


def predictions_per_pass(model, dl, passes):
    """A student's function: the model's summed predictions over every batch, for ``passes`` passes."""
    return [[round(float(model(xb).detach().sum()), 4) for xb, _ in dl] for _ in range(passes)]


def test_the_kernel_iterates_the_batches_and_calls_the_model_without_a_round_trip():
    channel, (x, y) = Channel(), _data()
    local = predictions_per_pass(_model(), _shuffled(x, y), 2)
    remote = channel.student(predictions_per_pass)(_model(), _shuffled(x, y), 2)
    assert remote == local  # the same batches, in the same orders, through the same model
    assert sum(channel.checker_served.values()) == 0
    assert channel.bytes_to_checker < 10_000


def test_the_receivers_passes_draw_the_orders_the_senders_next_passes_would():
    channel, (x, y) = Channel(), _data()
    sent = _shuffled(x, y)
    received = channel.kernel.decode(*_sent(channel.checker, sent))
    assert isinstance(received, ms.TensorBatches) and received is not sent and received.generator is not sent.generator
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(received, sent, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _sent(sender: Peer, value) -> tuple[dict, list]:
    buffers: list = []
    return sender.encode(value, buffers), buffers


def train_in_place(model, dl):
    """A student's training loop on the model it is given: plain SGD at lr 0.1, in place."""
    for xb, yb in dl:
        ms.mnist_loss(model(xb), yb).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
                p.grad = None


def test_the_models_parameters_stay_the_senders_own():
    channel, (x, y) = Channel(), _data()
    local, remote = _model(), _model()
    train_in_place(local, ms.TensorBatches(x, y, 128))
    channel.student(train_in_place)(remote, ms.TensorBatches(x, y, 128))
    torch.testing.assert_close(remote.weights, local.weights)
    torch.testing.assert_close(remote.bias, local.bias)
    assert sum(channel.checker_served.values()) == 0


def test_a_subclass_crosses_as_a_handle():
    class Spied(ms.Linear1):
        pass

    channel, (x, _) = Channel(), _data(8)
    model = Spied(*_model().parameters())
    channel.student(lambda m, xb: m(xb))(model, x)
    assert channel.checker_served["call"] == 1


@pytest.mark.parametrize("fields", [
    {"type": "Linear1", "fields": [["weights", 1], ["bias", 2]]},
    {"type": "Linear1", "fields": [["weights", None]]},
    {"type": "os.system", "fields": []},
    {"type": "TensorBatches", "fields": [["x", {"~": "list", "items": []}], ["y", None], ["batch_size", 1], ["shuffle", False],
                                         ["generator", None]]},
    {"type": "TensorBatches", "fields": "not a list"},
])
def test_a_malformed_value_is_refused(fields):
    kernel = Channel().kernel
    with pytest.raises(ChannelError):
        kernel.decode({"~": "value", **fields}, [])


@pytest.mark.parametrize("change", [
    {"batch_size": 0}, {"batch_size": True}, {"shuffle": 1}, {"y": torch.zeros(3, 1)},
    {"generator": torch.zeros(5, dtype=torch.uint8)}, {"generator": torch.zeros(5)},
])
def test_batches_that_cannot_be_iterated_as_sent_are_refused(change):
    x, y = _data(16)
    fields = {**peer_values.fields_of(_shuffled(x, y)), **change}
    with pytest.raises(peer_values.MalformedValue):
        peer_values.rebuild("TensorBatches", fields)


def test_a_training_batch_costs_three_round_trips_and_a_validation_batch_none():
    """The lesson's loop over the channel: the checker's loss function, ``opt.step()`` and ``opt.zero_grad()`` cross
    it (``backward`` through the loss uses the gradients the loss came back with); the batches, the model and the
    validation do not."""
    channel, (x, y) = Channel(), _data(1024)
    model = _model()
    dl, valid_dl = ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0)), ms.TensorBatches(x[:256], y[:256], 128)
    channel.student(ms.train_model)(model, dl, valid_dl, ms.BasicOptim(model.parameters(), 0.5), 2, ms.mnist_loss)
    training_batches = 2 * len(dl)
    assert channel.checker_served == {"call": training_batches, "callmethod": 2 * training_batches}


def test_with_a_plain_sgd_a_training_batch_costs_one_round_trip():
    """The calibrated run's optimizer, PyTorch's plain SGD, crosses by value: only the call of the checker's loss
    function still crosses, and the training ends where it ends in one process."""
    channel, (x, y) = Channel(), _data(1024)
    local, remote = _model(), _model()
    batches = [ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    valid_dl = ms.TensorBatches(x[:256], y[:256], 128)
    expected = ms.train_model(local, batches[0], valid_dl, torch.optim.SGD(local.parameters(), lr=0.5), 2, ms.mnist_loss)
    got = channel.student(ms.train_model)(remote, batches[1], valid_dl, torch.optim.SGD(remote.parameters(), lr=0.5), 2, ms.mnist_loss)
    training_batches = 2 * len(batches[0])
    assert channel.checker_served == {"call": training_batches}
    assert got == expected
    assert torch.equal(remote.weights, local.weights) and torch.equal(remote.bias, local.bias)


def test_the_calibrated_runs_sgd_steps_as_basic_optim():
    """At the calibrated run's lr 1.0, PyTorch's SGD step and the reference's ``BasicOptim`` step give the same
    parameters, bit for bit: the calibration (made with ``BasicOptim``) holds for the check."""
    from autograder.checks.thresholds import TRAIN_MODEL

    x, y = _data(1024)
    runs = []
    for make in (lambda params: torch.optim.SGD(params, lr=TRAIN_MODEL.lr), lambda params: ms.BasicOptim(params, TRAIN_MODEL.lr)):
        model = _model()
        dl = ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
        ms.train_model(model, dl, ms.TensorBatches(x[:256], y[:256], 128), make(model.parameters()), 3, ms.mnist_loss)
        runs.append(model)
    assert TRAIN_MODEL.lr == 1.0
    assert torch.equal(runs[0].weights, runs[1].weights) and torch.equal(runs[0].bias, runs[1].bias)
    assert not torch.equal(runs[0].weights, _model().weights)  # it trained


@pytest.mark.parametrize("settings", [{"momentum": 0.9}, {"weight_decay": 0.01}, {"nesterov": True, "momentum": 0.9},
                                      {"maximize": True}, {"dampening": 0.1}])
def test_an_sgd_with_other_settings_crosses_as_a_handle(settings):
    channel, (x, y) = Channel(), _data(256)
    local, remote = _model(), _model()
    dl = ms.TensorBatches(x, y, 128)
    ms.train_epoch(local, dl, torch.optim.SGD(local.parameters(), lr=0.5, **settings), ms.mnist_loss)
    channel.student(ms.train_epoch)(remote, dl, torch.optim.SGD(remote.parameters(), lr=0.5, **settings), ms.mnist_loss)
    assert channel.checker_served["callmethod"] == 2 * len(dl)  # step and zero_grad, on the checker's optimizer
    torch.testing.assert_close(remote.weights, local.weights)


def test_an_sgd_with_state_or_two_groups_crosses_as_a_handle():
    model = _model()
    two_groups = torch.optim.SGD([{"params": [model.weights]}, {"params": [model.bias]}], lr=0.1)
    assert peer_values.fields_of(two_groups) is None
    assert peer_values.fields_of(torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1))) is None
    assert peer_values.fields_of(torch.optim.SGD(model.parameters(), lr=0.1)) == {"params": list(model.parameters()), "lr": 0.1}


@pytest.mark.parametrize("fields", [
    {"params": [torch.ones(2)], "lr": 0.1},  # not a parameter
    {"params": [], "lr": 0.1},
    {"params": [torch.ones(2, requires_grad=True)], "lr": "0.1"},
    {"params": [torch.ones(2, requires_grad=True)], "lr": -1.0},
    {"params": [torch.ones(2, requires_grad=True)], "lr": float("nan")},
    {"params": [torch.ones(2, requires_grad=True)], "lr": 0.1, "momentum": 0.9},
    {"params": "weights", "lr": 0.1},
])
def test_a_malformed_sgd_is_refused(fields):
    with pytest.raises(peer_values.MalformedValue):
        peer_values.rebuild("SGD", fields)


def test_the_kernel_loads_them_with_the_channel_by_path():
    """The kernel cannot import ``autograder``: it loads ``peer.py`` (and so ``peer_values.py``) by file path."""
    code = textwrap.dedent(f"""
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("channel", {PEER!r})
        peer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(peer)
        assert not hasattr(peer, "autograder")
        batches = peer.values.rebuild("TensorBatches", dict(x=torch.arange(6.0), y=torch.zeros(6), batch_size=4, shuffle=True,
                                                           generator=torch.Generator().manual_seed(0).get_state()))
        print([len(xb) for xb, _ in batches], type(peer.values.rebuild("Linear1", dict(weights=torch.ones(2, 1), bias=torch.ones(1)))).__name__)
    """)
    shown = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split() == ["[4,", "2]", "Linear1"]
