"""The channel's tracked tensors: parameters mirrored at both ends for the whole connection.

Part of the channel (``peer.py``, which loads this file by path and hands it the wire module): standalone, it
needs only torch. A leaf tensor that requires grad is *tracked* when sent: the receiver keeps one mirror of it,
and both ends send each other its value, gradient and ``requires_grad`` whenever they changed, with every
message, so in-place updates and ``.grad`` changes travel both ways.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch


class Tracked:
    """This end's tracked tensors, by key, with the state last exchanged for each."""

    def __init__(self, wire: Any, new_key: Callable[[str], str]) -> None:
        self.wire, self.new_key = wire, new_key
        self.references: dict[str, weakref.ref] = {}
        self.key_of: dict[int, str] = {}
        self.sent_state: dict[str, tuple] = {}

    def key(self, tensor: torch.Tensor) -> str:
        """The key of ``tensor`` (tracking it from now on), its state recorded as sent."""
        key = self.key_of.get(id(tensor))
        if key is None or self.get(key) is not tensor:
            key = self.new_key("t")
            self.references[key] = weakref.ref(tensor)
            self.key_of[id(tensor)] = key
        self.sent_state[key] = self.wire.tensor_state(tensor)
        return key

    def get(self, key: str) -> torch.Tensor | None:
        reference = self.references.get(key)
        return None if reference is None else reference()

    def apply(self, key: str, data: torch.Tensor, grad: torch.Tensor | None, requires_grad: bool) -> torch.Tensor:
        """Bring the tracked tensor ``key`` to the given state (creating the mirror the first time)."""
        tensor = self.get(key)
        if tensor is None:
            tensor = data.requires_grad_(requires_grad)
            self.references[key] = weakref.ref(tensor)
            self.key_of[id(tensor)] = key
        else:
            with torch.no_grad():
                if tensor.shape == data.shape and tensor.dtype == data.dtype:
                    tensor.data.copy_(data)  # through .data: no version bump, as optimizers and gradcheck do
                else:
                    tensor.data = data
            if tensor.is_leaf and tensor.requires_grad != requires_grad:
                tensor.requires_grad_(requires_grad)
        if tensor.is_leaf and (tensor.requires_grad or grad is None):
            tensor.grad = grad
        self.sent_state[key] = self.wire.tensor_state(tensor)
        return tensor

    def changes(self, encode_tensor: Callable[[torch.Tensor], dict]) -> list:
        """Updates for every tracked tensor whose value, gradient or flag changed since last exchanged."""
        updates = []
        for key in list(self.references):
            tensor = self.get(key)
            if tensor is None:
                del self.references[key]
                self.sent_state.pop(key, None)
                continue
            state = self.sent_state.get(key)
            if state is not None and self.wire.same_state(tensor, state):
                continue
            entry = encode_tensor(tensor.detach())
            entry["rg"] = bool(tensor.requires_grad)
            if tensor.grad is not None:
                entry["grad"] = encode_tensor(tensor.grad.detach())
            updates.append([key, entry])
            self.sent_state[key] = self.wire.tensor_state(tensor)
        return updates

    def apply_changes(self, updates: Any, decode_tensor: Callable[[dict], torch.Tensor]) -> None:
        """Apply the other end's ``changes``; refuse malformed ones with ``ChannelError``."""
        for item in self.wire.as_list(updates):
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], dict):
                raise self.wire.ChannelError("malformed update")
            key, entry = self.wire.as_str(item[0]), item[1]
            if self.get(key) is None:
                continue  # nothing here refers to that tensor any more
            data = decode_tensor({**entry, "grad": None})
            grad = decode_tensor(entry["grad"]) if isinstance(entry.get("grad"), dict) else None
            self.apply(key, data.detach(), grad, bool(entry.get("rg")))
