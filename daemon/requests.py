"""Request handlers: one method per request type, each quick (they run on the socket thread).

A handler takes the request content, its arrays and the client's session id and returns the reply content
and reply arrays. Refusals raise :class:`VfxError`; the server turns them into ``{ok: false, error}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shared import errors as e
from shared import messages as m
from shared.errors import VfxError

from .engine import JobEngine
from .live import LiveSessions
from .store import JobRecord
from .trust import Trust

Reply = tuple[dict[str, Any], list[np.ndarray]]

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
        self.table: dict[str, Callable[[dict[str, Any], list[np.ndarray], str], Reply]] = {
            m.PING: self.ping,
            m.HEALTH: self.health,
            m.SUBMIT: self.submit,
            m.JOB: self.job,
            m.JOBS: self.jobs,
            m.CANCEL: self.cancel,
            m.RETRY: self.retry,
            m.RESULT: self.result,
            m.FRAME: self.frame,
            m.UPLOAD: self.upload,
            m.RELEASE_MEMORY: self.release_memory,
            m.PRUNE: self.prune,
            m.LIVE_START: self.live_start,
            m.LIVE_UPDATE: self.live_update,
            m.LIVE_STOP: self.live_stop,
            m.LIVE_LIST: self.live_list,
        }

    def ping(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session_id": self.session_id, "time": time.time()}, arrays

    def health(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"health": self.health_report()}, []

    def owned(self, content: dict[str, Any], client: str) -> JobRecord:
        """The job ``content`` names, if ``client`` may see it; another key's job is as absent as a missing one."""
        job_id = _job_id(content)
        record = self.engine.store.get(job_id)
        if record is None or not self.trust.owns(client, record.client):
            raise VfxError(f"no job {job_id!r}", code=e.NOT_FOUND, detail={"field": "job_id"})
        return record

    def submit(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        self.trust.check_inputs(client, content.get("inputs"))
        job_id = content.get("job_id")
        existing = self.engine.store.get(job_id) if isinstance(job_id, str) else None
        if existing is not None and not self.trust.owns(client, existing.client):
            raise VfxError(f"job id {job_id!r} is taken; use a new job id", code=e.CONFLICT, detail={"field": "job_id"})
        record = self.engine.submit(client, content)
        return {"job": self.engine.view(record)}, []

    def job(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.owned(content, client))}, []

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
        records = self.engine.store.page(limit, before, None if self.trust.is_admin(client) else client)
        next_before = records[-1].seq if len(records) == limit else None
        return {"jobs": [self.engine.view(r) for r in records], "next_before": next_before}, []

    def cancel(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.engine.cancel(self.owned(content, client).job_id))}, []

    def retry(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"job": self.engine.view(self.engine.retry(self.owned(content, client).job_id))}, []

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
        stored = self.engine.folders.read_arrays(job_id)
        summary = self.engine.get(job_id).summary
        return {"summary": summary, "arrays": list(stored)}, list(stored.values())

    def frame(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        import cv2

        job_id = self._succeeded(content, client)
        index = content.get("index")
        count = self.engine.get(job_id).frame_count
        if not isinstance(index, int) or not 0 <= index < count:
            raise VfxError(f"index must be 0..{count - 1}", code=e.INVALID_REQUEST, detail={"field": "index"})
        image = cv2.imread(str(self.engine.folders.frame_file(job_id, index)), cv2.IMREAD_COLOR)
        if image is None:
            raise VfxError(f"frame {index} of job {job_id} is missing on disk", code=e.NOT_FOUND)
        return {"index": index, "count": count}, [np.ascontiguousarray(image[..., ::-1])]

    def upload(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        if len(arrays) != 1:
            raise VfxError("upload takes exactly one array", code=e.INVALID_REQUEST, detail={"field": "buffers"})
        return {"sha256": self.engine.blobs.put(arrays[0])}, []

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

    def live_update(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session": self.live.update(client, content).view()}, []

    def live_stop(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"session": self.live.stop(client, content.get("session_id")).view()}, []

    def live_list(self, content: dict[str, Any], arrays: list[np.ndarray], client: str) -> Reply:
        return {"sessions": [s.view() for s in self.live.for_client(client)]}, []
