"""Tensors that go back where they came from cross the channel as references, not as copies.

Part of the channel (``peer.py``, which loads this file by path): standalone, it needs only torch.

A check lends the student's kernel objects of its own (an optimizer, a loss function that records
predictions): tensors made on one end go to the other as an argument and often come straight back, as a
batch handed to a lent model or the predictions handed to a lent loss function. Sent back as copies, they
would cross twice and every ``loss.backward()`` would cross the channel once per call it went through. So:

- a large tensor that does not require grad, sent by value, is *offered*: the sender keeps it under a key
  until the receiver's copy is freed (the key then travels back in the next message's ``release`` list);
  while the receiver's copy is unchanged (same object, same version counter), it is sent back as that key
  and the sender's callee gets the sender's own tensor, as it would without the channel;
- a result attached to the receiver's graph by ``Bridge`` is sent back, while unchanged, with a note of the
  call and output it came from (its bytes still travel, in case the other end no longer keeps that call's
  graph): the other end uses its own output tensor, graph included, so ``backward`` goes through both calls
  there at once, and answers no gradient for it (``gradients_of_inputs`` skips non-leaf inputs).
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

import torch

OFFERED_BYTES = 2**16
"""Tensors at least this large are offered; smaller ones cost less to copy than to keep and release."""


class Origins:
    """One end's record of the tensors it offered and of where the tensors it received came from."""

    def __init__(self, side: str, release: Callable[[str], None]) -> None:
        self.side, self.release = side, release
        self.kept: dict[str, torch.Tensor] = {}
        self.came_from: dict[int, tuple[weakref.ref, int, dict]] = {}
        self.counter = itertools.count()

    def offer(self, tensor: torch.Tensor, entry: dict) -> None:
        """Keep ``tensor`` (being sent by value as ``entry``) so that the receiver may send it back by key."""
        if tensor.requires_grad or tensor.numel() * tensor.element_size() < OFFERED_BYTES:
            return
        key = f"{self.side}k{next(self.counter)}"
        self.kept[key] = tensor
        entry["k"] = key

    def kept_tensor(self, key: str) -> torch.Tensor | None:
        """The tensor offered under ``key`` (None if this end never offered it or it was released)."""
        return self.kept.get(key)

    def drop(self, key: str) -> None:
        self.kept.pop(key, None)

    def received(self, tensor: torch.Tensor, key: str) -> None:
        """``tensor`` is this end's copy of one the other end offered under ``key``."""
        self._remember(tensor, {"k": key})

    def bridged(self, outputs: tuple[torch.Tensor, ...], graph: str) -> None:
        """``outputs`` are this end's copies of the results of the other end's call kept as ``graph``."""
        for index, output in enumerate(outputs):
            self._remember(output, {"g": graph, "i": index})

    def back(self, tensor: torch.Tensor) -> dict | None:
        """Where ``tensor`` came from, if it is an unchanged copy of one the other end still holds."""
        known = self.came_from.get(id(tensor))
        if known is None or known[0]() is not tensor or known[1] != tensor._version:
            return None
        return dict(known[2])

    def _remember(self, tensor: torch.Tensor, origin: dict) -> None:
        identity = id(tensor)

        def forget(reference: weakref.ref) -> None:
            if self.came_from.get(identity, (None,))[0] is reference:
                del self.came_from[identity]
            if "k" in origin:
                self.release(origin["k"])

        self.came_from[identity] = (weakref.ref(tensor, forget), tensor._version, origin)


def resolve_graph_output(graphs: dict, back: Any, like: torch.Tensor) -> torch.Tensor | None:
    """The output tensor of a kept call that ``back`` (``{"g": key, "i": index}``) names, if this end still keeps
    that call and the output has the shape and dtype of ``like`` (the copy sent with it); else None."""
    graph, index = back.get("g"), back.get("i")
    if not isinstance(graph, str) or not isinstance(index, int) or graph not in graphs:
        return None
    outputs = graphs[graph][0]
    if not 0 <= index < len(outputs):
        return None
    output = outputs[index]
    return output if output.shape == like.shape and output.dtype == like.dtype else None
