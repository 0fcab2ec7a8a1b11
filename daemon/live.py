"""Live sessions: one mechanism for every live mode (pose, face swap, LivePortrait).

A session owns a capture thread (camera or a video file at its frame rate) and an inference thread that
always takes the newest frame. Results are kept latest-only; the owner fetches them with ``live_next``, which
the server answers as soon as a result newer than the client's last one exists (a long poll). Each fetch is
also the session's heartbeat: a session nobody fetched from for ``ttl_s`` seconds (Blender closed or
crashed) is stopped and cleaned up. Only the client that started a session can see or steer it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.runner import InvalidInput, LiveProcessor, Media, Runner
from shared import errors as e
from shared.errors import VfxError

from .capture import FrameSource, parse_source
from .registry import ModelRegistry

log = logging.getLogger("daemon.live")


@dataclass(frozen=True)
class LiveLimits:
    max_sessions_per_client: int = 2
    max_sessions: int = 4
    """Sessions of all clients together: each holds a camera or a decoder and competes for the device."""
    ttl_s: float = 10.0
    max_wait_s: float = 5.0
    release_wait_s: float = 10.0
    """How long a new session on a camera waits for a stopped session to let go of that camera."""


@dataclass
class LiveFrameResult:
    seq: int
    frame_index: int
    captured_at: float
    processed_at: float
    process_ms: float
    data: dict[str, Any]
    arrays: dict[str, np.ndarray]


@dataclass
class LiveSession:
    session_id: str
    client: str
    mode: str
    params: dict[str, Any]
    source: dict[str, Any]
    state: str = "starting"
    error: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    latest: LiveFrameResult | None = None
    stop_flag: threading.Event = field(default_factory=threading.Event)
    pending_params: dict[str, Any] | None = None
    """Options changed by a request, taken by the session thread before its next frame (under ``lock``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    released: bool = False
    """Set (under the sessions' lock) once the thread has let go of the camera and the model."""
    frame_times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=30))

    @property
    def fps(self) -> float:
        if len(self.frame_times) < 2:
            return 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        return (len(self.frame_times) - 1) / span if span > 0 else 0.0

    def view(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "mode": self.mode,
            "state": self.state,
            "error": self.error,
            "params": self.params,
            "source": self.source,
            "created_at": self.created_at,
            "fps": round(self.fps, 2),
            "seq": self.latest.seq if self.latest else 0,
        }


class LiveSessions:
    """All live sessions of the daemon. ``notify(session_id)`` is called (from session threads) whenever a
    session has a new result or changed state; the server uses it to answer waiting ``live_next`` requests."""

    def __init__(
        self,
        registry: ModelRegistry,
        resolve_inputs: Callable[[Mapping[str, Any]], dict[str, Media]],
        notify: Callable[[str], None],
        limits: LiveLimits = LiveLimits(),
    ) -> None:
        self.registry = registry
        self.resolve_inputs = resolve_inputs
        self.notify = notify
        self.limits = limits
        self._sessions: dict[str, LiveSession] = {}
        self._ending: dict[str, LiveSession] = {}
        """Stopped sessions whose thread is still letting go of its camera and model."""
        self._lock = threading.Lock()

    # -- requests (socket thread) --------------------------------------------------------------------------

    def start(self, client: str, content: Mapping[str, Any]) -> LiveSession:
        mode = content.get("mode")
        runner = self.registry.runner(str(mode))
        if runner.live_params is None:
            raise VfxError(f"mode {mode} has no live variant", code=e.INVALID_INPUT, detail={"field": "mode"})
        self.registry.check_ready(runner.mode)
        params = self._validate(runner, content.get("params") or {})
        source = parse_source(content.get("source"))
        with self._lock:
            mine = [s for s in self._sessions.values() if s.client == client]
            if len(mine) >= self.limits.max_sessions_per_client:
                raise VfxError(
                    f"this client already runs {len(mine)} live session(s) (limit "
                    f"{self.limits.max_sessions_per_client}); stop one first",
                    code=e.LIMIT_EXCEEDED,
                    detail={"sessions": [s.session_id for s in mine]},
                )
            # A stopped session still letting go of its camera and model holds them: it counts until it has.
            held = len(self._sessions) + len(self._ending)
            if held >= self.limits.max_sessions:
                raise VfxError(
                    f"the daemon already holds {held} live sessions, {len(self._ending)} of them still ending "
                    f"(limit {self.limits.max_sessions}, --max-live-sessions-total); stop one first or try again "
                    "in a moment",
                    code=e.LIMIT_EXCEEDED,
                )
        raw_inputs = content.get("inputs") or {}
        if not isinstance(raw_inputs, dict):
            raise VfxError("inputs must be a map", code=e.INVALID_INPUT, detail={"field": "inputs"})
        try:
            inputs = self.resolve_inputs(raw_inputs)
        except InvalidInput as exc:
            raise VfxError(str(exc), code=e.INVALID_INPUT, detail={"field": f"inputs.{exc.field}"}) from None
        session = LiveSession(uuid.uuid4().hex, client, runner.mode, params, source)
        session.thread = threading.Thread(
            target=self._run,
            args=(session, inputs),
            name=f"vfx-live-{session.session_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._sessions[session.session_id] = session
        session.thread.start()
        log.info("live session %s (%s) started for client %s", session.session_id[:8], session.mode, client[:8])
        return session

    def _validate(self, runner: Runner, values: Any) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise VfxError("params must be a map", code=e.INVALID_INPUT, detail={"field": "params"})
        try:
            return runner.validate_live(values)
        except InvalidInput as exc:
            raise VfxError(str(exc), code=e.INVALID_INPUT, detail={"field": f"params.{exc.field}"}) from None

    def get(self, client: str, session_id: Any) -> LiveSession:
        with self._lock:
            session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None or session.client != client:
            raise VfxError(
                f"no live session {session_id!r} of this client (it may have timed out)",
                code=e.NOT_FOUND,
                detail={"field": "session_id"},
            )
        session.last_seen = time.monotonic()
        return session

    def update(self, client: str, content: Mapping[str, Any]) -> LiveSession:
        session = self.get(client, content.get("session_id"))
        runner = self.registry.runner(session.mode)
        changes = content.get("params") or {}
        if not isinstance(changes, dict):
            raise VfxError(
                "params must be a map of option names to values", code=e.INVALID_INPUT, detail={"field": "params"}
            )
        merged = {**session.params, **changes}
        validated = self._validate(runner, merged)
        with session.lock:
            session.pending_params = session.params = validated
        return session

    def stop(self, client: str, session_id: Any) -> LiveSession:
        session = self.get(client, session_id)
        self._end(session)
        return session

    def for_client(self, client: str) -> list[LiveSession]:
        with self._lock:
            return [s for s in self._sessions.values() if s.client == client]

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def ending(self) -> int:
        """Stopped sessions still releasing their camera and model."""
        with self._lock:
            return len(self._ending)

    def sweep(self) -> list[str]:
        """Stop sessions whose owner has not fetched for ``ttl_s`` seconds; forget finished ones."""
        now = time.monotonic()
        expired = []
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            if now - session.last_seen > self.limits.ttl_s:
                log.info("live session %s timed out (no fetch for %.0f s)", session.session_id[:8], self.limits.ttl_s)
                self._end(session)
                expired.append(session.session_id)
        return expired

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every session and wait (up to ``timeout`` seconds in all) for their threads: the daemon exits."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            self._end(session)
        deadline = time.monotonic() + timeout
        with self._lock:
            ending = list(self._ending.values())
        for session in ending:
            if session.thread is not None:
                session.thread.join(max(0.0, deadline - time.monotonic()))

    def _end(self, session: LiveSession) -> None:
        """Ask the session to stop and forget it; never waits (it runs on the request thread). The session
        thread finishes the frame in hand, releases the camera and leaves :attr:`_ending`."""
        session.stop_flag.set()
        with self._lock:
            if self._sessions.pop(session.session_id, None) is not None and not session.released:
                self._ending[session.session_id] = session

    def _wait_for_release(self, session: LiveSession) -> None:
        """Session thread: a camera opens only once, so wait for stopped sessions on the same camera to let go of
        it (a start right after a stop). Files can be opened many times at once and are not waited for."""
        if "camera" not in session.source:
            return
        with self._lock:
            holders = [s for s in self._ending.values() if s.source.get("camera") == session.source["camera"]]
        deadline = time.monotonic() + self.limits.release_wait_s
        for holder in holders:
            if holder.thread is not None and not session.stop_flag.is_set():
                holder.thread.join(max(0.0, deadline - time.monotonic()))

    # -- the session thread --------------------------------------------------------------------------------

    def _run(self, session: LiveSession, inputs: dict[str, Media]) -> None:
        """The session thread: open the camera (here, so the request thread never waits on a camera or on a
        session still letting go of it), load the mode, then process the newest frame until stopped."""
        processor: LiveProcessor | None = None
        capture: FrameSource | None = None
        try:
            self._wait_for_release(session)
            capture = FrameSource(session.source)  # a missing camera ends the session "failed", with the reason
            with self.registry.use(session.mode) as runner:
                processor = runner.start_live(session.params, inputs)
                capture.start()
                session.state = "running"
                self.notify(session.session_id)
                seq = 0
                while not session.stop_flag.is_set():
                    frame = capture.latest(timeout=0.2)
                    if frame is None:
                        if capture.finished:
                            break
                        continue
                    with session.lock:
                        params, session.pending_params = session.pending_params, None
                    if params is not None:
                        processor.update(params)
                    started = time.monotonic()
                    result = processor.process(frame.rgb(), frame.captured_at)
                    done = time.monotonic()
                    seq += 1
                    session.latest = LiveFrameResult(
                        seq, frame.index, frame.captured_at, done, (done - started) * 1000, result.data, result.arrays
                    )
                    session.frame_times.append(done)
                    self.notify(session.session_id)
            if session.stop_flag.is_set():
                session.state = "stopped"
            elif capture.error is not None:
                session.state, session.error = "failed", capture.error.to_wire()
            elif capture.ended:
                session.state = "ended"
            else:
                session.state = "stopped"
        except VfxError as exc:
            session.state, session.error = "failed", exc.to_wire()
        except InvalidInput as exc:
            session.state = "failed"
            session.error = {"code": e.INVALID_INPUT, "message": str(exc), "detail": {"field": exc.field}}
        except Exception as exc:  # a processor bug ends the session, never the daemon
            log.exception("live session %s failed", session.session_id[:8])
            session.state = "failed"
            session.error = {"code": e.RUN_FAILED, "message": f"{type(exc).__name__}: {exc}", "detail": None}
        finally:
            if processor is not None:
                processor.close()
            if capture is not None:
                capture.close()
            with self._lock:
                session.released = True
                self._ending.pop(session.session_id, None)
            self.notify(session.session_id)
            log.info("live session %s %s", session.session_id[:8], session.state)
