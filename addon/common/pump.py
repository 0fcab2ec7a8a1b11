"""The one ``bpy.app.timers`` pump: applies what the connection thread reports, on the main thread, and drives
every other main-thread ticker (live view, live pose, pose-to-armature tasks).

Each tick drains the thread's updates without waiting, coalesces progress to the latest per job, writes it
into the scenes' job lists, inserts finished results (when the scene asks for it), runs the callbacks waiting
for a job to finish (:func:`when_job_final`) and redraws the panels only when something changed. Then it calls
each ticker started with :func:`start_ticker` and sleeps for the shortest interval any of them asked for (a
ticker returning None is done). An idle tick costs a queue check; a busy one is proportional to the jobs
that changed, not to the number of events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import bpy
from bpy.app.handlers import persistent

from ..bridge.connection_thread import DaemonStatus, JobProgress, JobUpdate, RequestFailed, Update
from . import runtime, strips
from .errors import UserError
from .properties import MocapJob

INTERVAL_S = 0.1
REDRAW_SPACES = frozenset({"SEQUENCE_EDITOR", "VIEW_3D"})
LOSING_ACTIONS = frozenset({"submit", "watch"})
"""Failed requests after which the daemon has no such job: the job is marked failed, with the reason."""


Ticker = Callable[[], float | None]
"""Main-thread work called by every tick: returns the seconds until it wants the next call, or None when done.
Must not raise (it reports its own errors); one that does is stopped, with the error in the panel."""

_tickers: list[Ticker] = []
_when_final: dict[str, list[Callable[[], None]]] = {}


def start_ticker(ticker: Ticker) -> None:
    """Call ``ticker`` from the next tick on, until it returns None or :func:`stop_ticker`."""
    if ticker not in _tickers:
        _tickers.append(ticker)


def stop_ticker(ticker: Ticker) -> None:
    if ticker in _tickers:
        _tickers.remove(ticker)


def when_job_final(job_id: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the main thread once job ``job_id`` reaches a final state (succeeded, failed,
    cancelled, interrupted, or lost by the daemon); at once if a scene already holds it final."""
    if any(job.is_final for _scene, job in jobs_with_id(job_id)):
        callback()
        return
    _when_final.setdefault(job_id, []).append(callback)


def forget_waiting() -> None:
    """Drop every ticker and job-finished callback (the add-on is going away)."""
    _tickers.clear()
    _when_final.clear()


def tick() -> float:
    """Timer callback: apply pending updates, run the tickers; returns the delay until the next tick (seconds).

    Never raises: Blender drops a timer whose callback raises, and the panel would silently stop updating."""
    updates = runtime.get().connection.take_updates()
    if updates:
        apply_updates(updates)
        redraw_panels()
    interval = INTERVAL_S
    for ticker in list(_tickers):
        try:
            wanted = ticker()
        except Exception as exc:
            runtime.report_internal_error(f"The main-thread task {getattr(ticker, '__module__', ticker)}", exc)
            wanted = None
        if wanted is None:
            stop_ticker(ticker)
        else:
            interval = min(interval, wanted)
    return interval


def _job_final(job_id: str) -> None:
    for callback in _when_final.pop(job_id, []):
        try:
            callback()
        except Exception as exc:
            runtime.report_internal_error(f"What waited for job {job_id[:8]} to finish", exc)


def apply_updates(updates: list[Update]) -> None:
    """Apply the connection thread's updates, oldest first, to the runtime state and the scenes' jobs. An
    update that cannot be applied is reported in the panel (and its traceback printed); the rest still are."""
    progress: dict[str, JobProgress] = {}
    for update in updates:
        try:
            _apply(update, progress)
        except Exception as exc:
            runtime.report_internal_error(f"Applying a {type(update).__name__} from the daemon", exc)
    for update in progress.values():
        try:
            _apply_progress(update)
        except Exception as exc:
            runtime.report_internal_error("Applying a job's progress", exc)


def _apply(update: Update, progress: dict[str, JobProgress]) -> None:
    """Apply one update; progress is only collected into ``progress`` (the latest per job is applied)."""
    rt = runtime.get()
    if isinstance(update, DaemonStatus):
        _apply_status(update)
    elif isinstance(update, JobUpdate):
        progress.pop(update.job.job_id, None)
        for scene, job in jobs_with_id(update.job.job_id):
            was = job.state
            job.apply_view(update.job)
            if job.state == "succeeded":
                _auto_insert(scene, job)
            elif job.state == "failed" and was != "failed":
                rt.last_error = f"{job.mode} job {job.name[:8]} failed: {job.error}"
        if update.job.is_final:
            _job_final(update.job.job_id)
    elif isinstance(update, JobProgress):
        previous = progress.get(update.job_id)
        if previous is not None and previous.preview_path and not update.preview_path:
            update = JobProgress(update.job_id, update.fraction, update.stage, update.eta_s, previous.preview_path)
        progress[update.job_id] = update
    elif isinstance(update, RequestFailed):
        rt.last_error = update.message
        for _scene, job in jobs_with_id(update.job_id):
            job.error = update.message
            job.stage = ""
            if update.action in LOSING_ACTIONS:
                job.state = "failed"
            if update.action == "submit":
                job.refused_at_submit = True
        if update.action in LOSING_ACTIONS:
            _job_final(update.job_id)


def jobs_with_id(job_id: str) -> Iterator[tuple[bpy.types.Scene, MocapJob]]:
    """Every (scene, job item) for ``job_id`` in the open file (normally one)."""
    if not job_id:
        return
    for scene in bpy.data.scenes:
        job = scene.vfx_mocap.jobs.get(job_id)
        if job is not None:
            yield scene, job


def unfinished_job_ids() -> list[str]:
    """Ids of the open file's jobs that may still change."""
    return [job.name for scene in bpy.data.scenes for job in scene.vfx_mocap.jobs if not job.is_final]


def _apply_status(status: DaemonStatus) -> None:
    rt = runtime.get()
    was_connected = rt.status.state == "connected"
    rt.status = status
    if status.state == "connected" and not was_connected:
        for scene in bpy.data.scenes:
            scene.vfx_mocap.sync_params(rt.modes)
        rt.connection.watch(unfinished_job_ids())


def _apply_progress(update: JobProgress) -> None:
    for _scene, job in jobs_with_id(update.job_id):
        if job.is_final:
            continue
        job.state = "running"
        job.fraction = update.fraction
        job.stage = update.stage
        job.eta_s = update.eta_s if update.eta_s is not None else -1.0
    if update.preview_path:
        runtime.get().set_preview(update.job_id, update.preview_path)


def _auto_insert(scene: bpy.types.Scene, job: MocapJob) -> None:
    """Insert a finished job's frames, if the scene asks for it. Jobs that made no frames (a pose job whose
    landmarks are baked onto an armature) have nothing to insert and are left alone."""
    if not scene.vfx_mocap.auto_insert or job.result_strip or job.frame_count == 0:
        return
    try:
        strips.insert_result_strip(scene, job)
    except UserError as exc:
        job.error = str(exc)
        runtime.get().last_error = str(exc)


def redraw_panels() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in REDRAW_SPACES:
                area.tag_redraw()


@persistent
def resync_jobs(*_args: object) -> None:
    """``load_post`` / ``undo_post`` / ``redo_post`` handler: the job list was just replaced (another file,
    or an older state of this one), so follow its unfinished jobs again and fill in mode options."""
    rt = runtime.get()
    if rt.status.state == "connected":
        for scene in bpy.data.scenes:
            scene.vfx_mocap.sync_params(rt.modes)
    rt.connection.watch(unfinished_job_ids())


RESYNC_HANDLERS = ("load_post", "undo_post", "redo_post")
"""The ``bpy.app.handlers`` lists :func:`resync_jobs` is registered in."""
