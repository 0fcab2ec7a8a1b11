"""TCP connections before authentication: what a peer without credentials can cost, bounded.

Every TCP listen authenticates at ZeroMQ's handshake (CURVE keys for remote clients; on loopback TCP the
PLAIN mechanism with the connection file's key as the password), so a peer without credentials never gets a
message through: ZeroMQ hands over a multipart message only once all of it has arrived, so a check on the
assembled message (the signature) would come after the memory was spent. Before authentication a peer can
therefore only send handshake frames, each at most ``max_frame_bytes`` (``ZMQ_MAXMSGSIZE``), for at most
``handshake_s`` (``ZMQ_HANDSHAKE_IVL``). :class:`ConnectionGate` caps how many connections may be in that state
at once (``max_unauthenticated``), closing the oldest first, so the memory an unauthenticated peer can make the
daemon hold is at most ``max_unauthenticated * max_frame_bytes``; :func:`raise_descriptor_limit` and that cap
keep descriptors for the clients that do authenticate.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from shared.wire import DEFAULT_LIMITS


@dataclass(frozen=True)
class GateLimits:
    max_frame_bytes: int = DEFAULT_LIMITS.max_buffer_bytes
    """ZMQ_MAXMSGSIZE: the largest frame a peer may send (the largest buffer a message may carry)."""
    handshake_s: float = 5.0
    """ZMQ_HANDSHAKE_IVL: a connection not authenticated by then is closed."""
    max_unauthenticated: int = 4
    """Connections not yet authenticated at once; 4 x 256 MiB frames is what one signed message may carry."""
    heartbeat_s: float = 10.0
    heartbeat_timeout_s: float = 60.0
    """A peer that answers no heartbeat for this long is gone (long enough for a 256 MiB frame at 100 Mbit/s)."""


def configure_router(router: zmq.Socket[Any], limits: GateLimits) -> None:
    """Size and time limits on the listening socket, set before it binds."""
    router.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes)
    router.setsockopt(zmq.HANDSHAKE_IVL, int(limits.handshake_s * 1000))
    router.setsockopt(zmq.HEARTBEAT_IVL, int(limits.heartbeat_s * 1000))
    router.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(limits.heartbeat_timeout_s * 1000))


def raise_descriptor_limit() -> int:
    """Raise this process's open-file limit (RLIMIT_NOFILE) from its soft value to the hard one, at most 65536:
    each connection is a descriptor. Returns the limit now in force (0 on Windows, which has no such limit)."""
    if sys.platform == "win32":
        return 0
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class ConnectionGate:
    """Follows the TCP connections of a ROUTER socket (through its monitor) and closes the oldest ones that
    have not authenticated when more than ``max_unauthenticated`` are open. Socket thread only.

    A connection counts as authenticated once a message signed with the connection key arrives on it
    (:meth:`authenticated`), or once it is older than ``handshake_s``: by then ZeroMQ has closed it unless its
    handshake, which needs the credentials, succeeded."""

    def __init__(self, router: zmq.Socket[Any], limits: GateLimits = GateLimits()) -> None:
        self.limits = limits
        self.monitor = router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._pending: OrderedDict[int, tuple[float, Any]] = OrderedDict()  # fd -> (accepted at, peer address)

    def drain(self) -> None:
        """Take the monitor's events (call when its socket is readable)."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._pending[fd] = (time.monotonic(), _peer(fd))
            else:
                self._pending.pop(fd, None)

    def authenticated(self, fd: int) -> None:
        self._pending.pop(fd, None)

    def enforce(self) -> int:
        """Forget connections past the handshake time; close the oldest unauthenticated ones over the cap.
        Returns how many were closed."""
        settled = time.monotonic() - self.limits.handshake_s
        while self._pending and next(iter(self._pending.values()))[0] < settled:
            self._pending.popitem(last=False)
        closed = 0
        while len(self._pending) > self.limits.max_unauthenticated:
            fd, (_, peer) = self._pending.popitem(last=False)
            _shut_down(fd, peer)
            closed += 1
        return closed

    def close(self) -> None:
        self.monitor.close(linger=0)


def _peer(fd: int) -> Any:
    """The peer address of descriptor ``fd``, or None; the descriptor stays ZeroMQ's."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return sock.getpeername()
    except OSError:
        return None
    finally:
        sock.detach()


def _shut_down(fd: int, peer: Any) -> None:
    """End the TCP connection on ``fd`` if it is still the one from ``peer`` (a closed descriptor's number may be
    reused): ZeroMQ reads end-of-file, closes it and frees what it held. The descriptor stays ZeroMQ's to close."""
    if peer is None:
        return
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        if sock.getpeername() == peer:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()
