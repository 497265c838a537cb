"""A data-only channel between the trusted checker and a sandboxed student kernel.

Both ends run this same module: the checker imports it, the kernel loads it by file path (the kernel
cannot import ``autograder``). It needs only the standard library and torch, and it never unpickles
anything: a message is a JSON header plus raw byte buffers (tensor contents). This file is the ``Peer``, one
end of a connection; ``peer_wire.py`` (the wire format), ``peer_proxies.py`` (``Remote``, ``Bridge``),
``peer_tracking.py`` (tracked tensors) and ``peer_origins.py`` (tensors sent back as references) its parts.

What crosses the channel:

- plain data (None, bool, int, float, str, lists, tuples, dicts, numpy arrays, dtypes) by value;
- tensors by value (dtype, shape, device, bytes), with ``requires_grad`` and ``.grad``;
- the model and the batches of the reference (``Linear1``, ``TensorBatches``), a plain ``torch.optim.SGD``, the
  checks' ``CountingSGD`` and ``LossRecorder`` by value, field by field, as objects of the receiver's own copy of
  their classes (``peer_values.py``);
- every other object as a *handle*: the receiver gets a ``Remote`` proxy whose calls, public attributes
  and a few protocols (iteration, ``len``, indexing, ``float``) are forwarded to the owner. Names that
  start with ``_`` are never forwarded, and handles die with their connection. A handle lists the public
  methods its class defines, so that ``obj.method(...)`` costs one round trip (a ``callmethod``), not two
  (a ``getattr`` answered with a bound method's handle, then a ``call``). A handle sent back to the end that
  lent it is that end's own object again.

So that the checks behave as if the student's functions ran in the checker's process:

- a leaf tensor that requires grad (a parameter) is *tracked*: the receiver keeps one mirror of it for the
  whole connection, and both ends send each other its value, gradient and ``requires_grad`` whenever they
  changed, with every message. In-place updates and ``.grad`` changes therefore travel both ways;
- other tensors passed as call arguments are written back to the caller when the callee changed them;
- a tensor that goes back unchanged to the end it came from crosses as a reference to that end's own tensor
  (``peer_origins.py``): a training batch crosses once, and ``backward`` through two of the other end's
  calls is one request;
- autograd crosses the channel: a result that requires grad is attached to the caller's graph by
  ``Bridge``, whose backward asks the callee for the gradients of the call's differentiable arguments.
  The callee keeps the call's graph until the caller's ``Bridge`` node is freed. A checker (``eager_gradients``)
  answers a scalar result, such as a loss, with those gradients for a gradient of 1 at once
  (``peer_proxies.eager_gradients``), so the kernel's ``loss.backward()`` asks nothing.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import socket
import struct
import sys
import types
from typing import Any

import torch


def _sibling(name: str) -> types.ModuleType:
    """The sibling file ``name``: imported with the package when this module was (the checker), else loaded by
    its path (the kernel, which cannot import ``autograder``)."""
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"autograder_sandbox_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # where dataclasses (peer_values.py) look up a class's module
    spec.loader.exec_module(module)
    return module


files = _sibling("peer_files")
wire, proxies, origins, tracking, values = (_sibling(name) for name in files.SIBLINGS)
ChannelError, RemoteError, as_list, as_str = wire.ChannelError, wire.RemoteError, wire.as_list, wire.as_str
Bridge, Remote, RemoteMethod = proxies.Bridge, proxies.Remote, proxies.RemoteMethod
SOURCE_FILES = files.SOURCE_FILES
"""This file and its siblings': the kernel may read them (its tracebacks show their lines)."""
KEPT_GRAPHS = 4096


class Peer:
    """One end of a connection: encodes and decodes values, lends objects, serves the other end's requests.

    A ``request`` sends a message and serves the other end's nested requests (callbacks) until the
    answer comes, so calls may nest to any depth in both directions.
    """

    def __init__(self, sock: socket.socket, side: str, eager_gradients: bool = False) -> None:
        self.sock, self.side, self.eager_gradients = sock, side, eager_gradients
        self.reader = wire.FrameReader(sock)
        self.lent: dict[str, Any] = {}
        self.graphs = proxies.KeptGraphs(KEPT_GRAPHS)
        self.counter = itertools.count()
        self.tracked = tracking.Tracked(wire, self._new_key)
        self.anchor = torch.zeros((), requires_grad=True)
        self.released: list[str] = []
        self.origins = origins.Origins(side, self.released.append)
        self.closed = False

    # -- encoding ---------------------------------------------------------------------------------

    def _new_key(self, prefix: str) -> str:
        return f"{self.side}{prefix}{next(self.counter)}"

    def _encode_tensor(self, tensor: torch.Tensor, buffers: list, scope: dict | None) -> dict:
        tracked = tensor.is_leaf and tensor.requires_grad
        back = None if tracked or scope is None else self.origins.back(tensor)
        if back is not None and "k" in back:  # the other end's own tensor, unchanged: its key, no bytes
            entry = {"~": "tensor", "back": back}
            if "writeback" in scope:
                entry["wb"] = len(scope["writeback"])
                scope["writeback"].append(tensor)
            return entry
        entry = wire.tensor_entry(tensor, len(buffers))
        buffers.append(wire.tensor_bytes(tensor))
        if tracked:
            entry["key"] = self.tracked.key(tensor)
        elif back is not None:
            entry["back"] = back
        elif scope is not None:
            self.origins.offer(tensor, entry)
        scope = scope or {}
        if not tracked and "writeback" in scope:
            entry["wb"] = len(scope["writeback"])
            scope["writeback"].append(tensor)
        if tensor.requires_grad and "differentiable" in scope:
            entry["diff"] = len(scope["differentiable"])
            scope["differentiable"].append(tensor)
        if tensor.requires_grad and not tracked and "outputs" in scope:
            entry["out"] = len(scope["outputs"])
            scope["outputs"].append(tensor)
        if tensor.is_leaf and tensor.grad is not None:
            entry["grad"] = self._encode_tensor(tensor.grad.detach(), buffers, None)
        return entry

    def encode(self, value: Any, buffers: list, scope: dict | None = None, depth: int = 0) -> Any:
        """A JSON-able form of ``value``; tensor bytes go to ``buffers``; other objects are lent as handles.

        ``scope`` (for call arguments) collects the tensors to write back and the differentiable ones.
        """
        if depth > wire.MAX_DEPTH:
            raise ValueError("value nested too deeply to send")
        atom = wire.encode_atom(value)
        if atom is not wire.NOT_AN_ATOM:
            return atom
        kind = type(value)
        if isinstance(value, torch.Tensor):
            return self._encode_tensor(value, buffers, scope)
        if kind in (list, tuple):
            return {"~": kind.__name__, "items": [self.encode(item, buffers, scope, depth + 1) for item in value]}
        if kind is dict:
            return {"~": "dict", "items": [[self.encode(k, buffers, scope, depth + 1), self.encode(v, buffers, scope, depth + 1)] for k, v in value.items()]}
        if kind is slice:
            return {"~": "slice", "v": [self.encode(part, buffers, None, depth + 1) for part in (value.start, value.stop, value.step)]}
        numpy_value = wire.numpy_value(value)
        if numpy_value is not None:
            return self.encode(numpy_value, buffers, scope, depth + 1)
        if type(value) is Remote and value._peer is self:  # the other end's own object going back: its handle
            return {"~": "obj", "h": value._handle, "label": value._label}
        fields = values.fields_of(value)
        if fields is not None:
            return {"~": "value", "type": kind.__name__, "fields": [
                [name, self.encode(field, buffers, None if name in values.COPIED_FIELDS else scope, depth + 1)]
                for name, field in fields.items()
            ]}
        handle = self._new_key("h")
        self.lent[handle] = value
        entry = {"~": "obj", "h": handle, "label": wire.label(value)}
        methods = wire.public_methods(value)
        if methods:
            entry["methods"] = methods
        return entry

    def decode(self, value: Any, buffers: list, scope: dict | None = None, depth: int = 0) -> Any:
        """The local value for an encoded one; raises ``ChannelError`` for anything malformed."""
        if depth > wire.MAX_DEPTH:
            raise ChannelError("value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if not isinstance(value, dict) or "~" not in value:
            raise ChannelError("malformed value")
        kind = value["~"]
        if kind in ("list", "tuple"):
            items = [self.decode(item, buffers, scope, depth + 1) for item in as_list(value.get("items"))]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            result = {}
            for pair in as_list(value.get("items")):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ChannelError("malformed dict item")
                key = self.decode(pair[0], buffers, scope, depth + 1)
                try:
                    result[key] = self.decode(pair[1], buffers, scope, depth + 1)
                except TypeError as error:
                    raise ChannelError("unhashable dict key") from error
            return result
        if kind == "tensor":
            return self._decode_tensor(value, buffers, scope)
        atom = wire.decode_atom(kind, value)
        if atom is not wire.NOT_AN_ATOM:
            return atom
        if kind == "slice":
            parts = [self.decode(part, buffers, None, depth + 1) for part in as_list(value.get("v"))]
            if len(parts) != 3:
                raise ChannelError("malformed slice")
            return slice(*parts)
        if kind == "value":
            return self._decode_value(value, buffers, scope, depth)
        if kind == "obj":
            handle = as_str(value.get("h"))
            if handle in self.lent:  # our own object coming back
                return self.lent[handle]
            return Remote(self, handle, as_str(value.get("label", "object"))[:80], wire.method_names(value.get("methods", [])))
        raise ChannelError(f"unknown value kind {kind!r}")

    def _decode_value(self, value: dict, buffers: list, scope: dict | None, depth: int) -> Any:
        """The receiver's copy of an object sent by value (``peer_values.py``)."""
        fields = {}
        for pair in as_list(value.get("fields")):
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                raise ChannelError("malformed field")
            name = pair[0]
            fields[name] = self.decode(pair[1], buffers, None if name in values.COPIED_FIELDS else scope, depth + 1)
        try:
            return values.rebuild(as_str(value.get("type")), fields)
        except values.MalformedValue as error:
            raise ChannelError(str(error)) from error

    def _decode_tensor(self, entry: dict, buffers: list, scope: dict | None) -> torch.Tensor:
        back = entry.get("back")
        if isinstance(back, dict) and "k" in back:
            return self._decode_kept(as_str(back["k"]), entry, scope or {})
        index = entry.get("buf")
        if not isinstance(index, int) or not 0 <= index < len(buffers):
            raise ChannelError("malformed tensor")
        fresh = wire.tensor_from(buffers[index], entry.get("dtype"), entry.get("shape"), entry.get("device", "cpu"))
        grad = None
        if isinstance(entry.get("grad"), dict):
            grad = self._decode_tensor(entry["grad"], buffers, None)
        key = entry.get("key")
        requires_grad = bool(entry.get("rg")) and (fresh.is_floating_point() or fresh.is_complex())
        own = origins.resolve_graph_output(self.graphs, back, fresh) if isinstance(back, dict) else None
        if key is not None:
            tensor = self.tracked.apply(as_str(key), fresh, grad, requires_grad)
        elif own is not None:  # one of our results coming back: our tensor, with its graph
            tensor = own
        else:
            tensor = fresh.requires_grad_(requires_grad) if requires_grad else fresh
            if grad is not None and tensor.requires_grad:
                tensor.grad = grad
            if isinstance(entry.get("k"), str):
                self.origins.received(tensor, entry["k"])
        scope = scope or {}
        if "wb" in entry and "writeback" in scope:
            scope["writeback"].append((entry["wb"], tensor, tensor._version if own is not None else wire.tensor_state(tensor)))
        if "diff" in entry and "differentiable" in scope:
            scope["differentiable"].append(tensor)
        if "out" in entry and "outputs" in scope and own is None:
            scope["outputs"].append(tensor)
        return tensor

    def _decode_kept(self, key: str, entry: dict, scope: dict) -> torch.Tensor:
        """A tensor this end offered, sent back unchanged by its key."""
        tensor = self.origins.kept_tensor(key)
        if tensor is None:
            raise ChannelError("a reference to a tensor this end does not keep")
        if "wb" in entry and "writeback" in scope:
            scope["writeback"].append((entry["wb"], tensor, tensor._version))
        return tensor

    # -- messages ---------------------------------------------------------------------------------

    def _send(self, header: dict, buffers: list) -> None:
        if self.closed:
            raise ChannelError("the connection is closed")
        header["sync"] = self.tracked.changes(lambda tensor: self._encode_tensor(tensor, buffers, None))
        released = [self.released.pop() for _ in range(len(self.released))]  # a copy freed meanwhile waits its turn
        header["release"] = released
        try:
            wire.send_frame(self.sock, header, buffers)
        except OSError as error:
            self.closed = True
            raise ChannelError(f"the other end went away: {error}") from error

    def _receive(self) -> tuple[dict, list]:
        if self.closed:
            raise ChannelError("the connection is closed")
        try:
            header, buffers = wire.recv_frame(self.reader)
        except (OSError, ChannelError, struct.error) as error:
            self.closed = True
            raise ChannelError(f"the other end went away: {error}") from error
        self.tracked.apply_changes(header.get("sync", []), lambda entry: self._decode_tensor(entry, buffers, None))
        for key in as_list(header.get("release", [])):
            if isinstance(key, str):
                self.graphs.pop(key, None)
                self.origins.drop(key)
        return header, buffers

    def request(self, header: dict, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Send a request and serve nested requests until its answer arrives; return or raise that answer."""
        buffers: list = []
        scope = {"writeback": [], "differentiable": []}
        header = {**header, "id": self._new_key("r"), "grad": torch.is_grad_enabled()}
        header["args"] = self.encode(list(args), buffers, scope)
        header["kwargs"] = self.encode(dict(kwargs or {}), buffers, scope)
        self._send(header, buffers)
        while True:
            reply, reply_buffers = self._receive()
            if reply.get("re") == header["id"]:
                return self._finish(reply, reply_buffers, scope)
            if "re" in reply:
                raise ChannelError("an answer to a request that is not pending")
            self.serve(reply, reply_buffers)

    def _finish(self, reply: dict, buffers: list, scope: dict) -> Any:
        for item in as_list(reply.get("writeback", [])):
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int):
                raise ChannelError("malformed write-back")
            index, entry = item
            if not 0 <= index < len(scope["writeback"]):
                raise ChannelError("write-back for an unknown argument")
            original = scope["writeback"][index]
            value = self._decode_tensor(entry, buffers, None)
            with torch.no_grad():
                if original.shape == value.shape:
                    original.copy_(value.to(original.dtype))
        if reply.get("op") == "raise":
            raise wire.remote_error(as_str(reply.get("type", "Exception")), as_str(reply.get("message", ""))[:2000])
        if reply.get("op") != "return":
            raise ChannelError("malformed answer")
        outputs: list[torch.Tensor] = []
        value = self.decode(reply.get("value"), buffers, {"outputs": outputs})
        graph = reply.get("graph")
        if graph is not None and outputs and torch.is_grad_enabled():
            inputs = scope["differentiable"]
            eager = wire.gradients_for(self.decode(reply["eager"], buffers), inputs) if "eager" in reply else None
            value = self._attach(value, as_str(graph), inputs, outputs, eager)
        return value

    def _attach(self, value: Any, key: str, inputs: list[torch.Tensor], results: list[torch.Tensor], eager: list | None) -> Any:
        """Replace ``results`` (tensors of ``value``) by ``Bridge`` outputs that lead back to ``inputs``."""
        outputs = Bridge.apply(self, key, len(inputs), eager, self.anchor, *inputs, *[result.detach() for result in results])
        self.origins.bridged(outputs, key)
        replacement = {id(result): output for result, output in zip(results, outputs)}
        return wire.replace_tensors(value, replacement)

    def remote_backward(self, key: str, grad_outputs: list[torch.Tensor], count: int) -> list[torch.Tensor | None]:
        grads = self.request({"op": "backward", "key": key}, (list(grad_outputs),))
        if not isinstance(grads, list) or len(grads) != count:
            raise ChannelError("malformed gradients")
        return [g if isinstance(g, torch.Tensor) or g is None else None for g in grads]

    def serve(self, header: dict, buffers: list) -> None:
        """Answer one request of the other end (a call, an attribute, a protocol method or a backward)."""
        scope = {"writeback": [], "differentiable": []}
        answer: dict = {"re": header.get("id")}
        reply_buffers: list = []
        try:
            op = header.get("op")
            args = self.decode(header.get("args", {"~": "list", "items": []}), buffers, scope)
            kwargs = self.decode(header.get("kwargs", {"~": "dict", "items": []}), buffers, scope)
            if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                raise ChannelError("malformed arguments")
            with torch.set_grad_enabled(bool(header.get("grad", True))):
                if op == "backward":
                    result = self._backward(as_str(header.get("key")), args)
                else:
                    result = self._perform(op, header, args, kwargs)
            outputs: list[torch.Tensor] = []
            answer["op"] = "return"
            answer["value"] = self.encode(result, reply_buffers, {"outputs": outputs})
            if op != "backward" and outputs and torch.is_grad_enabled():
                answer["graph"] = self._new_key("g")
                self.graphs.keep(answer["graph"], outputs, scope["differentiable"])
                eager = proxies.eager_gradients(outputs, scope["differentiable"]) if self.eager_gradients else None
                if eager is not None:
                    answer["eager"] = self.encode(eager, reply_buffers)
        except (ChannelError, KeyboardInterrupt, SystemExit):
            raise  # an interrupt (the cell's time limit) ends the whole call here, as it would without the channel
        except BaseException as error:  # noqa: BLE001 - whatever else the code raised is reported to the caller
            reply_buffers = []
            answer = {"re": header.get("id"), "op": "raise", "type": type(error).__name__, "message": str(error)[:2000]}
        answer["writeback"] = [
            [index, self._encode_tensor(tensor.detach(), reply_buffers, None)]
            for index, tensor, before in scope["writeback"]
            if (tensor._version != before if isinstance(before, int) else not wire.same_state(tensor, before))
        ]
        self._send(answer, reply_buffers)

    def _perform(self, op: Any, header: dict, args: list, kwargs: dict) -> Any:
        target = self.lent.get(as_str(header.get("h")))
        if target is None:
            raise ChannelError("request for an unknown object")
        return wire.perform(target, op, header, args, kwargs)

    def _backward(self, key: str, args: list) -> list[torch.Tensor | None]:
        """Gradients of a kept call's differentiable arguments, given its outputs' gradients (``gradients_of_inputs``)."""
        if key not in self.graphs:
            raise RuntimeError("the graph of this result is no longer available (backward called too late)")
        outputs, inputs = self.graphs[key]
        grad_outputs = args[0] if args and isinstance(args[0], list) else []
        if len(grad_outputs) != len(outputs):
            raise ChannelError("malformed output gradients")
        return proxies.gradients_of_inputs(outputs, inputs, grad_outputs)
