"""The calibrated run's loss recorder crosses the channel by value (``peer_values.LossRecorder``).

The kernel gets a recorder of its own, whose buffers are written back to the checker's when the call returns. The
loss it wraps crosses as any object: the kernel's own function (a student's ``mnist_loss`` sent back to the
kernel) runs in the kernel, so a training batch costs no round trip; the checker's stays a handle, one round trip
per batch. Either way the checker gets the predictions and targets an in-process run records.
"""

from __future__ import annotations

import pytest
import torch
from test_channel_references import Channel
from test_channel_values import _data, _model

from autograder.grading.sandbox import peer_values
from autograder.grading.sandbox.peer import ChannelError
from autograder.reference import mnist_sgd as ms


def recorder(loss_func, room: int = 4096, calls: int = 64) -> peer_values.LossRecorder:
    return peer_values.LossRecorder(loss_func, torch.zeros(room), torch.zeros(room), torch.zeros(calls, dtype=torch.int64),
                                    torch.zeros(1, dtype=torch.int64))


def _train(train_model, loss_func, kept: peer_values.LossRecorder | None = None):
    """``train_model`` of a fresh model on fixed batches, with PyTorch's SGD and a recorder of ``loss_func``."""
    x, y = _data(1024)
    model = _model()
    dl = ms.TensorBatches(x, y, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    kept = kept or recorder(loss_func)
    history = train_model(model, dl, ms.TensorBatches(x[:256], y[:256], 128), torch.optim.SGD(model.parameters(), lr=0.5), 2, kept)
    return history, model, kept, 2 * len(dl)


def _same_recordings(got: peer_values.LossRecorder, expected: peer_values.LossRecorder) -> None:
    assert int(got.count[0]) == int(expected.count[0]) > 0
    for (p, t), (q, u) in zip(got.batches(), expected.batches(), strict=True):
        assert p.shape == (len(p), 1) and torch.equal(p, q) and torch.equal(t, u)


def test_a_handle_sent_back_is_its_owners_own_object():
    channel = Channel()
    own = channel.student(ms.mnist_loss)
    assert channel.student(lambda loss_func: loss_func is ms.mnist_loss)(own) is True
    assert sum(channel.checker_served.values()) == 0


def test_with_the_kernels_own_loss_a_training_batch_costs_no_round_trip_and_the_recordings_come_back():
    channel = Channel()
    expected_history, local, expected, _ = _train(ms.train_model, ms.mnist_loss)
    history, remote, got, _ = _train(channel.student(ms.train_model), channel.student(ms.mnist_loss))
    assert sum(channel.checker_served.values()) == 0
    assert history == expected_history
    assert torch.equal(remote.weights, local.weights) and torch.equal(remote.bias, local.bias)
    _same_recordings(got, expected)


def test_with_the_checkers_loss_a_training_batch_costs_one_round_trip_and_is_recorded():
    channel = Channel()
    expected_history, _, expected, _ = _train(ms.train_model, ms.mnist_loss)
    history, _, got, batches = _train(channel.student(ms.train_model), ms.mnist_loss)
    assert channel.checker_served == {"call": batches}
    assert history == expected_history
    _same_recordings(got, expected)


def test_a_call_that_does_not_fit_is_not_recorded_but_still_answered():
    kept = recorder(ms.mnist_loss, room=600, calls=2)
    predictions, targets = torch.randn(256, 1), (torch.rand(256, 1) > 0.5).float()
    losses = [kept(predictions, targets) for _ in range(3)]
    assert all(torch.equal(loss, ms.mnist_loss(predictions, targets)) for loss in losses)
    assert int(kept.count[0]) == 2 and kept.sizes.tolist() == [256, 256]
    assert [p.shape for p, _ in kept.batches()] == [(256, 1), (256, 1)]
    assert torch.equal(kept.batches()[1][0], predictions) and torch.equal(kept.batches()[1][1], targets)
    mismatched = recorder(lambda p, t: p.sum())
    assert torch.equal(mismatched(predictions, targets[:10]), predictions.sum()) and int(mismatched.count[0]) == 0


@pytest.mark.parametrize("change", [
    {"count": torch.zeros(2, dtype=torch.int64)},
    {"count": torch.zeros(1)},
    {"count": torch.tensor([3])},  # more calls than sizes
    {"sizes": torch.zeros(2)},
    {"sizes": torch.tensor([-1, 0]), "count": torch.tensor([1])},
    {"sizes": torch.tensor([9, 0]), "count": torch.tensor([1])},  # more values than the buffers hold
    {"targets": torch.zeros(7)},
    {"predictions": torch.zeros(8, 1), "targets": torch.zeros(8, 1)},
])
def test_a_malformed_recorder_is_refused(change):
    fields = {"loss_func": None, "predictions": torch.zeros(8), "targets": torch.zeros(8), "sizes": torch.zeros(2, dtype=torch.int64),
              "count": torch.zeros(1, dtype=torch.int64), **change}
    with pytest.raises(peer_values.MalformedValue):
        peer_values.rebuild("LossRecorder", fields)


def test_the_channel_refuses_a_malformed_recorder():
    kernel = Channel().kernel
    with pytest.raises(ChannelError):
        kernel.decode({"~": "value", "type": "LossRecorder", "fields": [["loss_func", None]]}, [])
