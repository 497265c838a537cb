"""A data-only channel between the trusted checker and a sandboxed student kernel.

Both ends run this same module: the checker imports it, the kernel loads it by file path (the kernel
cannot import ``autograder``). It needs only the standard library and torch, and it never unpickles
anything: a message is a JSON header plus raw byte buffers (tensor contents).

What crosses the channel:

- plain data (None, bool, int, float, str, lists, tuples, dicts, numpy arrays, dtypes) by value;
- tensors by value (dtype, shape, device, bytes), with ``requires_grad`` and ``.grad``;
- every other object as a *handle*: the receiver gets a ``Remote`` proxy whose calls, public attributes
  and a few protocols (iteration, ``len``, indexing, ``float``) are forwarded to the owner. Names that
  start with ``_`` are never forwarded, and handles die with their connection. A handle lists the public
  methods its class defines, so that ``obj.method(...)`` costs one round trip (a ``callmethod``), not two
  (a ``getattr`` answered with a bound method's handle, then a ``call``).

So that the checks behave as if the student's functions ran in the checker's process:

- a leaf tensor that requires grad (a parameter) is *tracked*: the receiver keeps one mirror of it for the
  whole connection, and both ends send each other its value, gradient and ``requires_grad`` whenever they
  changed, with every message. In-place updates and ``.grad`` changes therefore travel both ways;
- other tensors passed as call arguments are written back to the caller when the callee changed them;
- autograd crosses the channel: a result that requires grad is attached to the caller's graph by
  ``Bridge``, whose backward asks the callee for the gradients of the call's differentiable arguments.
  The callee keeps the call's graph until the caller's ``Bridge`` node is freed.
"""

from __future__ import annotations

import builtins
import inspect
import itertools
import json
import operator
import socket
import struct
import types
import weakref
from collections import OrderedDict
from typing import Any

import torch

MAX_HEADER_BYTES = 64 * 2**20
MAX_BUFFERS = 100_000
MAX_BUFFER_BYTES = 8 * 2**30
MAX_DEPTH = 64
MAX_METHODS = 256
KEPT_GRAPHS = 4096
DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
        torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
    )
}
DUNDERS = {
    "iter": iter, "next": next, "len": len, "float": float, "int": int, "index": operator.index,
    "bool": bool, "getitem": operator.getitem,
}
CLOSED_TYPES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
OPAQUE_TYPES = (type, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
PORTABLE_ERRORS = {
    name: getattr(builtins, name)
    for name in (
        "TypeError", "ValueError", "RuntimeError", "IndexError", "KeyError", "AttributeError", "ZeroDivisionError",
        "NotImplementedError", "StopIteration", "ArithmeticError", "OverflowError", "AssertionError", "LookupError",
    )
}


class ChannelError(RuntimeError):
    """The other end broke the protocol, sent something malformed, or went away."""


class RemoteError(RuntimeError):
    """The other end raised an exception that is not one of the portable built-in ones."""


def _remote_error(name: str, message: str) -> BaseException:
    if name in PORTABLE_ERRORS:
        return PORTABLE_ERRORS[name](message)
    label = name if name.isidentifier() and len(name) <= 60 else "Exception"
    return type(label, (RemoteError,), {})(message)


# ---------------------------------------------------------------------------------------------- frames

def _recv_exact(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:], min(size - got, 2**24))
        if count == 0:
            raise ChannelError("the other end closed the connection")
        got += count
    return buffer


def send_frame(sock: socket.socket, header: dict, buffers: list[bytes]) -> None:
    """Send one message: a JSON header and raw buffers, each length-prefixed."""
    payload = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(struct.pack("!II", len(payload), len(buffers)) + payload)
    for buffer in buffers:
        sock.sendall(struct.pack("!Q", len(buffer)))
        if len(buffer):
            sock.sendall(buffer)


def recv_frame(sock: socket.socket) -> tuple[dict, list[bytearray]]:
    """Receive one message; refuse oversized or malformed ones with ``ChannelError``."""
    size, count = struct.unpack("!II", _recv_exact(sock, 8))
    if size > MAX_HEADER_BYTES or count > MAX_BUFFERS:
        raise ChannelError(f"message too large ({size} header bytes, {count} buffers)")
    try:
        header = json.loads(bytes(_recv_exact(sock, size)))
    except ValueError as error:
        raise ChannelError(f"malformed message: {error}") from error
    if not isinstance(header, dict):
        raise ChannelError("malformed message: the header is not an object")
    buffers = []
    for _ in range(count):
        (length,) = struct.unpack("!Q", _recv_exact(sock, 8))
        if length > MAX_BUFFER_BYTES:
            raise ChannelError(f"buffer too large ({length} bytes)")
        buffers.append(_recv_exact(sock, length) if length else bytearray())
    return header, buffers


# ---------------------------------------------------------------------------------------------- tensors

def tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def tensor_from(buffer: bytearray, dtype_name: Any, shape: Any, device: Any) -> torch.Tensor:
    if dtype_name not in DTYPES:
        raise ChannelError(f"unsupported dtype {dtype_name!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 16:
        raise ChannelError(f"malformed shape {shape!r}")
    dtype = DTYPES[dtype_name]
    numel = 1
    for n in shape:
        numel *= n
    if numel * torch.empty((), dtype=dtype).element_size() != len(buffer):
        raise ChannelError("tensor bytes do not match its shape and dtype")
    flat = torch.frombuffer(buffer, dtype=dtype) if numel else torch.empty(0, dtype=dtype)
    tensor = flat.reshape(shape).clone()
    return tensor.to(_device(device)) if device != "cpu" else tensor


def _device(name: Any) -> torch.device:
    try:
        device = torch.device(name)
    except (TypeError, RuntimeError) as error:
        raise ChannelError(f"malformed device {name!r}") from error
    if device.type not in ("cpu", "cuda", "mps"):
        raise ChannelError(f"unsupported device {name!r}")
    return device


def _state(tensor: torch.Tensor) -> tuple:
    grad = tensor.grad
    return (tensor.detach().clone(), None if grad is None else grad.detach().clone(), tensor.requires_grad)


def _same_state(tensor: torch.Tensor, state: tuple) -> bool:
    data, grad, requires_grad = state
    if tensor.requires_grad != requires_grad or tensor.shape != data.shape or tensor.dtype != data.dtype:
        return False
    if not torch.equal(tensor.detach(), data):
        return False
    if (tensor.grad is None) != (grad is None):
        return False
    return grad is None or (tensor.grad.shape == grad.shape and torch.equal(tensor.grad.detach(), grad))


class Bridge(torch.autograd.Function):
    """Attach values computed by the other end to this end's autograd graph.

    ``forward`` returns copies of ``values``; ``backward`` sends the output gradients to the other end,
    which returns the gradients of the call's differentiable arguments (``inputs``).
    """

    @staticmethod
    def forward(ctx, peer: "Peer", key: str, count: int, anchor: torch.Tensor, *tensors: torch.Tensor):
        ctx.peer, ctx.key, ctx.count = peer, key, count
        weakref.finalize(ctx, peer.released.append, key)  # once this node is freed, the other end may drop the graph
        values = tensors[count:]
        ctx.value_count = len(values)
        return tuple(value.clone() for value in values)

    @staticmethod
    def backward(ctx, *grad_outputs: torch.Tensor):
        grads = ctx.peer.remote_backward(ctx.key, list(grad_outputs), ctx.count)
        return (None, None, None, None, *grads, *([None] * ctx.value_count))


class Remote:
    """A proxy for an object held by the other end of the channel.

    ``methods`` are the public methods the object's class defines (as its owner listed them): reading one
    gives a ``RemoteMethod`` at once, without asking the owner.
    """

    __slots__ = ("_peer", "_handle", "_label", "_methods")

    def __init__(self, peer: "Peer", handle: str, label: str, methods: frozenset[str] = frozenset()) -> None:
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


class Peer:
    """One end of a connection: encodes and decodes values, lends objects, serves the other end's requests.

    A ``request`` sends a message and serves the other end's nested requests (callbacks) until the
    answer comes, so calls may nest to any depth in both directions.
    """

    def __init__(self, sock: socket.socket, side: str) -> None:
        self.sock, self.side = sock, side
        self.lent: dict[str, Any] = {}
        self.tracked: dict[str, weakref.ref] = {}
        self.key_of: dict[int, str] = {}
        self.sent_state: dict[str, tuple] = {}
        self.graphs: OrderedDict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = OrderedDict()
        self.counter = itertools.count()
        self.anchor = torch.zeros((), requires_grad=True)
        self.released: list[str] = []
        self.closed = False

    # -- encoding ---------------------------------------------------------------------------------

    def _new_key(self, prefix: str) -> str:
        return f"{self.side}{prefix}{next(self.counter)}"

    def _track(self, tensor: torch.Tensor) -> str:
        key = self.key_of.get(id(tensor))
        if key is None or self._tracked(key) is not tensor:
            key = self._new_key("t")
            self.tracked[key] = weakref.ref(tensor)
            self.key_of[id(tensor)] = key
        return key

    def _tracked(self, key: str) -> torch.Tensor | None:
        reference = self.tracked.get(key)
        return None if reference is None else reference()

    def _encode_tensor(self, tensor: torch.Tensor, buffers: list, scope: dict | None) -> dict:
        entry = {
            "~": "tensor", "dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
            "device": str(tensor.device), "buf": len(buffers), "rg": bool(tensor.requires_grad),
        }
        buffers.append(tensor_bytes(tensor))
        tracked = tensor.is_leaf and tensor.requires_grad
        if tracked:
            entry["key"] = self._track(tensor)
            self.sent_state[entry["key"]] = _state(tensor)
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
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply to send")
        kind = type(value)
        if value is None or kind in (bool, str):
            return value
        if kind is int:
            return value if -(2**63) <= value < 2**63 else {"~": "bigint", "v": str(value)}
        if kind is float:
            return value if value == value and value not in (float("inf"), float("-inf")) else {"~": "float", "v": repr(value)}
        if isinstance(value, torch.Tensor):
            return self._encode_tensor(value, buffers, scope)
        if kind in (list, tuple):
            return {"~": kind.__name__, "items": [self.encode(item, buffers, scope, depth + 1) for item in value]}
        if kind is dict:
            return {"~": "dict", "items": [[self.encode(k, buffers, scope, depth + 1), self.encode(v, buffers, scope, depth + 1)] for k, v in value.items()]}
        if isinstance(value, torch.dtype):
            return {"~": "dtype", "v": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"~": "device", "v": str(value)}
        if kind is slice:
            return {"~": "slice", "v": [self.encode(part, buffers, None, depth + 1) for part in (value.start, value.stop, value.step)]}
        numpy_value = _numpy_value(value)
        if numpy_value is not None:
            return self.encode(numpy_value, buffers, scope, depth + 1)
        handle = self._new_key("h")
        self.lent[handle] = value
        entry = {"~": "obj", "h": handle, "label": _label(value)}
        methods = _public_methods(value)
        if methods:
            entry["methods"] = methods
        return entry

    def decode(self, value: Any, buffers: list, scope: dict | None = None, depth: int = 0) -> Any:
        """The local value for an encoded one; raises ``ChannelError`` for anything malformed."""
        if depth > MAX_DEPTH:
            raise ChannelError("value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if not isinstance(value, dict) or "~" not in value:
            raise ChannelError("malformed value")
        kind = value["~"]
        if kind in ("list", "tuple"):
            items = [self.decode(item, buffers, scope, depth + 1) for item in _list(value.get("items"))]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            result = {}
            for pair in _list(value.get("items")):
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
        if kind == "bigint":
            return int(_str(value.get("v"))[:5000])
        if kind == "float":
            return float(_str(value.get("v")))
        if kind == "dtype":
            if value.get("v") not in DTYPES:
                raise ChannelError("unsupported dtype")
            return DTYPES[value["v"]]
        if kind == "device":
            return _device(value.get("v"))
        if kind == "slice":
            parts = [self.decode(part, buffers, None, depth + 1) for part in _list(value.get("v"))]
            if len(parts) != 3:
                raise ChannelError("malformed slice")
            return slice(*parts)
        if kind == "obj":
            handle = _str(value.get("h"))
            if handle in self.lent:  # our own object coming back
                return self.lent[handle]
            return Remote(self, handle, _str(value.get("label", "object"))[:80], _method_names(value.get("methods", [])))
        raise ChannelError(f"unknown value kind {kind!r}")

    def _decode_tensor(self, entry: dict, buffers: list, scope: dict | None) -> torch.Tensor:
        index = entry.get("buf")
        if not isinstance(index, int) or not 0 <= index < len(buffers):
            raise ChannelError("malformed tensor")
        fresh = tensor_from(buffers[index], entry.get("dtype"), entry.get("shape"), entry.get("device", "cpu"))
        grad = None
        if isinstance(entry.get("grad"), dict):
            grad = self._decode_tensor(entry["grad"], buffers, None)
        key = entry.get("key")
        requires_grad = bool(entry.get("rg")) and (fresh.is_floating_point() or fresh.is_complex())
        if key is not None:
            tensor = self._apply(_str(key), fresh, grad, requires_grad)
        else:
            tensor = fresh.requires_grad_(requires_grad) if requires_grad else fresh
            if grad is not None and tensor.requires_grad:
                tensor.grad = grad
        scope = scope or {}
        if "wb" in entry and "writeback" in scope:
            scope["writeback"].append((entry["wb"], tensor, _state(tensor)))
        if "diff" in entry and "differentiable" in scope:
            scope["differentiable"].append(tensor)
        if "out" in entry and "outputs" in scope:
            scope["outputs"].append(tensor)
        return tensor

    def _apply(self, key: str, data: torch.Tensor, grad: torch.Tensor | None, requires_grad: bool) -> torch.Tensor:
        """Bring the tracked tensor ``key`` to the given state (creating the mirror the first time)."""
        tensor = self._tracked(key)
        if tensor is None:
            tensor = data.requires_grad_(requires_grad)
            self.tracked[key] = weakref.ref(tensor)
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
        self.sent_state[key] = _state(tensor)
        return tensor

    def _changes(self, buffers: list) -> list:
        """Updates for every tracked tensor whose value, gradient or flag changed since last exchanged."""
        updates = []
        for key in list(self.tracked):
            tensor = self._tracked(key)
            if tensor is None:
                del self.tracked[key]
                self.sent_state.pop(key, None)
                continue
            state = self.sent_state.get(key)
            if state is not None and _same_state(tensor, state):
                continue
            entry = self._encode_tensor(tensor.detach(), buffers, None)
            entry["rg"] = bool(tensor.requires_grad)
            if tensor.grad is not None:
                entry["grad"] = self._encode_tensor(tensor.grad.detach(), buffers, None)
            updates.append([key, entry])
            self.sent_state[key] = _state(tensor)
        return updates

    def _apply_changes(self, updates: Any, buffers: list) -> None:
        for item in _list(updates):
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], dict):
                raise ChannelError("malformed update")
            key, entry = _str(item[0]), item[1]
            if self._tracked(key) is None:
                continue  # nothing here refers to that tensor any more
            data = self._decode_tensor({**entry, "grad": None}, buffers, None)
            grad = self._decode_tensor(entry["grad"], buffers, None) if isinstance(entry.get("grad"), dict) else None
            self._apply(key, data.detach(), grad, bool(entry.get("rg")))

    # -- messages ---------------------------------------------------------------------------------

    def _send(self, header: dict, buffers: list) -> None:
        if self.closed:
            raise ChannelError("the connection is closed")
        header["sync"] = self._changes(buffers)
        released, self.released[:] = list(self.released), []
        header["release"] = released
        try:
            send_frame(self.sock, header, buffers)
        except OSError as error:
            self.closed = True
            raise ChannelError(f"the other end went away: {error}") from error

    def _receive(self) -> tuple[dict, list]:
        if self.closed:
            raise ChannelError("the connection is closed")
        try:
            header, buffers = recv_frame(self.sock)
        except (OSError, ChannelError, struct.error) as error:
            self.closed = True
            raise ChannelError(f"the other end went away: {error}") from error
        self._apply_changes(header.get("sync", []), buffers)
        for key in _list(header.get("release", [])):
            self.graphs.pop(key, None) if isinstance(key, str) else None
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
        for item in _list(reply.get("writeback", [])):
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
            raise _remote_error(_str(reply.get("type", "Exception")), _str(reply.get("message", ""))[:2000])
        if reply.get("op") != "return":
            raise ChannelError("malformed answer")
        outputs: list[torch.Tensor] = []
        value = self.decode(reply.get("value"), buffers, {"outputs": outputs})
        graph = reply.get("graph")
        if graph is not None and outputs and torch.is_grad_enabled():
            value = self._attach(value, _str(graph), scope["differentiable"], outputs)
        return value

    def _attach(self, value: Any, key: str, inputs: list[torch.Tensor], results: list[torch.Tensor]) -> Any:
        """Replace ``results`` (tensors of ``value``) by ``Bridge`` outputs that lead back to ``inputs``."""
        outputs = Bridge.apply(self, key, len(inputs), self.anchor, *inputs, *[result.detach() for result in results])
        replacement = {id(result): output for result, output in zip(results, outputs)}
        return _replace(value, replacement)

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
                    result = self._backward(_str(header.get("key")), args)
                else:
                    result = self._perform(op, header, args, kwargs)
            outputs: list[torch.Tensor] = []
            answer["op"] = "return"
            answer["value"] = self.encode(result, reply_buffers, {"outputs": outputs})
            if op != "backward" and outputs and torch.is_grad_enabled():
                answer["graph"] = self._keep_graph(outputs, scope["differentiable"])
        except (ChannelError, KeyboardInterrupt, SystemExit):
            raise  # an interrupt (the cell's time limit) ends the whole call here, as it would without the channel
        except BaseException as error:  # noqa: BLE001 - whatever else the code raised is reported to the caller
            reply_buffers = []
            answer = {"re": header.get("id"), "op": "raise", "type": type(error).__name__, "message": str(error)[:2000]}
        answer["writeback"] = [
            [index, self._encode_tensor(tensor.detach(), reply_buffers, None)]
            for index, tensor, before in scope["writeback"]
            if not _same_state(tensor, before)
        ]
        self._send(answer, reply_buffers)

    def _perform(self, op: Any, header: dict, args: list, kwargs: dict) -> Any:
        target = self.lent.get(_str(header.get("h")))
        if target is None:
            raise ChannelError("request for an unknown object")
        if isinstance(target, CLOSED_TYPES) or (op in ("getattr", "callmethod") and isinstance(target, OPAQUE_TYPES)):
            raise TypeError(f"a {type(target).__name__} cannot be used from the other process")
        if op == "call":
            return target(*args, **kwargs)
        if op in ("getattr", "callmethod"):
            name = _str(header.get("name"))
            if name.startswith("_"):
                raise AttributeError(f"{name} is not accessible")
            attribute = getattr(target, name)
            return attribute(*args, **kwargs) if op == "callmethod" else attribute
        if op == "dunder":
            name = _str(header.get("name"))
            if name not in DUNDERS:
                raise ChannelError(f"unsupported operation {name!r}")
            return DUNDERS[name](target, *args)
        raise ChannelError(f"unknown request {op!r}")

    def _keep_graph(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> str:
        key = self._new_key("g")
        self.graphs[key] = (outputs, inputs)
        while len(self.graphs) > KEPT_GRAPHS:
            self.graphs.popitem(last=False)
        return key

    def _backward(self, key: str, args: list) -> list[torch.Tensor | None]:
        """Gradients of a kept call's differentiable arguments, given its outputs' gradients.

        Other leaves of the graph (this end's own parameters) accumulate their gradients as a local
        ``backward`` would; the arguments' own ``.grad`` is left as it was (the caller accumulates).
        """
        if key not in self.graphs:
            raise RuntimeError("the graph of this result is no longer available (backward called too late)")
        outputs, inputs = self.graphs[key]
        grad_outputs = args[0] if args and isinstance(args[0], list) else []
        if len(grad_outputs) != len(outputs):
            raise ChannelError("malformed output gradients")
        before = [None if x.grad is None else x.grad.detach().clone() for x in inputs]
        pairs = [(o, g if isinstance(g, torch.Tensor) else torch.zeros_like(o)) for o, g in zip(outputs, grad_outputs)]
        torch.autograd.backward([o for o, _ in pairs], [g.to(o.device, o.dtype) for o, g in pairs], retain_graph=True)
        grads = []
        for x, old in zip(inputs, before):
            new = x.grad
            grads.append(None if new is None else (new.detach().clone() if old is None else new.detach() - old))
            x.grad = old
        return grads


def _numpy_value(value: Any) -> Any:
    module = type(value).__module__
    if not module.startswith("numpy"):
        return None
    try:
        import numpy
    except ImportError:
        return None
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numpy.ndarray) and value.dtype.kind in "biufc":
        return torch.from_numpy(value.copy())
    return None


_methods_of_type: dict[type, list[str]] = {}


def _public_methods(value: Any) -> list[str]:
    """The public methods ``value``'s class defines as plain functions, minus names its instance shadows."""
    kind = type(value)
    if isinstance(value, CLOSED_TYPES + OPAQUE_TYPES):
        return []
    if kind not in _methods_of_type:
        names = [
            name for name in dir(kind)
            if not name.startswith("_") and isinstance(inspect.getattr_static(kind, name, None), types.FunctionType)
        ]
        _methods_of_type[kind] = names[:MAX_METHODS]
    shadowed = getattr(value, "__dict__", None)
    names = _methods_of_type[kind]
    return [name for name in names if name not in shadowed] if isinstance(shadowed, dict) else list(names)


def _method_names(value: Any) -> frozenset[str]:
    names = _list(value)
    if len(names) > MAX_METHODS or not all(isinstance(n, str) and n.isidentifier() and not n.startswith("_") for n in names):
        raise ChannelError("malformed method list")
    return frozenset(names)


def _label(value: Any) -> str:
    kind = type(value)
    return f"{kind.__name__} object"[:80]


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise ChannelError("malformed message: expected a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ChannelError("malformed message: expected a string")
    return value


def _replace(value: Any, replacement: dict[int, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return replacement.get(id(value), value)
    if isinstance(value, list):
        return [_replace(item, replacement) for item in value]
    if isinstance(value, tuple):
        return tuple(_replace(item, replacement) for item in value)
    if isinstance(value, dict):
        return {key: _replace(item, replacement) for key, item in value.items()}
    return value
