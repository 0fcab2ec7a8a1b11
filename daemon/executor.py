"""Executors run queued jobs. The local executor runs one job at a time on one worker thread (one GPU).

The contract between the engine and an executor is two engine methods: an executor pulls jobs with
:meth:`JobEngine.next_job` (which marks them running and hands over their cancel flag) and reports each
outcome with :meth:`JobEngine.finish`. The daemon drives an executor only through :class:`Executor`, so a
second executor (``daemon.ray_executor``) plugs in without touching the engine.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.runner import InvalidInput, JobCancelled
from shared import errors as e
from shared.errors import VfxError

from .devices import Device
from .engine import JobEngine
from .job_inputs import open_inputs
from .store import JobRecord

log = logging.getLogger("daemon.executor")

PROGRESS_INTERVAL_S = 0.1
PREVIEW_INTERVAL_S = 0.5
PREVIEW_MAX_SIDE = 256


def encode_preview(rgb: np.ndarray, max_side: int = PREVIEW_MAX_SIDE, quality: int = 80) -> bytes:
    """A small JPEG of an RGB uint8 frame, longest side at most ``max_side`` pixels."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        rgb = cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the preview as JPEG")
    return data.tobytes()


class ProgressThrottle:
    """Which progress reports become events: at most ~10 a second (plus every stage change and the end), and a
    preview JPEG at most every ``PREVIEW_INTERVAL_S``. Shared by local jobs and jobs run on a Ray worker."""

    def __init__(self) -> None:
        self._last_emit = 0.0
        self._last_preview = 0.0
        self._last_stage = ""

    def admit(self, fraction: float, stage: str, preview: np.ndarray | None) -> tuple[bool, bytes | None]:
        """(whether to send an event now, the preview JPEG to send with it or None)."""
        now = time.monotonic()
        jpeg = None
        if preview is not None and now - self._last_preview >= PREVIEW_INTERVAL_S:
            jpeg = encode_preview(preview)
            self._last_preview = now
        due = now - self._last_emit >= PROGRESS_INTERVAL_S or stage != self._last_stage or fraction >= 1.0
        if jpeg is None and not due:
            return False, None
        self._last_emit, self._last_stage = now, stage
        return True, jpeg


def emit_progress(engine: JobEngine, job_id: str, fraction: float, stage: str, preview_jpeg: bytes | None) -> None:
    """Record a job's progress and send the progress event its subscribers get."""
    live = engine.update_progress(job_id, fraction, stage)
    engine.emit(
        {
            "type": "progress",
            "job_id": job_id,
            "fraction": live.fraction,
            "stage": live.stage,
            "eta_s": live.eta_s,
            "preview_jpeg": preview_jpeg,
        }
    )


def job_error(exc: Exception) -> dict[str, Any]:
    """The wire error a job that raised ``exc`` fails with (a runner bug keeps its traceback in the detail)."""
    if isinstance(exc, InvalidInput):
        return {"code": e.INVALID_INPUT, "message": str(exc), "detail": {"field": f"inputs.{exc.field}"}}
    if isinstance(exc, VfxError):
        return exc.to_wire()
    return {
        "code": e.RUN_FAILED,
        "message": f"{type(exc).__name__}: {exc}",
        "detail": {"traceback": "".join(traceback.format_exception(exc, limit=12))},
    }


class JobContext:
    """The :class:`models.runner.RunContext` the daemon hands to runners. Worker thread only."""

    def __init__(
        self, engine: JobEngine, job_id: str, output_dir: Path, cancel: threading.Event, device: Device | None
    ) -> None:
        self.engine = engine
        self.job_id = job_id
        self.output_dir = output_dir
        self.device = device
        self._cancel = cancel
        self._throttle = ProgressThrottle()

    def progress(self, fraction: float, stage: str, preview: np.ndarray | None = None) -> None:
        send, jpeg = self._throttle.admit(fraction, stage, preview)
        if send:
            emit_progress(self.engine, self.job_id, fraction, stage, jpeg)
        else:
            self.engine.update_progress(self.job_id, fraction, stage)

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(self.job_id)

    def log(self, message: str) -> None:
        log.info("job %s: %s", self.job_id, message)
        self.engine.emit({"type": "log", "job_id": self.job_id, "message": message})


def run_job(engine: JobEngine, record: JobRecord, cancel: threading.Event, device: Callable[[], Device]) -> str:
    """Run one job to a final state and return that state. Never raises for a job's own failure."""
    job_id = record.job_id
    try:
        work = engine.folders.fresh_work_dir(job_id)
        ctx = JobContext(engine, job_id, work, cancel, None)
        with engine.registry.use(record.mode, on_load=lambda: ctx.progress(0.0, "loading model")) as runner:
            ctx.device = device()
            inputs = open_inputs(engine.blobs, record.inputs)
            ctx.progress(0.0, "starting")
            result = runner.run(inputs, record.params, ctx)
        ctx.raise_if_cancelled()
        engine.folders.publish(job_id, work, result.summary, result.arrays)
        engine.finish(job_id, "succeeded", summary=result.summary, frame_count=result.frame_count)
        return "succeeded"
    except JobCancelled:
        engine.folders.discard_work(job_id)
        if engine.closing:
            engine.finish(
                job_id,
                "interrupted",
                error={
                    "code": e.INTERRUPTED,
                    "message": "the daemon shut down while this job ran; retry it",
                    "detail": None,
                },
            )
            return "interrupted"
        engine.finish(job_id, "cancelled")
        return "cancelled"
    except Exception as exc:  # the job's own failure, or a runner bug or library error: the daemon lives on
        if not isinstance(exc, InvalidInput | VfxError):
            log.exception("job %s failed", job_id)
        error = job_error(exc)
    engine.folders.discard_work(job_id)
    engine.finish(job_id, "failed", error=error)
    return "failed"


class Executor(ABC):
    """Where jobs run. Chosen once at start-up; the daemon calls these from its main thread."""

    @abstractmethod
    def start(self) -> None:
        """Begin pulling jobs from the engine."""

    @abstractmethod
    def stop(self, timeout: float) -> bool:
        """Stop after the running jobs unwind; True when they did within ``timeout`` seconds."""

    @property
    @abstractmethod
    def alive(self) -> bool:
        """False if the executor stopped taking jobs before :meth:`stop` (a bug; health reports it)."""

    @abstractmethod
    def loaded_models(self) -> list[dict[str, Any]]:
        """The models loaded for jobs right now: ``{mode, loaded_at, last_used, in_use}`` each."""

    @abstractmethod
    def release_memory(self) -> list[str]:
        """Unload every model no job is using; the modes released."""

    def health(self) -> dict[str, Any]:
        """The executor's part of ``health``: ``kind`` and, for a cluster, its state."""
        return {"kind": "local"}


class LocalExecutor(Executor):
    """One worker thread: jobs run one after another on this machine's device."""

    def __init__(self, engine: JobEngine, device: Callable[[], Device]) -> None:
        self.engine = engine
        self.device = device
        self._thread = threading.Thread(target=self._work, name="vfx-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or self.engine.closing

    def loaded_models(self) -> list[dict[str, Any]]:
        return self.engine.registry.loaded()

    def release_memory(self) -> list[str]:
        return self.engine.registry.release()

    def _work(self) -> None:
        while (item := self.engine.next_job()) is not None:
            record, cancel = item
            log.info("job %s (%s) started", record.job_id, record.mode)
            try:
                state = run_job(self.engine, record, cancel, self.device)
            except Exception:  # the store or the disk failed while recording the outcome: keep serving
                log.exception("job %s could not be brought to a final state", record.job_id)
                state = self.engine.abandon(record.job_id)
            log.info("job %s %s", record.job_id, state)

    def stop(self, timeout: float) -> bool:
        self.engine.close()
        self.engine.interrupt_running()
        self._thread.join(timeout)
        return not self._thread.is_alive()
