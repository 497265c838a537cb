"""Tensors that go back where they came from cross the channel as references (``peer_origins.py``).

The checker's ``train_model`` check lends its batches and model to the student's kernel: each batch comes to
the kernel by value and goes back as ``model(xb)``'s argument, and each prediction comes to the kernel and goes
back as ``loss_func``'s. These tests hold what the references promise: the callee gets the sender's own tensor
(no bytes travel back), a changed tensor still goes by value, ``backward`` through two calls of the other end
is one request with the gradients of an in-process run, and kept tensors are released.
"""

from __future__ import annotations

import gc
import random
import socket
import threading
from collections import Counter
from typing import Any

import pytest
import torch

from autograder.grading.sandbox.peer import ChannelError, Peer, wire
from autograder.reference import mnist_sgd as ms


class Channel:
    """A "kernel" peer serving in a thread and a "checker" peer in this thread, with what each end served.

    The checker's peer sends a scalar result's gradients with it, as the real checker's does; ``eager=False``
    makes every ``backward`` a request."""

    def __init__(self, eager: bool = True) -> None:
        kernel_socket, checker_socket = socket.socketpair()
        self.kernel, self.checker = Peer(kernel_socket, "k"), Peer(checker_socket, "c", eager_gradients=eager)
        self.checker_served: Counter = Counter()
        self.bytes_to_checker = 0
        serve = self.checker.serve

        def counting_serve(header: dict, buffers: list) -> None:
            self.checker_served[header.get("op")] += 1
            self.bytes_to_checker += sum(len(buffer) for buffer in buffers)
            serve(header, buffers)

        self.checker.serve = counting_serve
        threading.Thread(target=self._serve_kernel, daemon=True).start()

    def _serve_kernel(self) -> None:
        try:
            while True:
                self.kernel.serve(*self.kernel._receive())
        except ChannelError:
            pass

    def student(self, function: Any) -> Any:
        """``function`` as the checker sees a student's function: a proxy for the kernel's object."""
        buffers: list = []
        return self.checker.decode(self.kernel.encode(function, buffers), buffers)


def pass_to(model: Any, x: torch.Tensor, change: bool = False) -> Any:
    """A student's function that hands its argument back to the checker's ``model`` (changing it first)."""
    if change:
        x.add_(1)
    return model(x)


def big_batch() -> torch.Tensor:
    return torch.arange(256 * 784, dtype=torch.float32).reshape(256, 784)


def test_a_batch_sent_back_unchanged_is_the_senders_own_tensor():
    channel, batch, seen = Channel(), big_batch(), []
    student = channel.student(pass_to)
    assert student(lambda x: seen.append(x) or float(x[0, 1]), batch) == 1.0
    assert seen[0] is batch
    assert channel.bytes_to_checker < batch.numel() * batch.element_size() / 100


def test_a_batch_changed_on_the_other_end_goes_back_by_value():
    channel, batch, seen = Channel(), big_batch(), []
    before = batch.clone()
    student = channel.student(pass_to)
    student(lambda x: seen.append(x.clone()) or 0, batch, True)
    assert torch.equal(seen[0], before + 1)
    assert torch.equal(batch, before + 1)  # written back to the caller's tensor, as an in-process call would
    assert channel.bytes_to_checker >= batch.numel() * batch.element_size()


def _linear1(seed: int) -> ms.Linear1:
    torch.manual_seed(seed)
    return ms.Linear1(torch.randn(784, 1, requires_grad=True), torch.randn(1, requires_grad=True))


def test_backward_through_two_calls_of_the_checker_is_one_request_with_in_process_gradients():
    channel = Channel(eager=False)
    x, y = torch.rand(64, 784), (torch.rand(64, 1) > 0.5).float()
    local, remote = _linear1(0), _linear1(0)
    ms.calc_grad(x, y, local, ms.mnist_loss)
    channel.student(ms.calc_grad)(x, y, remote, ms.mnist_loss)
    assert channel.checker_served["backward"] == 1
    torch.testing.assert_close(remote.weights.grad, local.weights.grad)
    torch.testing.assert_close(remote.bias.grad, local.bias.grad)


@pytest.mark.parametrize("eager", [False, True])
def test_training_over_the_channel_matches_in_process_and_releases_its_batches(eager):
    channel = Channel(eager)
    x, y = torch.rand(1024, 784), (torch.rand(1024, 1) > 0.5).float()
    runs = []
    for train_model in (ms.train_model, channel.student(ms.train_model)):
        model = _linear1(1)
        dl, valid_dl = ms.TensorBatches(x, y, 128), ms.TensorBatches(x[:256], y[:256], 128)
        history = train_model(model, dl, valid_dl, ms.BasicOptim(model.parameters(), 0.5), 2, ms.mnist_loss)
        runs.append((history, model.weights.detach().clone(), model.bias.detach().clone()))
    (local_history, *local_params), (remote_history, *remote_params) = runs
    assert remote_history == local_history
    for remote, local in zip(remote_params, local_params):
        torch.testing.assert_close(remote, local)
    assert channel.checker_served["backward"] == (0 if eager else 2 * 8)  # else one per batch, for 8 batches and 2 epochs
    gc.collect()
    channel.student(len)([])  # one more round trip carries the kernel's releases
    assert len(channel.checker.origins.kept) <= 2


def test_frames_arrive_whole_however_the_bytes_are_split():
    """``FrameReader`` reassembles frames of small and large buffers from arbitrary pieces of the stream."""
    frames = [({"op": "a", "n": 1}, []), ({"op": "b"}, [b"x" * 10, bytes(range(256)) * 1000, b""]), ({"op": "c"}, [b"y" * 70_000])]
    source, capture = socket.socketpair()
    collected = bytearray()
    done = threading.Event()

    def drain() -> None:
        while chunk := capture.recv(2**20):
            collected.extend(chunk)
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    for header, buffers in frames:
        wire.send_frame(source, header, buffers)
    source.close()
    done.wait(10)
    writer, reading = socket.socketpair()
    reading.settimeout(30)  # a reader that lost its place fails instead of waiting forever
    generator = random.Random(0)

    def trickle() -> None:
        position = 0
        while position < len(collected):
            size = generator.choice((1, 7, 8, 100, 65_535, 65_537, 300_000))
            writer.sendall(collected[position : position + size])
            position += size

    threading.Thread(target=trickle, daemon=True).start()
    reader = wire.FrameReader(reading)
    for header, buffers in frames:
        got_header, got_buffers = wire.recv_frame(reader)
        assert {key: got_header[key] for key in header} == header
        assert [bytes(buffer) for buffer in got_buffers] == [bytes(buffer) for buffer in buffers]


def test_a_reference_the_receiver_never_offered_is_refused_and_an_unknown_graph_falls_back_to_the_bytes():
    """A hostile kernel cannot name the checker's tensors: only keys the checker offered resolve, and a note of
    a call the checker does not keep gives the tensor sent with it, not anything of the checker's."""
    checker = Peer(socket.socketpair()[0], "c")
    offered = big_batch()
    entry: dict = {}
    checker.origins.offer(offered, entry)
    assert checker._decode_tensor({"~": "tensor", "back": {"k": entry["k"]}}, [], None) is offered
    try:
        checker._decode_tensor({"~": "tensor", "back": {"k": "ck999"}}, [], None)
    except ChannelError:
        pass
    else:
        raise AssertionError("a key the checker never offered was resolved")
    sent = torch.ones(3)
    forged = {**wire.tensor_entry(sent, 0), "back": {"g": "cg404", "i": 0}}
    received = checker._decode_tensor(forged, [bytearray(wire.tensor_bytes(sent))], None)
    assert torch.equal(received, sent) and received is not sent


def test_a_loss_comes_back_with_the_gradients_its_backward_request_would_give():
    """The checker answers a call of its loss function with the loss's gradients for a gradient of 1: the kernel's
    ``loss.backward()`` asks nothing, and every gradient is the one the request gives, bit for bit."""
    x, y = torch.rand(64, 784), (torch.rand(64, 1) > 0.5).float()
    grads = []
    for eager in (True, False):
        channel, model = Channel(eager), _linear1(0)
        channel.student(ms.calc_grad)(x, y, model, ms.mnist_loss)
        assert channel.checker_served["backward"] == (0 if eager else 1)
        grads.append((model.weights.grad.clone(), model.bias.grad.clone()))
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def twice_the_loss(xb, yb, model, loss_func):
    """A student's ``calc_grad`` that backpropagates another gradient than 1."""
    (2 * loss_func(model(xb), yb)).backward()


def loss_of_the_weights_twice(xb, yb, model, loss_func):
    """A student's function that backpropagates a loss of the parameters twice: the second time, they have a gradient."""
    for _ in range(2):
        loss_func(model.weights, torch.zeros_like(model.weights)).backward()


class ScaledLoss:
    """A checker's loss with a parameter of its own: ``backward`` must reach it, as in one process."""

    def __init__(self) -> None:
        self.scale = torch.ones((), requires_grad=True)

    def __call__(self, predictions, targets):
        return ((predictions - targets) ** 2).mean() * self.scale


class Doubled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


@pytest.mark.parametrize("case", ["another gradient", "a leaf of the checker's", "a Python function", "a gradient already"])
def test_a_backward_the_gradients_sent_ahead_cannot_answer_is_a_request(case):
    x, y = torch.rand(16, 784), (torch.rand(16, 1) > 0.5).float()
    student, make_loss = {
        "another gradient": (twice_the_loss, lambda: ms.mnist_loss),
        "a leaf of the checker's": (ms.calc_grad, ScaledLoss),
        "a Python function": (ms.calc_grad, lambda: lambda p, t: ms.mnist_loss(Doubled.apply(p), t)),
        "a gradient already": (loss_of_the_weights_twice, lambda: ms.mnist_loss),  # the first backward asks nothing
    }[case]
    channel, remote, local = Channel(), _linear1(2), _linear1(2)
    remote_loss, local_loss = make_loss(), make_loss()
    student(x, y, local, local_loss)
    channel.student(student)(x, y, remote, remote_loss)
    assert channel.checker_served["backward"] == 1
    for got, expected in ((remote.weights.grad, local.weights.grad), (remote.bias.grad, local.bias.grad)):
        assert (got is None and expected is None) or torch.equal(got, expected)
    if case == "a leaf of the checker's":
        assert torch.equal(remote_loss.scale.grad, local_loss.scale.grad)


@pytest.mark.parametrize("eager", ["not a list", [None, None], [torch.ones(3)], [torch.ones(4, dtype=torch.float64)]])
def test_malformed_gradients_sent_ahead_are_refused(eager):
    with pytest.raises(ChannelError):
        wire.gradients_for(eager, [torch.ones(4, requires_grad=True)])
