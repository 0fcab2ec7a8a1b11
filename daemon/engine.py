"""The job engine: validation, idempotent submission, the queue, state changes, cancel and retry.

The engine is the one scheduler: only it moves jobs between states, and every move is a conditional update
in the store (``expect=...``), so a cancel racing with a worker picking the job up resolves one way only.
Executors pull the next job with :meth:`JobEngine.next_job` and report back with :meth:`finish`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.runner import InvalidInput, Runner
from shared import errors as e
from shared.errors import VfxError
from shared.messages import FINAL_STATES, JOB_STATES
from shared.references import referenced_jobs

from .blobs import BlobStore
from .job_inputs import open_inputs
from .outputs import JobFolders, valid_job_id
from .registry import ModelRegistry
from .store import JobRecord, JobStore

log = logging.getLogger("daemon.engine")

EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EngineLimits:
    max_queued: int = 256
    max_queued_per_client: int = 64
    max_inputs: int = 8
    max_paths_per_input: int = 100_000


@dataclass
class LiveProgress:
    fraction: float = 0.0
    stage: str = ""
    eta_s: float | None = None
    started: float = field(default_factory=time.monotonic)


def fingerprint(mode: str, params: dict[str, Any], inputs: dict[str, Any]) -> str:
    text = json.dumps([mode, params, inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_file(path: str) -> bool:
    """Whether ``path`` names an existing file; a name the system cannot even look up (too long, a NUL byte)
    names none."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _shortened(path: str, chars: int = 200) -> str:
    """A path as quoted in an error: a 100 000-character one is cut, an error is for people to read."""
    return path if len(path) <= chars else f"{path[: chars // 2]}...{path[-chars // 2 :]} ({len(path)} characters)"


def _bad_record(record: JobRecord) -> str | None:
    """Why a stored record cannot be served (a job id no folder can have, an unknown state), or None."""
    if not valid_job_id(record.job_id):
        return f"job id {record.job_id!r} is not valid"
    if record.state not in JOB_STATES:
        return f"unknown state {record.state!r}"
    if not isinstance(record.params, dict) or not isinstance(record.inputs, dict):
        return "params and inputs are not maps"
    return None


class JobEngine:
    def __init__(
        self,
        store: JobStore,
        registry: ModelRegistry,
        folders: JobFolders,
        blobs: BlobStore,
        limits: EngineLimits = EngineLimits(),
    ) -> None:
        self.store = store
        self.registry = registry
        self.folders = folders
        self.blobs = blobs
        self.limits = limits
        self.emit: EventSink = lambda event: None
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._cancel_flags: dict[str, threading.Event] = {}
        self._live: dict[str, LiveProgress] = {}

    # -- start-up ------------------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Quarantine records no job can be made of, mark jobs a dead daemon left running as interrupted and
        queue the ones still waiting. Returns the interrupted jobs."""
        for job_id, reason in self.store.quarantine(_bad_record):
            log.warning("job record %r moved to the database's quarantine table: %s", job_id, reason)
        interrupted = self.store.mark_running_interrupted()
        with self._cond:
            for record in self.store.in_state("queued"):
                self._queue.append(record.job_id)
            self._cond.notify_all()
        return interrupted

    # -- requests ------------------------------------------------------------------------------------------

    def submit(self, client: str, content: dict[str, Any]) -> JobRecord:
        job_id = content.get("job_id")
        if not valid_job_id(job_id):
            raise VfxError(
                "job_id must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit, without '..'",
                code=e.INVALID_INPUT,
                detail={"field": "job_id"},
            )
        mode = content.get("mode")
        if not isinstance(mode, str):
            raise VfxError("mode must be a string", code=e.INVALID_INPUT, detail={"field": "mode"})
        raw_params = content.get("params") or {}
        raw_inputs = content.get("inputs") or {}
        if not isinstance(raw_params, dict) or not isinstance(raw_inputs, dict):
            raise VfxError("params and inputs must be maps", code=e.INVALID_INPUT, detail={"field": "params"})
        existing = self.store.get(job_id)
        if existing is not None:
            if existing.fingerprint != fingerprint(mode, raw_params, raw_inputs):
                raise VfxError(
                    f"job {job_id} already exists with other mode, parameters or inputs; use a new job id",
                    code=e.CONFLICT,
                    detail={"field": "job_id"},
                )
            return existing
        runner = self.registry.runner(mode)
        try:
            params = runner.validate(raw_params)
        except InvalidInput as exc:
            raise VfxError(str(exc), code=e.INVALID_INPUT, detail={"field": f"params.{exc.field}"}) from None
        inputs = self._validate_inputs(runner.inputs, raw_inputs)
        self.registry.check_ready(mode, params)
        self._check_queue_room(client)
        self._check_media(runner, params, inputs)  # opens files: after the cheap checks
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            mode=mode,
            state="queued",
            client=client,
            params=params,
            inputs=inputs,
            fingerprint=fingerprint(mode, raw_params, raw_inputs),
            created_at=now,
            updated_at=now,
        )
        try:
            record = self.store.insert(record)
        except sqlite3.IntegrityError:  # the same id submitted twice at once: the first insert won
            stored = self.store.get(job_id)
            assert stored is not None
            return stored
        self._enqueue(job_id)
        self._emit_state(record)
        return record

    def _validate_inputs(self, slots: tuple[Any, ...], raw: dict[str, Any]) -> dict[str, Any]:
        names = {s.name for s in slots}
        for name in raw:
            if name not in names:
                raise VfxError(
                    f"input {name!r} is not taken by this mode (inputs: {', '.join(sorted(names)) or 'none'})",
                    code=e.INVALID_INPUT,
                    detail={"field": f"inputs.{name}"},
                )
        missing_blobs: list[str] = []
        for slot in slots:
            spec = raw.get(slot.name)
            field_name = f"inputs.{slot.name}"
            if spec is None:
                if slot.required:
                    raise VfxError(
                        f"{field_name} is required ({slot.help or slot.kind})",
                        code=e.INVALID_INPUT,
                        detail={"field": field_name},
                    )
                continue
            if not isinstance(spec, dict):
                raise VfxError(
                    f"{field_name} must be a map such as {{'path': '/abs/file.mp4'}}",
                    code=e.INVALID_INPUT,
                    detail={"field": field_name},
                )
            if "path" in spec:
                if not isinstance(spec["path"], str) or not Path(spec["path"]).is_absolute():
                    raise VfxError(
                        f"{field_name}.path must be an absolute path on the daemon's machine",
                        code=e.INVALID_INPUT,
                        detail={"field": f"{field_name}.path"},
                    )
                if not _is_file(spec["path"]):
                    raise VfxError(
                        f"{field_name}.path: file not found: {_shortened(spec['path'])}",
                        code=e.INVALID_INPUT,
                        detail={"field": f"{field_name}.path"},
                    )
            elif "paths" in spec:
                paths = spec["paths"]
                if not isinstance(paths, list) or not paths or len(paths) > self.limits.max_paths_per_input:
                    raise VfxError(
                        f"{field_name}.paths must be a non-empty list of image files",
                        code=e.INVALID_INPUT,
                        detail={"field": f"{field_name}.paths"},
                    )
                absent = [p for p in paths if not isinstance(p, str) or not _is_file(p)]
                if absent:
                    raise VfxError(
                        f"{field_name}.paths: {len(absent)} file(s) not found, first: {_shortened(str(absent[0]))}",
                        code=e.INVALID_INPUT,
                        detail={"field": f"{field_name}.paths"},
                    )
            elif "blob" in spec:
                if not isinstance(spec["blob"], str) or not self.blobs.has(spec["blob"]):
                    missing_blobs.append(str(spec["blob"]))
            else:
                raise VfxError(
                    f"{field_name} needs one of 'path', 'paths' or 'blob'",
                    code=e.INVALID_INPUT,
                    detail={"field": field_name},
                )
        if missing_blobs:
            raise VfxError(
                f"{len(missing_blobs)} input blob(s) are not stored yet; upload them first",
                code=e.NOT_FOUND,
                detail={"missing_blobs": missing_blobs},
            )
        return raw

    def _check_media(self, runner: Runner, params: dict[str, Any], inputs: dict[str, Any]) -> None:
        """Open the inputs (metadata only) so an undecodable file, an empty frame range or media that do not
        fit the parameters are refused now, naming the input, instead of failing the job later."""
        try:
            runner.check_media(params, open_inputs(self.blobs, inputs))
        except InvalidInput as exc:
            name = exc.field if exc.field.startswith("params.") else f"inputs.{exc.field}"
            raise VfxError(str(exc), code=e.INVALID_INPUT, detail={"field": name}) from None

    def _check_queue_room(self, client: str) -> None:
        queued = self.store.count("queued")
        if queued >= self.limits.max_queued:
            raise VfxError(
                f"the queue is full ({queued} jobs); wait for jobs to finish or cancel some",
                code=e.QUEUE_FULL,
                detail={"queued": queued, "limit": self.limits.max_queued},
            )
        mine = self.store.count("queued", client)
        if mine >= self.limits.max_queued_per_client:
            raise VfxError(
                f"this client already has {mine} queued jobs (limit {self.limits.max_queued_per_client})",
                code=e.LIMIT_EXCEEDED,
                detail={"queued": mine, "limit": self.limits.max_queued_per_client},
            )

    def get(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id) if isinstance(job_id, str) else None
        if record is None:
            raise VfxError(f"no job {job_id!r}", code=e.NOT_FOUND, detail={"field": "job_id"})
        return record

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or ask a running one to stop (it ends as ``cancelled``)."""
        record = self.get(job_id)
        if record.state == "queued":
            updated = self.store.update(job_id, expect=("queued",), state="cancelled", finished_at=time.time())
            if updated is not None:
                with self._cond:
                    if job_id in self._queue:
                        self._queue.remove(job_id)
                self._emit_state(updated)
                return updated
            record = self.get(job_id)
        if record.state == "running":
            flag = self._cancel_flags.get(job_id)
            if flag is not None:
                flag.set()
                self.update_progress(job_id, stage="cancelling")
        return self.get(job_id)

    def retry(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record.state in ("queued", "running"):
            return record
        if record.state == "succeeded":
            raise VfxError(
                f"job {job_id} already succeeded; submit a new job id to run it again",
                code=e.CONFLICT,
                detail={"field": "job_id"},
            )
        self.registry.check_ready(record.mode, record.params)
        self._check_queue_room(record.client)
        updated = self.store.update(
            job_id,
            expect=("failed", "cancelled", "interrupted"),
            state="queued",
            error=None,
            fraction=0.0,
            stage="",
            finished_at=None,
        )
        if updated is None:
            return self.get(job_id)
        self._enqueue(job_id)
        self._emit_state(updated)
        return updated

    def prune(self, older_than_s: float, dry_run: bool = False) -> tuple[list[str], int, dict[str, list[str]]]:
        """Delete jobs that finished more than ``older_than_s`` seconds ago (records and folders) and the
        uploaded inputs no remaining job uses. Queued and running jobs are never touched, nor jobs whose folders a
        saved .blend still uses (:mod:`shared.references`). Returns the jobs removed, the bytes freed and the jobs
        kept for a .blend (job id -> the .blend files); with ``dry_run`` nothing is deleted, only counted."""
        cutoff = time.time() - older_than_s
        in_use = referenced_jobs(self.folders.root.parent)
        removed, freed, kept = [], 0, {}
        for record in self.store.finished_before(cutoff):
            if record.job_id in in_use:
                kept[record.job_id] = in_use[record.job_id]
                continue
            removed.append(record.job_id)
            if dry_run:
                freed += self.folders.size(record.job_id)
                continue
            freed += self.folders.remove(record.job_id)
            self.store.delete(record.job_id)
        if not dry_run:
            referenced = {
                spec["blob"]
                for inputs in self.store.all_inputs()
                for spec in inputs.values()
                if isinstance(spec, dict) and isinstance(spec.get("blob"), str)
            }
            freed += self.blobs.remove_unreferenced(referenced, cutoff)
            freed += self.blobs.remove_partial_uploads()
        return removed, freed, kept

    # -- the queue (executors call these) -------------------------------------------------------------------

    def _enqueue(self, job_id: str) -> None:
        with self._cond:
            self._queue.append(job_id)
            self._cond.notify()

    def next_job(self, timeout: float | None = None) -> tuple[JobRecord, threading.Event] | None:
        """Block until a queued job can start; mark it running and return it with its cancel flag."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                if self._closed:
                    return None
                job_id = self._queue.popleft()
            try:
                started = self._start(job_id)
            except Exception:  # one record that cannot start must never stop the queue
                log.exception("job %r could not be started", job_id)
                self._fail_unstartable(job_id)
                continue
            if started is not None:
                return started

    def _start(self, job_id: str) -> tuple[JobRecord, threading.Event] | None:
        """Mark a queued job running; None if it was cancelled while it waited."""
        current = self.store.get(job_id)
        if current is None or current.state != "queued":
            return None
        flag = threading.Event()
        self._cancel_flags[job_id] = flag
        record = self.store.update(
            job_id,
            expect=("queued",),
            state="running",
            started_at=time.time(),
            attempts=current.attempts + 1,
        )
        if record is None:  # cancelled between the check and the update
            self._cancel_flags.pop(job_id, None)
            return None
        self._live[job_id] = LiveProgress()
        self._emit_state(record)
        return record, flag

    def _fail_unstartable(self, job_id: str) -> None:
        self._cancel_flags.pop(job_id, None)
        self._live.pop(job_id, None)
        error = {"code": e.INTERNAL, "message": "the daemon could not start this job (see daemon.log)", "detail": None}
        try:
            self.store.update(
                job_id, expect=("queued", "running"), state="failed", error=error, finished_at=time.time()
            )
        except Exception:
            log.exception("job %r could not be marked failed either", job_id)

    def update_progress(self, job_id: str, fraction: float | None = None, stage: str | None = None) -> LiveProgress:
        live = self._live.setdefault(job_id, LiveProgress())
        if fraction is not None:
            live.fraction = min(1.0, max(0.0, fraction))
            elapsed = time.monotonic() - live.started
            live.eta_s = elapsed * (1 - live.fraction) / live.fraction if live.fraction > 0.001 else None
        if stage is not None:
            live.stage = stage
        return live

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        error: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        frame_count: int = 0,
    ) -> JobRecord | None:
        """Record the end of a running job (durably) and announce it."""
        assert state in FINAL_STATES
        live = self._live.pop(job_id, LiveProgress())
        self._cancel_flags.pop(job_id, None)
        changes: dict[str, Any] = {
            "state": state,
            "error": error,
            "finished_at": time.time(),
            "fraction": 1.0 if state == "succeeded" else live.fraction,
            "stage": live.stage,
        }
        if summary is not None:
            changes["summary"] = summary
            changes["frame_count"] = frame_count
        record = self.store.update(job_id, expect=("running",), **changes)
        if record is not None:
            self._emit_state(record)
        return record

    def requeue(self, job_id: str) -> JobRecord | None:
        """Put a running job whose work never started (the executor lost the machines it was waiting for)
        back at the head of the queue, its attempt uncounted. Jobs whose work started are never requeued:
        that could run them twice."""
        self._live.pop(job_id, None)
        self._cancel_flags.pop(job_id, None)
        current = self.store.get(job_id)
        if current is None:
            return None
        record = self.store.update(
            job_id,
            expect=("running",),
            state="queued",
            started_at=None,
            attempts=max(0, current.attempts - 1),
            fraction=0.0,
            stage="",
        )
        if record is not None:
            with self._cond:
                self._queue.appendleft(job_id)
                self._cond.notify()
            self._emit_state(record)
        return record

    def running_jobs(self) -> list[str]:
        return list(self._cancel_flags)

    def queue_depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def abandon(self, job_id: str) -> str:
        """Fail a running job whose outcome could not be recorded (the disk or the store failed), so that
        it does not stay ``running`` forever. Returns the state it ends in."""
        try:
            self.finish(
                job_id,
                "failed",
                error={
                    "code": e.INTERNAL,
                    "message": "the daemon could not record this job's outcome (see daemon.log); retry it",
                    "detail": None,
                },
            )
        except Exception:
            log.exception("job %s could not be marked failed either", job_id)
        return "failed"

    def close(self) -> None:
        """Stop handing out jobs (queued ones stay queued in the store for the next start)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closing(self) -> bool:
        return self._closed

    def interrupt_running(self) -> None:
        for flag in list(self._cancel_flags.values()):
            flag.set()

    # -- views -------------------------------------------------------------------------------------------

    def view(self, record: JobRecord) -> dict[str, Any]:
        """The job as clients see it: the stored record plus live progress and the outputs folder."""
        live = self._live.get(record.job_id)
        return {
            "job_id": record.job_id,
            "mode": record.mode,
            "state": record.state,
            "fraction": live.fraction if live else record.fraction,
            "stage": live.stage if live else record.stage,
            "eta_s": live.eta_s if live else None,
            "error": record.error,
            "params": record.params,
            "inputs": record.inputs,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "attempts": record.attempts,
            "output_dir": str(self.folders.outputs(record.job_id)),
            "frame_count": record.frame_count,
            "summary": record.summary,
            "cursor": record.seq,
        }

    def _emit_state(self, record: JobRecord) -> None:
        self.emit(
            {
                "type": "state",
                "job_id": record.job_id,
                "state": record.state,
                "error": record.error,
                "job": self.view(record),
            }
        )
