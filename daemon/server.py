"""The socket loop: one ROUTER socket for requests, events routed to subscribed clients only.

Everything socket-related runs on the thread that calls :meth:`Server.serve`. Worker threads hand events
over through an inproc PUSH/PULL pair, so the ROUTER socket is never touched by two threads. Handlers on this
thread are quick (no job runs here), which is why cancel and shutdown are answered even while a job is running.
Requests whose time grows with a file's size (:data:`OFF_LOOP`: storing an upload, reading results and frames)
run on I/O threads instead, and their replies are sent from this thread when they are done, so a large upload
never holds up another client's live frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import zmq

from shared import errors as e
from shared import messages as m
from shared.errors import VfxError, WireError
from shared.wire import DEFAULT_LIMITS, Limits, ReplayGuard, pack, unpack

from .engine import JobEngine
from .events import EventPipe
from .gate import ConnectionGate
from .io_pool import IoPool
from .live import LiveSession, LiveSessions
from .requests import Call, Reply, RequestHandlers

log = logging.getLogger("daemon.server")

OFF_LOOP = frozenset({m.UPLOAD, m.RESULT, m.FRAME})
"""Requests handled on the I/O threads: they read or write files for as long as the files' size takes, and touch
nothing of the socket thread's (subscriptions, live waiters)."""
IO_THREADS = 2
IO_STOP_WAIT_S = 10.0
"""A stopping daemon answers the I/O requests that finish within this time; clients retry the others."""


@dataclass(frozen=True)
class ServerLimits:
    requests_per_second: float = 2000.0
    """Each client's requests refill at this rate (``serve --max-requests-per-second``)."""
    request_burst: float = 4000.0
    """How many requests a client that has been quiet may send at once (``serve --request-burst``)."""
    max_subscriptions_per_client: int = 256
    max_file_requests_per_client: int = 4
    """Requests of :data:`OFF_LOOP` a client may have waiting for the I/O threads at once."""
    max_file_requests: int = 32
    """... and all clients together: each may hold an upload's arrays in memory."""
    housekeeping_interval_s: float = 2.0


class TokenBucket:
    """One client's rate limit: ``burst`` requests at once, refilled at ``rate`` a second. Times are seconds of
    ``time.monotonic()``, passed in by the caller."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled: forgetting it then changes nothing for its client."""
        return self.tokens + (now - self.stamp) * self.rate >= self.burst

    def take(self, now: float) -> bool:
        """Whether a request at ``now`` is within the limit (it then uses one token)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Server:
    def __init__(
        self,
        context: zmq.Context[Any],
        router: zmq.Socket[Any],
        key: bytes,
        session_id: str,
        engine: JobEngine,
        handlers: RequestHandlers,
        *,
        wire_limits: Limits = DEFAULT_LIMITS,
        limits: ServerLimits = ServerLimits(),
        housekeeping: Callable[[], None] = lambda: None,
        live: LiveSessions | None = None,
        events: EventPipe,
        gate: ConnectionGate | None = None,
    ) -> None:
        self.context = context
        self.router = router
        self.key = key
        self.session_id = session_id
        self.engine = engine
        self.handlers = handlers
        self.wire_limits = wire_limits
        self.limits = limits
        self.housekeeping = housekeeping
        self.counters: Counter[str] = Counter()
        self._guard = ReplayGuard(wire_limits.max_clock_skew_s)
        self._subscribers: dict[str, dict[bytes, str]] = defaultdict(dict)  # job -> routing id -> client
        self._buckets: dict[str, TokenBucket] = {}
        self._stop = threading.Event()
        self.events = events
        self.live = live
        self.gate = gate
        """TCP only: follows connections that have not authenticated yet and caps them."""
        self._waiters: list[tuple[Any, float, int, LiveSession]] = []  # parked live_next requests
        self._io = IoPool(IO_THREADS, "daemon-io")
        self._file_requests: Counter[str] = Counter()  # client -> its requests on the I/O threads (socket thread)
        self._finished: queue.SimpleQueue[tuple[Any, str, Reply | BaseException]] = queue.SimpleQueue()
        """Requests the I/O threads finished, with their client and outcome, for the socket thread to answer."""
        self._encrypted = bool(router.getsockopt(zmq.CURVE_SERVER))
        self.exit_when_idle = False
        """Set by a ``shutdown`` request with ``when=idle``: the loop stops once no work is left."""

    # -- events --------------------------------------------------------------------------------------------

    def _route(self, event: dict[str, Any]) -> None:
        """Send a job event to the job's subscribers (socket thread)."""
        job_id = event.get("job_id", "")
        targets = self._subscribers.get(job_id)
        if not targets:
            return
        for routing_id in list(targets):
            frames = pack(m.EVENT, event, key=self.key, session=self.session_id, routing_ids=[routing_id])
            self.router.send_multipart(frames, copy=False)
        self.counters["events_sent"] += len(targets)
        if event.get("type") == "state" and event.get("state") in m.FINAL_STATES:
            self._subscribers.pop(job_id, None)

    def subscribe(self, routing_id: bytes, client: str, job_id: str) -> None:
        count = sum(1 for subs in self._subscribers.values() if routing_id in subs)
        if count >= self.limits.max_subscriptions_per_client:
            raise VfxError(
                f"too many subscriptions (limit {self.limits.max_subscriptions_per_client})",
                code=e.LIMIT_EXCEEDED,
            )
        self._subscribers[job_id][routing_id] = client

    # -- requests ------------------------------------------------------------------------------------------

    def _reply(self, request: Any, content: dict[str, Any], arrays: list[Any] | None = None) -> None:
        def frames_of(content: dict[str, Any], arrays: list[Any]) -> list[Any]:
            return pack(
                m.reply_type(request.type),
                content,
                key=self.key,
                session=self.session_id,
                parent_id=request.msg_id,
                arrays=arrays,
                routing_ids=request.routing_ids,
            )

        try:
            frames = frames_of(content, arrays or [])
        except WireError as exc:  # a result too big for a message, or not encodable: say so, keep serving
            log.error("a %s reply could not be sent: %s", request.type, exc.message)
            error = {"code": e.INTERNAL, "message": f"the daemon could not send its reply: {exc.message}"}
            frames = frames_of({"ok": False, "error": {**error, "detail": None}}, [])
        self.router.send_multipart(frames, copy=False)

    # -- live results (long poll) ----------------------------------------------------------------------------

    @staticmethod
    def _live_ready(session: LiveSession, after_seq: int) -> bool:
        return (session.latest is not None and session.latest.seq > after_seq) or session.state in m.LIVE_FINAL_STATES

    def _live_payload(self, session: LiveSession, after_seq: int) -> tuple[dict[str, Any], list[Any]]:
        latest = session.latest
        if latest is None or latest.seq <= after_seq:
            return {"session": session.view(), "result": None}, []
        result = {
            "seq": latest.seq,
            "frame_index": latest.frame_index,
            "captured_at": latest.captured_at,
            "processed_at": latest.processed_at,
            "process_ms": latest.process_ms,
            "data": latest.data,
            "arrays": list(latest.arrays),
        }
        return {"session": session.view(), "result": result}, list(latest.arrays.values())

    def wait_live(self, request: Any, session: LiveSession, after_seq: int, wait_s: float) -> Reply | None:
        if self._live_ready(session, after_seq) or wait_s <= 0:
            return self._live_payload(session, after_seq)
        self._waiters.append((request, time.monotonic() + wait_s, after_seq, session))
        return None

    def _answer_waiters(self, session_id: str | None = None) -> None:
        now = time.monotonic()
        keep = []
        for request, deadline, after_seq, session in self._waiters:
            matches = session_id is None or session.session_id == session_id
            if matches and (self._live_ready(session, after_seq) or now >= deadline):
                content, arrays = self._live_payload(session, after_seq)
                self._reply(request, {"ok": True, **content}, arrays)
            else:
                keep.append((request, deadline, after_seq, session))
        self._waiters = keep

    def _handle(self, frames: list[Any]) -> None:
        try:
            request = unpack(frames, key=self.key, guard=self._guard, limits=self.wire_limits)
        except WireError as exc:
            self.counters["rejected"] += 1
            log.debug("dropped a message: %s", exc)
            return
        except Exception:  # a decoding path we did not foresee: drop the message, never the daemon
            self.counters["rejected"] += 1
            log.exception("dropped a message that failed to decode")
            return
        self.counters["requests"] += 1
        if self.gate is not None:
            self.gate.authenticated(frames[-1].get(zmq.SRCFD))
        client = self._client_of(frames[0], request.session)
        try:
            now = time.monotonic()
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = TokenBucket(
                    self.limits.requests_per_second, self.limits.request_burst, now
                )
            if not bucket.take(now):
                raise VfxError(
                    f"too many requests from this client: at most {self.limits.requests_per_second:g} a second, "
                    f"{self.limits.request_burst:g} at once (the daemon's --max-requests-per-second and "
                    "--request-burst); slow down and send this again",
                    code=e.LIMIT_EXCEEDED,
                )
            if request.type in OFF_LOOP:
                self._start_off_loop(request, client)
                return
            reply = self._dispatch(request, client)
            if reply is not None:  # None: a parked live_next, answered when its result arrives
                self._answer(request, reply)
        except Exception as exc:
            self._answer(request, exc)

    def _answer(self, request: Any, outcome: Reply | BaseException) -> None:
        """Send a handler's reply, or its error: a VfxError as it is, anything else (a bug) as an internal error,
        which must not take the daemon down."""
        if not isinstance(outcome, BaseException):
            self._reply(request, {"ok": True, **outcome[0]}, outcome[1])
            return
        if isinstance(outcome, VfxError):
            self._reply(request, {"ok": False, "error": outcome.to_wire()})
            return
        log.error("request %s failed", request.type, exc_info=outcome)
        error = {"code": e.INTERNAL, "message": f"{type(outcome).__name__}: {outcome}", "detail": None}
        self._reply(request, {"ok": False, "error": error})

    # -- requests on the I/O threads ---------------------------------------------------------------------

    def _start_off_loop(self, request: Any, client: str) -> None:
        if self._file_requests[client] >= self.limits.max_file_requests_per_client:
            raise VfxError(
                f"too many file requests from this client at once (at most {self.limits.max_file_requests_per_client}"
                "): wait for their replies before sending more",
                code=e.LIMIT_EXCEEDED,
            )
        if self._file_requests.total() >= self.limits.max_file_requests:
            raise VfxError(
                f"the daemon is busy with {self.limits.max_file_requests} file requests: send this again shortly",
                code=e.LIMIT_EXCEEDED,
            )
        self._io.submit(partial(self._dispatch, request, client), partial(self._off_loop_done, request, client))
        self._file_requests[client] += 1

    def _off_loop_done(self, request: Any, client: str, outcome: Reply | BaseException | None) -> None:
        """An I/O thread finished a request: queue its outcome and wake the socket thread (I/O thread)."""
        self._finished.put((request, client, VfxError(f"{request.type} gave no reply") if outcome is None else outcome))
        self.events.request_done()

    def _answer_finished(self) -> None:
        """Send the replies of the requests the I/O threads finished (socket thread)."""
        while True:
            try:
                request, client, outcome = self._finished.get_nowait()
            except queue.Empty:
                return
            self._file_requests[client] -= 1
            if self._file_requests[client] <= 0:
                del self._file_requests[client]
            self._answer(request, outcome)

    def _forget_idle_clients(self) -> None:
        """Drop the rate-limit state of clients whose bucket has refilled, so a client sending from ever new
        session ids cannot grow it."""
        now = time.monotonic()
        self._buckets = {client: b for client, b in self._buckets.items() if not b.full(now)}

    @property
    def tracked_clients(self) -> int:
        """Clients whose rate-limit state is held (those that sent requests in the last seconds)."""
        return len(self._buckets)

    def _client_of(self, first_frame: Any, session: str) -> str:
        """Who sent a message, for limits and for whose jobs and live sessions these are. Over CURVE it is the
        sender's authenticated public key (a remote client cannot pose as another by choosing a session); on
        the local transports, where every key holder is the same user, it is the session the client names."""
        if self._encrypted:
            try:
                return f"key:{first_frame.get('User-Id')}"
            except (AttributeError, zmq.ZMQError):
                pass
        return session or "anonymous"

    def _dispatch(self, request: Any, client: str) -> Reply | None:
        handler = self.handlers.table.get(request.type)
        if handler is None:
            raise VfxError(
                f"unknown request type {request.type!r}",
                code=e.INVALID_REQUEST,
                detail={"known": sorted(m.REQUEST_TYPES)},
            )
        return handler(Call(request.content, request.arrays(), client, request.routing_ids[0], request, self))

    def unsubscribe(self, routing_id: bytes, job_id: str) -> None:
        self._subscribers.get(job_id, {}).pop(routing_id, None)

    def shutdown(self, when: str, client: str) -> dict[str, Any]:
        log.info("shutdown (%s) requested by client %s", when, client[:8])
        self.exit_when_idle = when == "idle"
        if when == "now" or (self.exit_when_idle and self._idle()):
            self._stop.set()
            return {"when": "now"}  # an idle daemon asked to stop when idle stops now: the caller may wait for it
        return {"when": when}

    def _idle(self) -> bool:
        return not self.engine.has_work() and (self.live is None or self.live.count() == 0)

    # -- the loop ------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def serve(self) -> None:
        """Serve until :meth:`request_stop` or a shutdown request. Call from one thread only."""
        self.events.attach(self._route, self._answer_waiters, self._answer_finished)
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events.pull, zmq.POLLIN)
        if self.gate is not None:
            poller.register(self.gate.monitor, zmq.POLLIN)
        next_housekeeping = time.monotonic()
        while not self._stop.is_set():
            ready = dict(poller.poll(100))
            if self.gate is not None:
                if self.gate.monitor in ready:
                    self.gate.drain()
                self.counters["unauthenticated_closed"] += self.gate.enforce()
            if self.events.pull in ready:
                self.events.drain(64)  # bounded drains keep events flowing while requests pour in
            for _ in range(64):
                if self.router not in ready or not self.router.poll(0):
                    break
                self._handle(self.router.recv_multipart(copy=False))
            if self._waiters:
                self._answer_waiters()
            if self._file_requests:  # also when a wake-up was lost: the replies wait in the queue
                self._answer_finished()
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self.limits.housekeeping_interval_s
                self._forget_idle_clients()
                try:
                    self.housekeeping()
                except Exception:  # e.g. a runner's unload failing: log it, keep serving requests
                    log.exception("housekeeping failed")
                if self.exit_when_idle and self._idle():
                    log.info("no work left: stopping, as asked")
                    self._stop.set()
        self._flush_events()

    def _flush_events(self) -> None:
        if not self._io.close(IO_STOP_WAIT_S):  # uploads being stored, results being read: let them finish
            log.warning("stopping with file requests still waiting on their files (after %g s)", IO_STOP_WAIT_S)
        self._answer_finished()
        self.events.drain()
        for request, _, after_seq, session in self._waiters:  # nobody waits on a stopping daemon
            content, arrays = self._live_payload(session, after_seq)
            self._reply(request, {"ok": True, **content}, arrays)
        self._waiters = []

    def close(self) -> None:
        if self.gate is not None:
            self.gate.close()
        self.events.close()
