"""The event pipe: how job events and live-session news reach the socket thread.

The engine, the executors' threads and live sessions publish here from any thread; the server routes what
arrives on its socket thread, the only one that touches the ROUTER socket. Published on the socket thread
itself (a handler cancelling a job), an event is routed at once, before the handler's reply; from any other
thread it crosses an inproc PUSH/PULL pair. Job events are the wire events of :mod:`shared.messages`; a live
session's news is its id, never dressed up as a job event; "done" wakes the socket thread to send the replies of
requests the I/O threads finished (a wake-up only: the replies wait in the server, so a dropped one loses none).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

ENDPOINT = "inproc://vfx-events"
JOB, LIVE, DONE = "job", "live", "done"


class EventPipe:
    """Thread-safe publishing; :meth:`attach` and :meth:`drain` on the socket thread only."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.pull = context.socket(zmq.PULL)
        self.pull.bind(ENDPOINT)
        # One PUSH socket shared by every other thread (the worker, live sessions), used under a lock: a socket
        # per thread would leak one per finished live session.
        self._push = context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(ENDPOINT)
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._route_job: Callable[[dict[str, Any]], None] = lambda event: None
        self._route_live: Callable[[str], None] = lambda session_id: None
        self._route_done: Callable[[], None] = lambda: None

    def attach(
        self,
        route_job: Callable[[dict[str, Any]], None],
        route_live: Callable[[str], None],
        route_done: Callable[[], None] = lambda: None,
    ) -> None:
        """Called by the thread that routes (the server's socket thread) before it drains."""
        self._route_job, self._route_live, self._route_done = route_job, route_live, route_done
        self._thread_id = threading.get_ident()

    def job_event(self, event: dict[str, Any]) -> None:
        """Publish a job event (progress, state, log) to the job's subscribers."""
        self._publish(JOB, event)

    def live_changed(self, session_id: str) -> None:
        """A live session has a new result or state: answer the requests waiting for it."""
        self._publish(LIVE, session_id)

    def request_done(self) -> None:
        """A request handled off the socket thread has its reply ready: wake the socket thread to send it."""
        self._publish(DONE, None)

    def _publish(self, kind: str, payload: Any) -> None:
        if threading.get_ident() == self._thread_id:
            self._deliver(kind, payload)
            return
        # Never block: the pipe is only full when the socket thread has stopped, and then nobody is left to tell
        # (clients also poll job states).
        with self._lock, contextlib.suppress(zmq.Again, zmq.ZMQError):
            self._push.send(msgpack.packb([kind, payload], use_bin_type=True), flags=zmq.NOBLOCK)

    def _deliver(self, kind: str, payload: Any) -> None:
        if kind == LIVE:
            self._route_live(payload)
        elif kind == DONE:
            self._route_done()
        else:
            self._route_job(payload)

    def drain(self, limit: int | None = None) -> None:
        """Route what other threads published, at most ``limit`` items (None: all there is now)."""
        count = 0
        while (limit is None or count < limit) and self.pull.poll(0):
            kind, payload = msgpack.unpackb(self.pull.recv(), raw=False)
            self._deliver(kind, payload)
            count += 1

    def close(self) -> None:
        with self._lock:
            self._push.close(linger=0)
        self.pull.close(linger=0)
