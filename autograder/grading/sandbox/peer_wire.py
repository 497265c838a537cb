"""The channel's wire format: frames, values sent as they are, tensors by value, and what a request may do.

Part of the channel (``peer.py``, which loads this file by path): standalone, it needs only the standard library
and torch, and it never unpickles anything. A frame is a JSON header plus raw byte buffers (tensor contents);
every field read from the other end is checked, and anything malformed raises ``ChannelError``.
"""

from __future__ import annotations

import builtins
import inspect
import json
import operator
import socket
import struct
import types
from typing import Any

import torch

MAX_HEADER_BYTES = 64 * 2**20
MAX_BUFFERS = 100_000
MAX_BUFFER_BYTES = 8 * 2**30
MAX_DEPTH = 64
SMALL_BUFFER_BYTES = 2**16
"""Buffers up to this size travel in one system call with the rest of their frame."""
MAX_METHODS = 256
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
NOT_AN_ATOM = object()
"""What ``encode_atom`` and ``decode_atom`` return for a value that is not sent as it is."""


class ChannelError(RuntimeError):
    """The other end broke the protocol, sent something malformed, or went away."""


class RemoteError(RuntimeError):
    """The other end raised an exception that is not one of the portable built-in ones."""


def remote_error(name: str, message: str) -> BaseException:
    """The exception to raise here for one the other end raised: the same built-in one, or a ``RemoteError``."""
    if name in PORTABLE_ERRORS:
        return PORTABLE_ERRORS[name](message)
    label = name if name.isidentifier() and len(name) <= 60 else "Exception"
    return type(label, (RemoteError,), {})(message)


# ---------------------------------------------------------------------------------------------- frames

class FrameReader:
    """Reads frames from a socket through one buffer: a small frame (a header and a few small tensors) costs one
    ``recv`` system call, not one per field; a large buffer is received straight into its own memory."""

    CHUNK = 2**16

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray(self.CHUNK)
        self.start = self.end = 0

    def _fill(self) -> None:
        """Receive what has arrived (up to ``CHUNK`` bytes) into the buffer, which is empty."""
        count = self.sock.recv_into(self.pending)
        if count == 0:
            raise ChannelError("the other end closed the connection")
        self.start, self.end = 0, count

    def read(self, size: int) -> bytearray:
        """Exactly ``size`` bytes, in a buffer of their own."""
        out = bytearray(size)
        got = 0
        while got < size:
            if self.start == self.end:
                if size - got > self.CHUNK:
                    return self._read_direct(out, got)
                self._fill()
            take = min(size - got, self.end - self.start)
            out[got : got + take] = self.pending[self.start : self.start + take]
            self.start += take
            got += take
        return out

    def _read_direct(self, out: bytearray, got: int) -> bytearray:
        view = memoryview(out)
        while got < len(out):
            count = self.sock.recv_into(view[got:], min(len(out) - got, 2**24))
            if count == 0:
                raise ChannelError("the other end closed the connection")
            got += count
        return out


def send_frame(sock: socket.socket, header: dict, buffers: list) -> None:
    """Send one message: a JSON header and raw buffers, each length-prefixed. Small parts go out together in one
    ``sendall``; a large buffer is sent from its own memory, without a copy. (Not ``sendmsg``: the kernel's
    audit hook refuses it, as it refuses every way to send to an address.)"""
    payload = json.dumps(header, separators=(",", ":")).encode()
    pending = [struct.pack("!II", len(payload), len(buffers)), payload]
    for buffer in buffers:
        pending.append(struct.pack("!Q", len(buffer)))
        if len(buffer) > SMALL_BUFFER_BYTES:
            sock.sendall(b"".join(pending))
            sock.sendall(buffer)
            pending = []
        elif len(buffer):
            pending.append(buffer)
    if pending:
        sock.sendall(b"".join(pending))


def recv_frame(reader: FrameReader) -> tuple[dict, list[bytearray]]:
    """Receive one message; refuse oversized or malformed ones with ``ChannelError``."""
    size, count = struct.unpack("!II", reader.read(8))
    if size > MAX_HEADER_BYTES or count > MAX_BUFFERS:
        raise ChannelError(f"message too large ({size} header bytes, {count} buffers)")
    try:
        header = json.loads(bytes(reader.read(size)))
    except ValueError as error:
        raise ChannelError(f"malformed message: {error}") from error
    if not isinstance(header, dict):
        raise ChannelError("malformed message: the header is not an object")
    buffers = []
    for _ in range(count):
        (length,) = struct.unpack("!Q", reader.read(8))
        if length > MAX_BUFFER_BYTES:
            raise ChannelError(f"buffer too large ({length} bytes)")
        buffers.append(reader.read(length) if length else bytearray())
    return header, buffers


# ---------------------------------------------------------------------------------------------- values

def encode_atom(value: Any) -> Any:
    """The JSON form of a value sent as it is (None, bool, str, int, float, dtype, device), else ``NOT_AN_ATOM``."""
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if -(2**63) <= value < 2**63 else {"~": "bigint", "v": str(value)}
    if kind is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"~": "float", "v": repr(value)}
    if isinstance(value, torch.dtype):
        return {"~": "dtype", "v": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"~": "device", "v": str(value)}
    return NOT_AN_ATOM


def decode_atom(kind: Any, value: dict) -> Any:
    """The value of an encoded atom of ``kind`` (a big int, a float, a dtype or a device), else ``NOT_AN_ATOM``."""
    if kind == "bigint":
        return int(as_str(value.get("v"))[:5000])
    if kind == "float":
        return float(as_str(value.get("v")))
    if kind == "dtype":
        if value.get("v") not in DTYPES:
            raise ChannelError("unsupported dtype")
        return DTYPES[value["v"]]
    if kind == "device":
        return device_named(value.get("v"))
    return NOT_AN_ATOM


def numpy_value(value: Any) -> Any:
    """A numpy scalar as a Python number, a numeric numpy array as a tensor; None for anything else."""
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


def as_list(value: Any) -> list:
    if not isinstance(value, list):
        raise ChannelError("malformed message: expected a list")
    return value


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ChannelError("malformed message: expected a string")
    return value


# ---------------------------------------------------------------------------------------------- tensors

def tensor_entry(tensor: torch.Tensor, buffer_index: int) -> dict:
    """The header entry of a tensor sent by value, whose bytes are the frame's buffer ``buffer_index``."""
    return {
        "~": "tensor", "dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
        "device": str(tensor.device), "buf": buffer_index, "rg": bool(tensor.requires_grad),
    }


def tensor_bytes(tensor: torch.Tensor) -> memoryview | bytes:
    """The tensor's bytes, without a copy when it is already contiguous on the CPU (valid until it changes)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else b""


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
    tensor = torch.frombuffer(buffer, dtype=dtype).reshape(shape) if numel else torch.empty(shape, dtype=dtype)
    return tensor.to(device_named(device)) if device != "cpu" else tensor


def device_named(name: Any) -> torch.device:
    try:
        device = torch.device(name)
    except (TypeError, RuntimeError) as error:
        raise ChannelError(f"malformed device {name!r}") from error
    if device.type not in ("cpu", "cuda", "mps"):
        raise ChannelError(f"unsupported device {name!r}")
    return device


def tensor_state(tensor: torch.Tensor) -> tuple:
    """A copy of what a tracked tensor's owner and mirror keep equal: value, gradient, ``requires_grad``."""
    grad = tensor.grad
    return (tensor.detach().clone(), None if grad is None else grad.detach().clone(), tensor.requires_grad)


def same_state(tensor: torch.Tensor, state: tuple) -> bool:
    """Whether ``tensor`` is still in ``state`` (a ``tensor_state``)."""
    data, grad, requires_grad = state
    if tensor.requires_grad != requires_grad or tensor.shape != data.shape or tensor.dtype != data.dtype:
        return False
    if not torch.equal(tensor.detach(), data):
        return False
    if (tensor.grad is None) != (grad is None):
        return False
    return grad is None or (tensor.grad.shape == grad.shape and torch.equal(tensor.grad.detach(), grad))


def gradients_for(eager: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor | None] | None:
    """``eager`` (the gradients of ``inputs`` an answer carried, or None) checked: one per input, None or a tensor of
    its shape and dtype; raises ``ChannelError`` for anything else."""
    if eager is None:
        return None
    if not isinstance(eager, list) or len(eager) != len(inputs):
        raise ChannelError("malformed gradients")
    for grad, x in zip(eager, inputs):
        if grad is not None and not (isinstance(grad, torch.Tensor) and grad.shape == x.shape and grad.dtype == x.dtype):
            raise ChannelError("malformed gradients")
    return eager


def replace_tensors(value: Any, replacement: dict[int, torch.Tensor]) -> Any:
    """``value`` with each tensor whose ``id`` is a key of ``replacement`` replaced, in lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        return replacement.get(id(value), value)
    if isinstance(value, list):
        return [replace_tensors(item, replacement) for item in value]
    if isinstance(value, tuple):
        return tuple(replace_tensors(item, replacement) for item in value)
    if isinstance(value, dict):
        return {key: replace_tensors(item, replacement) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------------------------- lent objects

_methods_of_type: dict[type, list[str]] = {}


def public_methods(value: Any) -> list[str]:
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


def method_names(value: Any) -> frozenset[str]:
    """The method list of a received handle, checked."""
    names = as_list(value)
    if len(names) > MAX_METHODS or not all(isinstance(n, str) and n.isidentifier() and not n.startswith("_") for n in names):
        raise ChannelError("malformed method list")
    return frozenset(names)


def label(value: Any) -> str:
    """How a lent object is shown by the other end's proxy."""
    kind = type(value)
    return f"{kind.__name__} object"[:80]


def perform(target: Any, op: Any, header: dict, args: list, kwargs: dict) -> Any:
    """Do to the lent object ``target`` what a request asks: call it, read a public attribute, call a public
    method, or apply one of ``DUNDERS``; names that start with ``_`` are refused."""
    if isinstance(target, CLOSED_TYPES) or (op in ("getattr", "callmethod") and isinstance(target, OPAQUE_TYPES)):
        raise TypeError(f"a {type(target).__name__} cannot be used from the other process")
    if op == "call":
        return target(*args, **kwargs)
    if op in ("getattr", "callmethod"):
        name = as_str(header.get("name"))
        if name.startswith("_"):
            raise AttributeError(f"{name} is not accessible")
        attribute = getattr(target, name)
        return attribute(*args, **kwargs) if op == "callmethod" else attribute
    if op == "dunder":
        name = as_str(header.get("name"))
        if name not in DUNDERS:
            raise ChannelError(f"unsupported operation {name!r}")
        return DUNDERS[name](target, *args)
    raise ChannelError(f"unknown request {op!r}")
