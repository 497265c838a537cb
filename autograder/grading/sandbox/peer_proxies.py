"""The channel's proxies: ``Remote`` for an object the other end holds, and ``Bridge`` for autograd across it.

Part of the channel (``peer.py``, which loads this file by path): standalone, it needs only torch. A proxy
forwards what is done to it to its ``Peer`` (the connection that received the handle): calls, public
attributes and a few protocols (iteration, ``len``, indexing, ``float``); names that start with ``_`` are never
forwarded, and nothing can be set on it.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch


class Bridge(torch.autograd.Function):
    """Attach values computed by the other end to this end's autograd graph.

    ``forward`` returns copies of ``values``; ``backward`` sends the output gradients to the other end,
    which returns the gradients of the call's differentiable arguments (``inputs``).
    """

    @staticmethod
    def forward(ctx, peer: Any, key: str, count: int, anchor: torch.Tensor, *tensors: torch.Tensor):
        ctx.peer, ctx.key, ctx.count = peer, key, count
        ctx.set_materialize_grads(False)  # no gradient reached the outputs: None, not zeros (see backward)
        weakref.finalize(ctx, peer.released.append, key)  # once this node is freed, the other end may drop the graph
        values = tensors[count:]
        ctx.value_count = len(values)
        return tuple(value.clone() for value in values)

    @staticmethod
    def backward(ctx, *grad_outputs: torch.Tensor | None):
        if all(grad is None for grad in grad_outputs):  # the gradient went on at the other end (peer_origins)
            return (None,) * (4 + ctx.count + ctx.value_count)
        grads = ctx.peer.remote_backward(ctx.key, list(grad_outputs), ctx.count)
        return (None, None, None, None, *grads, *([None] * ctx.value_count))


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
