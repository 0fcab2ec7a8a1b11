"""The wire format: functions over ``list[bytes]``, independent of sockets.

A message is a multipart ZeroMQ message::

    [*routing_ids, DELIMITER, signature, header, content, *buffers]

``header`` and ``content`` are msgpack maps. The signature is the hex HMAC-SHA256 of the header and content
frames under the connection key. The header carries the message id, the parent id (the request a reply or
event answers), the type, the sender's session id, the protocol version, the send time and one descriptor
(dtype, shape) per buffer frame, so the buffer layout is signed too. Buffers (pixels) are not hashed: hashing
6 MB frames would cost more than sending them; their transport is a 0700 directory (ipc), loopback, or CURVE.

Receivers drop unsigned, badly signed, replayed, oversized or malformed messages with a :class:`WireError`.
Nothing here ever unpickles anything.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from . import PROTOCOL_VERSION
from .errors import WireError

DELIMITER = b"<VFX|MSG>"

ALLOWED_DTYPES = frozenset({"uint8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64", "bool"})
MAX_NDIM = 6
MAX_DIM = 2**31 - 1
"""Largest length of one buffer axis; zero-length axes would otherwise let any product past the size check."""


@dataclass(frozen=True)
class Limits:
    """Explicit size limits, checked before anything is decoded. Sizes in bytes."""

    max_header_bytes: int = 16 * 1024
    max_content_bytes: int = 4 * 1024 * 1024
    max_buffers: int = 64
    max_buffer_bytes: int = 256 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024 * 1024
    max_clock_skew_s: float = 300.0


DEFAULT_LIMITS = Limits()


@dataclass
class Message:
    """A decoded message. ``buffers`` are zero-copy views of the received frames."""

    type: str
    content: dict[str, Any]
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    parent_id: str | None = None
    session: str = ""
    version: int = PROTOCOL_VERSION
    time: float = field(default_factory=time.time)
    buffers: list[memoryview] = field(default_factory=list)
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    routing_ids: list[bytes] = field(default_factory=list)

    def arrays(self) -> list[np.ndarray]:
        """The buffers as read-only numpy arrays (no copy), shapes and dtypes checked."""
        return [array_from_buffer(d, b) for d, b in zip(self.descriptors, self.buffers, strict=True)]


def new_id() -> str:
    return uuid.uuid4().hex


def blob_id(array: np.ndarray) -> str:
    """The content address of an array: sha256 over its dtype, shape and bytes."""
    digest = hashlib.sha256(f"{array.dtype.name}{list(array.shape)}".encode())
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def sign(key: bytes, header: bytes, content: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(header)
    mac.update(content)
    return mac.hexdigest().encode("ascii")


def describe_array(array: np.ndarray) -> dict[str, Any]:
    name = array.dtype.name
    if name not in ALLOWED_DTYPES:
        raise WireError(f"dtype {name} cannot be sent; use one of {', '.join(sorted(ALLOWED_DTYPES))}")
    return {"dtype": name, "shape": list(array.shape)}


def array_from_buffer(descriptor: Any, buffer: memoryview | bytes) -> np.ndarray:
    """Interpret ``buffer`` as described, refusing unknown dtypes and length mismatches."""
    if not isinstance(descriptor, dict):
        raise WireError("a buffer descriptor must be a map with dtype and shape")
    dtype_name = descriptor.get("dtype")
    shape = descriptor.get("shape")
    if dtype_name not in ALLOWED_DTYPES:
        raise WireError(f"buffer dtype {dtype_name!r} is not allowed", detail={"allowed": sorted(ALLOWED_DTYPES)})
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_DIM for n in shape)
    ):
        raise WireError(f"buffer shape {shape!r} must be a list of at most {MAX_NDIM} integers from 0 to {MAX_DIM}")
    dtype = np.dtype(dtype_name).newbyteorder("<") if dtype_name != "bool" else np.dtype(bool)
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(buffer):
        raise WireError(f"buffer of {len(buffer)} bytes does not match {dtype_name}{tuple(shape)} ({expected} bytes)")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _packb(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode message: {exc}") from exc


def _unpackb(data: bytes | memoryview, limit: int, what: str) -> Any:
    if len(data) > limit:
        raise WireError(f"{what} of {len(data)} bytes exceeds the limit of {limit} bytes")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException) as exc:
        raise WireError(f"{what} is not valid msgpack: {exc}") from exc
    except RecursionError as exc:
        raise WireError(f"{what} is nested too deeply") from exc


def pack(
    msg_type: str,
    content: dict[str, Any],
    *,
    key: bytes,
    session: str,
    parent_id: str | None = None,
    arrays: Sequence[np.ndarray] = (),
    routing_ids: Iterable[bytes] = (),
    msg_id: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Any]:
    """Build the frames of one message. Array frames are passed as buffers (sent without a copy).

    Raises :class:`WireError` for a message the receiver would drop for its size (``limits``), so the sender
    gets an error at once instead of waiting for an answer that never comes."""
    contiguous = [np.ascontiguousarray(a) for a in arrays]
    check_sendable(contiguous, limits)
    header = {
        "msg_id": msg_id or new_id(),
        "parent_id": parent_id,
        "type": msg_type,
        "session": session,
        "version": PROTOCOL_VERSION,
        "time": time.time(),
        "buffers": [describe_array(a) for a in contiguous],
    }
    header_b = _packb(header)
    content_b = _packb(content)
    buffers = [a.reshape(-1).view(np.uint8).data if a.size else b"" for a in contiguous]
    return [*routing_ids, DELIMITER, sign(key, header_b, content_b), header_b, content_b, *buffers]


def check_sendable(arrays: Sequence[np.ndarray], limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`WireError` if ``arrays`` break the receiver's buffer limits."""
    if len(arrays) > limits.max_buffers:
        raise WireError(f"{len(arrays)} buffers in one message; the limit is {limits.max_buffers}")
    for array in arrays:
        if array.nbytes > limits.max_buffer_bytes:
            raise WireError(
                f"an array of {array.nbytes / 2**20:.0f} MiB {array.dtype.name}{tuple(array.shape)} is more than "
                f"one message may carry ({limits.max_buffer_bytes / 2**20:.0f} MiB): send fewer frames at a time, "
                "or a file path the daemon can read",
                detail={"bytes": array.nbytes, "limit": limits.max_buffer_bytes},
            )
    total = sum(a.nbytes for a in arrays)
    if total > limits.max_message_bytes:
        raise WireError(f"{total} bytes of buffers exceed the message limit of {limits.max_message_bytes} bytes")


class ReplayGuard:
    """Remembers recent message ids; refuses repeats and messages outside the clock-skew window."""

    def __init__(self, window_s: float = DEFAULT_LIMITS.max_clock_skew_s, max_ids: int = 200_000) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, msg_id: str, sent: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not math.isfinite(sent) or abs(now - sent) > self.window_s:
            raise WireError(f"message time is {now - sent:.0f} s off this machine's clock (replay or skew)")
        while self._seen and (
            len(self._seen) >= self.max_ids or next(iter(self._seen.values())) < now - 2 * self.window_s
        ):
            self._seen.popitem(last=False)
        if msg_id in self._seen:
            raise WireError(f"message {msg_id} was already received (replay)")
        self._seen[msg_id] = now


def _frame_bytes(frame: Any) -> memoryview:
    """A zero-copy view of a received frame (bytes or zmq.Frame)."""
    buffer = getattr(frame, "buffer", None)
    return buffer if buffer is not None else memoryview(frame)


def unpack(
    frames: Sequence[Any],
    *,
    key: bytes,
    guard: ReplayGuard | None,
    limits: Limits = DEFAULT_LIMITS,
) -> Message:
    """Verify and decode the frames of one message, or raise :class:`WireError`."""
    views = [_frame_bytes(f) for f in frames]
    try:
        split = next(i for i, v in enumerate(views) if v == DELIMITER)
    except StopIteration:
        raise WireError("message has no delimiter frame") from None
    routing_ids = [bytes(v) for v in views[:split]]
    body = views[split + 1 :]
    if len(body) < 3:
        raise WireError("message is truncated: it needs a signature, a header and a content frame")
    signature, header_b, content_b, *buffers = body
    if sum(len(v) for v in body) > limits.max_message_bytes:
        raise WireError(f"message exceeds the limit of {limits.max_message_bytes} bytes")
    if len(header_b) > limits.max_header_bytes:
        raise WireError(f"header exceeds the limit of {limits.max_header_bytes} bytes")
    if len(content_b) > limits.max_content_bytes:
        raise WireError(f"content exceeds the limit of {limits.max_content_bytes} bytes")
    if len(buffers) > limits.max_buffers:
        raise WireError(f"message has {len(buffers)} buffers; the limit is {limits.max_buffers}")
    for b in buffers:
        if len(b) > limits.max_buffer_bytes:
            raise WireError(f"a buffer of {len(b)} bytes exceeds the limit of {limits.max_buffer_bytes}")
    expected = sign(key, bytes(header_b), bytes(content_b))
    if not hmac.compare_digest(expected, bytes(signature)):
        raise WireError("bad or missing signature")
    header = _unpackb(header_b, limits.max_header_bytes, "header")
    content = _unpackb(content_b, limits.max_content_bytes, "content")
    if not isinstance(header, dict) or not isinstance(content, dict):
        raise WireError("header and content must be maps")
    msg_id, msg_type, sent = header.get("msg_id"), header.get("type"), header.get("time")
    if not isinstance(msg_id, str) or not isinstance(msg_type, str) or not isinstance(sent, int | float):
        raise WireError("header needs a string msg_id, a string type and a numeric time")
    if header.get("version") != PROTOCOL_VERSION:
        raise WireError(
            f"protocol version {header.get('version')!r} is not {PROTOCOL_VERSION}; "
            "update the extension and the daemon together"
        )
    descriptors = header.get("buffers", [])
    if not isinstance(descriptors, list) or len(descriptors) != len(buffers):
        raise WireError(f"header describes {descriptors!r} but the message has {len(buffers)} buffers")
    parent = header.get("parent_id")
    session = header.get("session", "")
    message = Message(
        type=msg_type,
        content=content,
        msg_id=msg_id,
        parent_id=parent if isinstance(parent, str) else None,
        session=session if isinstance(session, str) else "",
        time=float(sent),
        buffers=list(buffers),
        descriptors=descriptors,
        routing_ids=routing_ids,
    )
    message.arrays()  # validate dtype, shape and length now, before anyone relies on them
    if guard is not None:
        guard.check(msg_id, float(sent))
    return message
