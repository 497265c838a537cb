"""The channel's proxies: ``Remote`` for an object the other end holds, and ``Bridge`` for autograd across it.

Part of the channel (``peer.py``, which loads this file by path): standalone, it needs only torch. A proxy
forwards what is done to it to its ``Peer`` (the connection that received the handle): calls, public
attributes and a few protocols (iteration, ``len``, indexing, ``float``); names that start with ``_`` are never
forwarded, and nothing can be set on it.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import torch


class Bridge(torch.autograd.Function):
    """Attach values computed by the other end to this end's autograd graph.

    ``forward`` returns copies of ``values``; ``backward`` sends the output gradients to the other end,
    which returns the gradients of the call's differentiable arguments (``inputs``). When the other end sent
    them with its answer (``eager``: a scalar result, such as a loss, whose gradient is 1 in a plain
    ``loss.backward()``), that ``backward`` needs no request.
    """

    @staticmethod
    def forward(ctx, peer: Any, key: str, count: int, eager: list | None, anchor: torch.Tensor, *tensors: torch.Tensor):
        ctx.peer, ctx.key, ctx.count, ctx.eager = peer, key, count, eager
        ctx.set_materialize_grads(False)  # no gradient reached the outputs: None, not zeros (see backward)
        weakref.finalize(ctx, peer.released.append, key)  # once this node is freed, the other end may drop the graph
        values = tensors[count:]
        ctx.value_count = len(values)
        return tuple(value.clone() for value in values)

    @staticmethod
    def backward(ctx, *grad_outputs: torch.Tensor | None):
        if all(grad is None for grad in grad_outputs):  # the gradient went on at the other end (peer_origins)
            return (None,) * (5 + ctx.count + ctx.value_count)
        if ctx.eager is not None and _is_one(grad_outputs):
            grads = [None if grad is None else grad.clone() for grad in ctx.eager]
        else:
            grads = ctx.peer.remote_backward(ctx.key, list(grad_outputs), ctx.count)
        return (None, None, None, None, None, *grads, *([None] * ctx.value_count))


def _is_one(grad_outputs: tuple) -> bool:
    """Whether the only output's gradient is the scalar 1 (``loss.backward()``)."""
    return (len(grad_outputs) == 1 and isinstance(grad_outputs[0], torch.Tensor) and grad_outputs[0].dim() == 0
            and bool(grad_outputs[0] == 1))


def eager_gradients(outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor | None] | None:
    """The gradients of ``inputs`` for the scalar ``outputs[0]`` with gradient 1, computed now, for the caller's
    ``loss.backward()`` to use without a ``backward`` request; None where they could differ from that request's.

    Computed now only when the answer is the same: one floating-point scalar output, and a graph made of
    PyTorch's own operations (no ``Function`` of Python code, such as a ``Bridge`` back to the other end) whose
    only leaves that require grad are the ``inputs``, each a leaf without a gradient or hook (so the request's
    ``gradients_of_inputs`` would accumulate nothing anywhere else, and subtract nothing). Hooks on the graph's
    intermediate tensors cannot be seen from its nodes: only the checker computes gradients ahead
    (``Peer.eager_gradients``), whose functions register none; a student's code never runs ahead of its call.
    The graph is kept as before: a ``backward`` with another gradient still asks for it.
    """
    if len(outputs) != 1 or outputs[0].dim() != 0 or not outputs[0].is_floating_point() or outputs[0].grad_fn is None:
        return None
    if not all(x.is_leaf and x.grad is None and not x._backward_hooks for x in inputs):
        return None
    allowed, seen, pending = {id(x) for x in inputs}, set(), [outputs[0].grad_fn]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            return None
        variable = getattr(node, "variable", None)  # an AccumulateGrad node: a leaf
        if variable is not None and id(variable) not in allowed:
            return None
        pending.extend(next_node for next_node, _ in node.next_functions)
    return list(torch.autograd.grad(outputs, inputs, torch.ones_like(outputs[0]), retain_graph=True, allow_unused=True))


class KeptGraphs(OrderedDict):
    """This end's results that the other end may still call ``backward`` through: key -> (outputs, inputs), the
    oldest dropped past ``limit`` (``Peer._backward`` answers from them)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: str, outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> None:
        self[key] = (outputs, inputs)
        while len(self) > self.limit:
            self.popitem(last=False)


def gradients_of_inputs(outputs: list[torch.Tensor], inputs: list[torch.Tensor], grad_outputs: list[Any]) -> list[torch.Tensor | None]:
    """The gradients of ``inputs`` (a kept call's differentiable arguments), given its ``outputs``' gradients.

    Other leaves of the graph (this end's own parameters) accumulate their gradients as a local ``backward``
    would; the inputs' own ``.grad`` is left as it was (the caller accumulates). An input that is not a leaf is
    one of this end's own results sent back (``peer_origins``): the gradient went on through its graph here, so
    its answer is None. A missing output gradient is taken as zeros.
    """
    leaves = [x.is_leaf for x in inputs]
    before = [None if not leaf or x.grad is None else x.grad.detach().clone() for x, leaf in zip(inputs, leaves)]
    pairs = [(o, g if isinstance(g, torch.Tensor) else torch.zeros_like(o)) for o, g in zip(outputs, grad_outputs)]
    torch.autograd.backward([o for o, _ in pairs], [g.to(o.device, o.dtype) for o, g in pairs], retain_graph=True)
    grads = []
    for x, old, leaf in zip(inputs, before, leaves):
        if not leaf:
            grads.append(None)
            continue
        new = x.grad
        grads.append(None if new is None else (new.detach().clone() if old is None else new.detach() - old))
        x.grad = old
    return grads


class Remote:
    """A proxy for an object held by the other end of the channel.

    ``methods`` are the public methods the object's class defines (as its owner listed them): reading one
    gives a ``RemoteMethod`` at once, without asking the owner.
    """

    __slots__ = ("_peer", "_handle", "_label", "_methods")

    def __init__(self, peer: Any, handle: str, label: str, methods: frozenset[str] = frozenset()) -> None:
        object.__setattr__(self, "_peer", peer)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_methods", methods)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._peer.request({"op": "call", "h": self._handle}, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._methods:
            return RemoteMethod(self, name)
        return self._peer.request({"op": "getattr", "h": self._handle, "name": name})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on an object of the other process")

    def _dunder(self, name: str, *args: Any) -> Any:
        return self._peer.request({"op": "dunder", "h": self._handle, "name": name}, args)

    def __iter__(self):
        return self._dunder("iter")

    def __next__(self):
        return self._dunder("next")

    def __len__(self) -> int:
        return self._dunder("len")

    def __getitem__(self, key: Any) -> Any:
        return self._dunder("getitem", key)

    def __float__(self) -> float:
        return self._dunder("float")

    def __int__(self) -> int:
        return self._dunder("int")

    def __index__(self) -> int:
        return self._dunder("index")

    def __bool__(self) -> bool:
        return self._dunder("bool")

    def __repr__(self) -> str:
        return f"<{self._label} in the other process>"


class RemoteMethod:
    """``remote.name`` for a method of the remote object's class: calling it is one ``callmethod`` request."""

    __slots__ = ("_remote", "_name")

    def __init__(self, remote: Remote, name: str) -> None:
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        remote = self._remote
        return remote._peer.request({"op": "callmethod", "h": remote._handle, "name": self._name}, args, kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on a method of the other process")

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._remote._label} in the other process>"
