"""Request handlers: one method per request type. Each is quick and runs on the socket thread, except ``upload``,
``result`` and ``frame``, which wait on files and run on the server's I/O threads (``server.OFF_LOOP``): those touch
only the engine and the files, never the server's subscriptions or live waiters.

A handler takes the request content, its arrays and the client's session id and returns the reply content
and reply arrays. Refusals raise :class:`VfxError`; the server turns them into ``{ok: false, error}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from shared import errors as e
from shared import messages as m
from shared.errors import VfxError

from .engine import JobEngine
from .live import LiveSession, LiveSessions
from .store import JobRecord
from .trust import Trust

Reply = tuple[dict[str, Any], list[np.ndarray]]


class Delivery(Protocol):
    """What the server offers handlers beyond a reply: event subscriptions, parked replies, stopping."""

    def subscribe(self, routing_id: bytes, client: str, job_id: str) -> None:
        """Send the job's later events to the connection ``routing_id``."""

    def unsubscribe(self, routing_id: bytes, job_id: str) -> None:
        """Stop sending the job's events to that connection."""

    def wait_live(self, request: Any, session: LiveSession, after_seq: int, wait_s: float) -> Reply | None:
        """The session's result after ``after_seq`` now, or None: the reply is sent when one arrives or
        ``wait_s`` runs out."""

    def shutdown(self, when: str, client: str) -> dict[str, Any]:
        """Stop now, once idle, or forget an earlier idle request (``when``)."""


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: its content and arrays, who sent it (``client`` for ownership,
    ``routing_id`` for its connection), the decoded message (to answer later) and the server's services."""

    content: dict[str, Any]
    arrays: list[np.ndarray]
    client: str
    routing_id: bytes
    request: Any
    delivery: Delivery


Handler = Callable[[Call], Reply | None]
"""None: the reply is sent later (a parked ``live_next``)."""


def _plain(handler: Callable[[dict[str, Any], list[np.ndarray], str], Reply]) -> Handler:
    """A handler that needs only the content, the arrays and the client."""
    return lambda call: handler(call.content, call.arrays, call.client)


MAX_PAGE = 500


def _job_id(content: dict[str, Any]) -> str:
    job_id = content.get("job_id")
    if not isinstance(job_id, str):
        raise VfxError("job_id must be a string", code=e.INVALID_REQUEST, detail={"field": "job_id"})
    return job_id


class RequestHandlers:
    def __init__(
        self,
        engine: JobEngine,
        health: Callable[[], dict[str, Any]],
        session_id: str,
        live: LiveSessions,
        release_memory: Callable[[], list[str]],
        trust: Trust | None = None,
    ) -> None:
        self.engine = engine
        self.release_models = release_memory
        self.trust = trust or Trust()
        self.live = live
        self.health_report = health
        self.session_id = session_id
        self.table: dict[str, Handler] = {
            m.PING: _plain(self.ping),
            m.HEALTH: _plain(self.health),
            m.SUBMIT: self.submit_call,
            m.JOB: _plain(self.job),
            m.JOBS: _plain(self.jobs),
            m.CANCEL: _plain(self.cancel),
            m.RETRY: _plain(self.retry),
            m.RESULT: _plain(self.result),
            m.FRAME: _plain(self.frame),
            m.UPLOAD: _plain(self.upload),
            m.SUBSCRIBE: self.subscribe,
            m.UNSUBSCRIBE: self.unsubscribe,
            m.RELEASE_MEMORY: _plain(self.release_memory),
            m.PRUNE: _plain(self.prune),
            m.SHUTDOWN: self.shutdown,
            m.LIVE_START: _plain(self.live_start),
            m.LIVE_NEXT: self.live_next,
            m.LIVE_UPDATE: _plain(self.live_update),
            m.LIVE_STOP: _plain(self.live_stop),
            m.LIVE_LIST: _plain(self.live_list),
        }
        """Every request type's handler: the one dispatch table."""

    def ping(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session_id": self.session_id, "time": time.time()}, arrays

    def health(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        report = self.health_report()
        if not self.trust.is_admin(client):  # another key's running job is not this client's to know of
            queue = report["queue"]
            queue["running"] = [j for j in queue["running"] if (r := self.engine.store.get(j)) and r.client == client]
        return {"health": report}, []

    def owned(self, content: dict[str, Any], client: str) -> JobRecord:
        """The job ``content`` names, if ``client`` may see it; another key's job is as absent as a missing one."""
        job_id = _job_id(content)
        record = self.engine.find(job_id)
        if record is None or not self.trust.owns(client, record.client):
            raise VfxError(f"no job {job_id!r}", code=e.NOT_FOUND, detail={"field": "job_id"})
        return record

    def submit(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        self.trust.check_inputs(client, content.get("inputs"))
        job_id = content.get("job_id")
        existing = self.engine.find(job_id)
        if existing is not None and not self.trust.owns(client, existing.client):
            raise VfxError(f"job id {job_id!r} is taken; use a new job id", code=e.CONFLICT, detail={"field": "job_id"})
        record = self.engine.submit(client, content)
        return {"job": self.engine.view(record).to_wire()}, []

    def submit_call(self, call: Call) -> Reply:
        reply = self.submit(call.content, call.arrays, call.client)
        if call.content.get("subscribe"):
            call.delivery.subscribe(call.routing_id, call.client, reply[0]["job"]["job_id"])
        return reply

    def subscribe(self, call: Call) -> Reply:
        record = self.owned(call.content, call.client)
        call.delivery.subscribe(call.routing_id, call.client, record.job_id)
        return {"job": self.engine.view(record).to_wire()}, []

    def unsubscribe(self, call: Call) -> Reply:
        call.delivery.unsubscribe(call.routing_id, str(call.content.get("job_id")))
        return {}, []

    def shutdown(self, call: Call) -> Reply:
        self.trust.require_admin(call.client, "shutdown")
        when = call.content.get("when", "now")
        if when not in m.SHUTDOWN_WHEN:
            raise VfxError(
                f"when must be one of {', '.join(m.SHUTDOWN_WHEN)}, got {when!r}",
                code=e.INVALID_REQUEST,
                detail={"field": "when"},
            )
        return call.delivery.shutdown(when, call.client), []

    def job(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.owned(content, client)).to_wire()}, []

    def jobs(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        limit = content.get("limit", 50)
        before = content.get("before")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise VfxError(f"limit must be 1..{MAX_PAGE}", code=e.INVALID_REQUEST, detail={"field": "limit"})
        if before is not None and (isinstance(before, bool) or not isinstance(before, int) or not 0 <= before < 2**63):
            raise VfxError(
                "before must be the cursor of a job from the previous page",
                code=e.INVALID_REQUEST,
                detail={"field": "before"},
            )
        records = self.engine.page(limit, before, None if self.trust.is_admin(client) else client)
        next_before = records[-1].seq if len(records) == limit else None
        return {"jobs": [self.engine.view(r).to_wire() for r in records], "next_before": next_before}, []

    def cancel(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.engine.cancel(self.owned(content, client).job_id)).to_wire()}, []

    def retry(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.engine.retry(self.owned(content, client).job_id)).to_wire()}, []

    def _succeeded(self, content: dict[str, Any], client: str) -> str:
        record = self.owned(content, client)
        if record.state != "succeeded":
            raise VfxError(
                f"job {record.job_id} is {record.state}; results exist once it has succeeded",
                code=e.CONFLICT,
                detail={"state": record.state},
            )
        return record.job_id

    def result(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        job_id = self._succeeded(content, client)
        stored = self.engine.result_arrays(job_id)
        summary = self.engine.get(job_id).summary
        return {"summary": summary, "arrays": list(stored)}, list(stored.values())

    def frame(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        """One drawn frame of a succeeded job: decoded to RGB, or with ``file: true`` the PNG file's own bytes
        (uint8, one dimension), which a client on another machine stores as they are."""
        import cv2

        job_id = self._succeeded(content, client)
        index = content.get("index")
        as_file = content.get("file", False)
        count = self.engine.get(job_id).frame_count
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise VfxError(f"index must be 0..{count - 1}", code=e.INVALID_REQUEST, detail={"field": "index"})
        if not isinstance(as_file, bool):
            raise VfxError("file must be true or false", code=e.INVALID_REQUEST, detail={"field": "file"})
        path = self.engine.frame_file(job_id, index)
        missing = VfxError(f"frame {index} of job {job_id} is missing on disk", code=e.NOT_FOUND)
        if as_file:
            try:
                return {"index": index, "count": count}, [np.frombuffer(path.read_bytes(), dtype=np.uint8)]
            except FileNotFoundError:
                raise missing from None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise missing
        return {"index": index, "count": count}, [np.ascontiguousarray(image[..., ::-1])]

    def upload(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        if len(arrays) != 1:
            raise VfxError("upload takes exactly one array", code=e.INVALID_REQUEST, detail={"field": "buffers"})
        return {"sha256": self.engine.upload(arrays[0])}, []

    def release_memory(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        self.trust.require_admin(client, "release_memory")
        return {"released": self.release_models()}, []

    def prune(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        self.trust.require_admin(client, "prune")
        days = content.get("older_than_days")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 <= days < math.inf:
            raise VfxError(
                "older_than_days must be a finite number of days, 0 or more",
                code=e.INVALID_REQUEST,
                detail={"field": "older_than_days"},
            )
        dry_run = content.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise VfxError("dry_run must be true or false", code=e.INVALID_REQUEST, detail={"field": "dry_run"})
        removed, freed, kept = self.engine.prune(float(days) * 86400.0, dry_run=dry_run)
        return {"removed": removed, "freed_bytes": freed, "kept_for_blend_files": kept}, []

    def live_start(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        self.trust.check_source(client, content.get("source"))
        self.trust.check_inputs(client, content.get("inputs"))
        return {"session": self.live.start(client, content).view()}, []

    def live_next(self, call: Call) -> Reply | None:
        content = call.content
        session = self.live.get(call.client, content.get("session_id"))
        after_seq, wait_s = content.get("after_seq", 0), content.get("wait_s", 1.0)
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            raise VfxError("after_seq must be an integer", code=e.INVALID_REQUEST, detail={"field": "after_seq"})
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float) or math.isnan(wait_s):
            raise VfxError("wait_s must be a number of seconds", code=e.INVALID_REQUEST, detail={"field": "wait_s"})
        return call.delivery.wait_live(
            call.request, session, after_seq, min(float(wait_s), self.live.limits.max_wait_s)
        )

    def live_update(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session": self.live.update(client, content).view()}, []

    def live_stop(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session": self.live.stop(client, content.get("session_id")).view()}, []

    def live_list(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"sessions": [s.view() for s in self.live.for_client(client)]}, []
