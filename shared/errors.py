"""Errors that cross the wire as plain data: ``{code, message, detail}``.

Codes are stable strings a client can branch on; messages are for people and say how to fix the problem.
"""

from __future__ import annotations

from typing import Any

# Codes the daemon sends. Clients may branch on them; keep them stable.
INVALID_INPUT = "invalid_input"
INVALID_REQUEST = "invalid_request"
NOT_FOUND = "not_found"
CONFLICT = "conflict"
QUEUE_FULL = "queue_full"
LIMIT_EXCEEDED = "limit_exceeded"
FORBIDDEN = "forbidden"
WEIGHTS_MISSING = "weights_missing"
MODE_UNAVAILABLE = "mode_unavailable"
RUN_FAILED = "run_failed"
INTERRUPTED = "interrupted"
SHUTTING_DOWN = "shutting_down"
INTERNAL = "internal"


class VfxError(Exception):
    """Base of every error this project raises on purpose. ``detail`` is msgpack-able extra data."""

    code = INTERNAL

    def __init__(self, message: str, *, code: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.detail = detail

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}


class RemoteError(VfxError):
    """The daemon answered a request with an error."""

    @classmethod
    def from_wire(cls, data: Any) -> RemoteError:
        if not isinstance(data, dict):
            return cls(f"the daemon sent a malformed error: {data!r}")
        return cls(
            str(data.get("message", "unknown error")),
            code=str(data.get("code", INTERNAL)),
            detail=data.get("detail"),
        )


class DaemonUnavailable(VfxError):
    """No answer from the daemon: it is not running, not reachable, or did not answer in time."""

    code = "unavailable"


class DaemonRestarted(VfxError):
    """The daemon behind the connection file is a new process; subscriptions must be renewed."""

    code = "restarted"


class WireError(VfxError):
    """A message broke the wire format (bad signature, replay, size, dtype ...). Dropped and counted."""

    code = "wire"


class ConnectionFileError(VfxError):
    """The connection file is missing, unreadable or malformed."""

    code = "connection_file"
