"""The background thread that owns everything talking to the daemon: the only place network I/O happens.

The main thread uses :class:`Connection`'s public methods, which enqueue a request and return at once, and
:meth:`Connection.take_updates`, which the timer pump calls to collect what happened since its last call
(:class:`DaemonStatus`, :class:`JobUpdate`, :class:`JobProgress`, :class:`RequestFailed`, all plain data).
The :class:`~shared.client.Client` (not thread-safe), the :class:`DaemonProcess` and the preview files are
touched by the thread alone. Nothing here imports ``bpy``.
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ...shared.client import Client, CurveKeys
from ...shared.connection import CONNECTION_FILE_NAME, ConnectionInfo, read_connection_file
from ...shared.errors import NOT_FOUND, DaemonRestarted, DaemonUnavailable, RemoteError, VfxError
from ...shared.messages import JobView, ProgressEvent, StateEvent, read_event
from ...shared.wire import new_id
from . import remote_results
from .daemon_process import DaemonProcess
from .settings import DaemonSettings

POLL_S = 0.05
"""Longest wait for daemon events or main-thread requests in one loop: bounds the latency of both."""
HEALTH_EVERY_S = 2.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 1.0
"""How long a connection file found on disk gets to prove a live daemon behind it before one is started."""
CLIENT_ID = f"blender-{new_id()}"
"""This Blender's identity towards the daemon, shared by all its clients (the connection thread's and each live
session's): the daemon's per-client limits count one Blender as one client."""
PREVIEW_EVERY_S = 0.25
"""At most one preview file per job in this interval; the panel cannot show more anyway."""


@dataclass(frozen=True)
class DaemonStatus:
    """Where the daemon stands. ``state`` is stopped, starting, connected or error; ``message`` says why."""

    state: str
    message: str = ""
    health: Mapping[str, Any] | None = None
    pid: int | None = None
    owned: bool = False
    """True if this Blender session started the daemon (and so stops it when the add-on goes away)."""


@dataclass(frozen=True)
class JobUpdate:
    """The daemon's view of a job, from a reply or a state event."""

    job: JobView


@dataclass(frozen=True)
class JobProgress:
    """A progress event of a running job. ``preview_path`` is a JPEG written for it, or empty."""

    job_id: str
    fraction: float
    stage: str
    eta_s: float | None
    preview_path: str = ""


@dataclass(frozen=True)
class RequestFailed:
    """A request from the main thread did not succeed; ``message`` is for the user."""

    action: str
    message: str
    job_id: str = ""


Update = DaemonStatus | JobUpdate | JobProgress | RequestFailed
_Read = TypeVar("_Read")


def _well_formed(read: Callable[[Mapping[str, Any]], _Read], data: Mapping[str, Any]) -> _Read:
    """``read(data)``; a message the daemon got wrong becomes a :class:`VfxError` the panel shows."""
    try:
        return read(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise VfxError(f"the daemon sent a malformed message ({exc!r}): {dict(data)!r:.200}") from None


@dataclass
class _Request:
    action: str
    run: Callable[[], None]
    job_id: str = ""


@dataclass
class _Watch:
    """Jobs whose events this client wants, with the last state the main thread was told."""

    states: dict[str, str] = field(default_factory=dict)
    last_preview: dict[str, float] = field(default_factory=dict)


class Connection:
    """Owns the connection thread. Create, use and :meth:`close` it on the main thread."""

    def __init__(self, preview_dir: Path) -> None:
        self._preview_dir = preview_dir
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._updates: queue.SimpleQueue[Update] = queue.SimpleQueue()
        # Touched by the thread only:
        self._client: Client | None = None
        self._process: DaemonProcess | None = None
        self._start_deadline = 0.0
        self._next_health = 0.0
        self._watch = _Watch()
        self._adopted = False
        """True for a daemon another Blender started and left to finish its jobs, which this one took over:
        it is stopped (or left to finish again) when this Blender goes away, as if this one had started it."""
        self._keep_jobs_running = True
        self._client_key_file = ""
        self._downloads = remote_results.Downloads(Path())
        self._thread = threading.Thread(target=self._run, name="vfx-mocap-connection", daemon=True)
        self._thread.start()
        # Blender runs the add-on's unregister (and so close) when it quits; this covers Pythons that do not.
        atexit.register(self.close)

    # -- main thread ------------------------------------------------------------------------------------

    def start_daemon(self, settings: DaemonSettings) -> None:
        """Connect to a running daemon (connection file) or start one; no-op if connected or starting."""
        self._requests.put(_Request("start", partial(self._start, settings)))

    def stop_daemon(self) -> None:
        """Ask the daemon to shut down (ending the process if this session started it)."""
        self._requests.put(_Request("stop", self._stop))

    def restart_daemon(self, settings: DaemonSettings) -> None:
        self.stop_daemon()
        self.start_daemon(settings)

    def submit(self, job_id: str, mode: str, params: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> None:
        """Submit a job and follow its progress. ``inputs`` are plain input specs of the protocol."""
        self._requests.put(_Request("submit", partial(self._submit, job_id, mode, params, inputs), job_id))

    def cancel(self, job_id: str) -> None:
        self._requests.put(_Request("cancel", partial(self._cancel, job_id), job_id))

    def retry(self, job_id: str) -> None:
        self._requests.put(_Request("retry", partial(self._retry, job_id), job_id))

    def watch(self, job_ids: list[str]) -> None:
        """Fetch these jobs' records and follow them until they finish (e.g. after opening a file)."""
        self._requests.put(_Request("watch", partial(self._watch_ids, job_ids)))

    def take_updates(self) -> list[Update]:
        """Everything that happened since the last call, oldest first. Never blocks."""
        updates: list[Update] = []
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    def close(self, timeout: float = 2 * STOP_TIMEOUT_S + 5.0, keep_jobs_running: bool | None = None) -> None:
        """Stop the thread. A daemon this session started is stopped, or, with jobs queued or running and
        ``keep_jobs_running`` (the "Finish Jobs After Quitting" preference; default: its value at the last start),
        asked to stop once they are done; a foreign one is left running."""
        atexit.unregister(self.close)
        if keep_jobs_running is not None:
            self._requests.put(_Request("settings", partial(setattr, self, "_keep_jobs_running", keep_jobs_running)))
        self._requests.put(None)
        self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._serve_requests():
                self._check_process()
                if self._client is not None:
                    self._guarded(_Request("events", self._forward_events))
                if self._client is not None and time.monotonic() >= self._next_health:
                    self._guarded(_Request("health", self._check_health))
        except Exception as exc:  # a bug must show in the panel, not leave it waiting forever
            self._status("error", f"The connection thread stopped on an internal error: {exc!r}")
            raise
        finally:
            self._close_all()

    def _serve_requests(self) -> bool:
        """Run the queued requests; without a client, wait up to POLL_S for one. False once closing."""
        wait = self._client is None
        while True:
            try:
                request = self._requests.get(timeout=POLL_S) if wait else self._requests.get_nowait()
            except queue.Empty:
                return True
            if request is None:
                return False
            wait = False
            self._guarded(request)

    def _guarded(self, request: _Request) -> None:
        """Run a request; turn the errors it may raise into updates for the main thread."""
        try:
            try:
                request.run()
            except DaemonRestarted:
                self._resubscribe()  # a new daemon process behind the same connection file
                request.run()
        except DaemonUnavailable as exc:
            self._lost(exc.message)
            self._updates.put(RequestFailed(request.action, exc.message, request.job_id))
        except VfxError as exc:
            self._updates.put(RequestFailed(request.action, exc.message, request.job_id))
        except OSError as exc:
            self._updates.put(RequestFailed(request.action, f"{request.action} failed: {exc}", request.job_id))

    def _status(self, state: str, message: str = "", health: Mapping[str, Any] | None = None) -> None:
        process = self._process
        pid = process.pid if process is not None else None
        if pid is None and self._client is not None:
            pid = self._client.info.pid
        self._updates.put(DaemonStatus(state, message, health, pid, owned=process is not None or self._adopted))

    def _require_client(self) -> Client:
        if self._client is None:
            raise DaemonUnavailable("the daemon is not running: start it in the Motion Capture panel")
        return self._client

    # -- lifecycle ----------------------------------------------------------------------------------------

    def _start(self, settings: DaemonSettings) -> None:
        if self._client is not None or self._process is not None:
            return
        self._keep_jobs_running = settings.keep_jobs_running
        self._client_key_file = settings.client_key_file
        self._downloads.folder = settings.data_dir / remote_results.FOLDER
        if settings.connection_file:
            self._attach_or_fail(Path(settings.connection_file))
            return
        existing = settings.runtime_dir / CONNECTION_FILE_NAME
        if existing.is_file() and self._attach_quietly(existing):
            return
        if not settings.python:
            self._status(
                "error",
                "No daemon to start: press Set Up Daemon in Edit > Preferences > Add-ons > VFX Motion Capture "
                "(or set 'Daemon Python' or a connection file there)",
            )
            return
        try:
            self._process = DaemonProcess(
                settings.python, settings.runtime_dir, settings.data_dir, settings.device, settings.log_dir
            )
        except OSError as exc:
            self._status("error", f"Cannot run the daemon with {settings.python}: {exc}")
            return
        self._start_deadline = time.monotonic() + START_TIMEOUT_S
        self._status("starting", f"Starting the daemon on device '{settings.device}'")

    def _attach(self, connection_file: Path, probe: bool = False, adopt: bool = False) -> None:
        """Connect to the daemon behind ``connection_file`` and check it answers. Raises VfxError.

        With ``probe``, the first request gets a short timeout and no retry: the file may be stale. With
        ``adopt``, a daemon that a Blender which quit left to finish its jobs is kept running and owned.
        """
        info = read_connection_file(connection_file)
        client = Client(
            info,
            timeout=PROBE_TIMEOUT_S if probe else REQUEST_TIMEOUT_S,
            retries=0 if probe else 1,
            curve_keys=client_keys(self._client_key_file, info),
            connection_file=connection_file,
            client_id=CLIENT_ID,
        )
        try:
            health = client.health()
        except VfxError:
            client.close()
            raise
        client.timeout, client.retries = REQUEST_TIMEOUT_S, 1
        try:
            if adopt and health.get("exit_when_idle"):
                client.shutdown(when="cancel")
                health = client.health()
                self._adopted = True
                self._process = DaemonProcess.reclaim(int(health["pid"]))  # our child, if this Python started it
        except VfxError:
            client.close()  # it exited meanwhile: the caller starts a new one
            raise
        self._client = client
        self._next_health = time.monotonic() + HEALTH_EVERY_S
        self._status("connected", "", health)
        self._resubscribe()

    def _attach_or_fail(self, connection_file: Path) -> None:
        try:
            self._attach(connection_file)
        except VfxError as exc:
            self._status("error", f"Cannot reach the daemon of {connection_file}: {exc.message}")

    def _attach_quietly(self, connection_file: Path) -> bool:
        """Attach to a daemon someone else started, if it answers. A stale file (its daemon died without
        cleaning up) is not an error: a new daemon replaces it."""
        try:
            self._attach(connection_file, probe=True, adopt=True)
        except VfxError:
            return False
        return True

    def _check_process(self) -> None:
        """Notice a started daemon becoming ready, failing to start, or dying."""
        process = self._process
        if process is None:
            return
        if process.exit_code() is not None:
            message = process.failure_text()
            self._drop_client()
            self._process = None
            ready = process.ready_file()
            if ready is not None:
                ready.unlink(missing_ok=True)  # it died without cleaning up: the file is stale
            self._status("error", message)
            return
        if self._client is not None:
            return
        ready = process.ready_file()
        if ready is not None:
            try:
                self._attach(ready)
            except VfxError as exc:
                self._fail_start(f"The daemon started but does not answer: {exc.message}")
        elif time.monotonic() > self._start_deadline:
            self._fail_start(f"The daemon did not report ready within {START_TIMEOUT_S:g} s. {process.log_tail()}")

    def _fail_start(self, message: str) -> None:
        if self._process is not None:
            self._process.stop(STOP_TIMEOUT_S)
            self._process = None
        self._status("error", message)

    def _check_health(self) -> None:
        self._next_health = time.monotonic() + HEALTH_EVERY_S
        health = self._require_client().health()
        self._status("connected", "", health)
        self._poll_watched()

    def _lost(self, message: str) -> None:
        """The daemon stopped answering: forget the connection, end a process we started."""
        self._drop_client()
        self._adopted = False
        if self._process is not None:
            self._process.stop(STOP_TIMEOUT_S)
            self._process = None
        self._status("error", f"Lost the daemon: {message}")

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _stop(self, asked: bool = False) -> None:
        """Stop the daemon (``asked``: it already answered a shutdown with "now") and end a process we started."""
        client, process = self._client, self._process
        self._client = self._process = None
        self._adopted = False
        if client is not None and asked:
            client.close()
        elif client is not None:
            try:
                client.shutdown()
            except VfxError as exc:
                if process is None:
                    self._updates.put(RequestFailed("stop", f"Could not stop the daemon: {exc.message}"))
            finally:
                client.close()
        if process is not None:
            process.wait(STOP_TIMEOUT_S if client is not None else 0.0)
            process.stop(STOP_TIMEOUT_S)
        self._status("stopped")

    def _close_all(self) -> None:
        self._downloads.close()
        if self._process is None and not self._adopted:
            self._drop_client()  # a daemon started elsewhere: not ours to stop
            return
        when = ""
        if self._keep_jobs_running and self._client is not None:
            try:
                when = self._client.shutdown(when="idle")  # the daemon knows best whether work is left
            except VfxError:
                when = ""  # no answer: stopped the hard way
        if when == "idle":
            self._leave_running()
        else:
            self._stop(asked=when == "now")

    def _leave_running(self) -> None:
        """Let go of a daemon that stops once its jobs are done (Blender is going away)."""
        process = self._process
        self._drop_client()
        self._process = None
        self._adopted = False
        if process is not None:
            process.leave_running()
        self._status("stopped", "The daemon finishes its jobs, then exits")

    # -- jobs ---------------------------------------------------------------------------------------------

    def _follow(self, wire_job: Mapping[str, Any] | JobView) -> None:
        """Tell the main thread about a job; keep following it until it is final. A succeeded job of a daemon
        on another machine is told once its results are copied here (see :mod:`.remote_results`)."""
        job = wire_job if isinstance(wire_job, JobView) else _well_formed(JobView.from_wire, wire_job)
        if job.state == "succeeded" and not self._downloads.readable_here(job.job_id, job.output_dir):
            self._download(job)  # told once the copy is complete
            return
        if job.is_final:
            self._watch.states.pop(job.job_id, None)
            self._watch.last_preview.pop(job.job_id, None)
        else:
            self._watch.states[job.job_id] = job.state
        self._updates.put(JobUpdate(job))

    def _submit(self, job_id: str, mode: str, params: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> None:
        self._follow(self._require_client().submit(job_id, mode, params, inputs, subscribe=True))

    def _cancel(self, job_id: str) -> None:
        self._follow(self._require_client().cancel(job_id))

    def _retry(self, job_id: str) -> None:
        client = self._require_client()
        client.retry(job_id)
        self._follow(client.subscribe(job_id))

    def _download(self, job: JobView) -> None:
        """Copy a succeeded job's results from the daemon on a thread of its own, showing the copy as the job's
        last stage; the job is followed again, with the copy as its folder, once it is complete."""

        def progress(fraction: float) -> None:
            self._updates.put(JobProgress(job.job_id, fraction, "downloading results", None))

        def done(copy: Path) -> None:
            self._requests.put(_Request("download", partial(self._follow, replace(job, output_dir=str(copy)))))

        def failed(message: str) -> None:
            self._updates.put(
                RequestFailed("download", f"Copying the results of job {job.job_id[:8]}: {message}", job.job_id)
            )

        client = self._require_client()
        timeout, keys = remote_results.REQUEST_TIMEOUT_S, client.curve_keys
        connect = partial(Client, client.info, timeout=timeout, curve_keys=keys, client_id=CLIENT_ID)
        self._downloads.start(remote_results.Copy(job.job_id, job.frame_count, connect, progress, done, failed))

    def _watch_ids(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self._watch.states.setdefault(job_id, "")
        if self._client is not None:
            self._resubscribe()

    def _resubscribe(self) -> None:
        """Subscribe again to every followed job (after connecting, or when the daemon restarted)."""
        client = self._require_client()
        for job_id in list(self._watch.states):
            job = self._fetch_followed(job_id, client.subscribe)
            if job is not None:
                self._follow(job)

    def _poll_watched(self) -> None:
        """Fallback for lost events: re-read followed jobs whose state may have changed unseen."""
        client = self._require_client()
        for job_id, known in list(self._watch.states.items()):
            job = self._fetch_followed(job_id, client.job)
            if job is not None and job.get("state") != known:
                self._follow(job)

    def _fetch_followed(self, job_id: str, fetch: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
        """``fetch(job_id)``; a job this daemon does not know is dropped with one message, not followed."""
        try:
            return fetch(job_id)
        except RemoteError as exc:
            if exc.code != NOT_FOUND:
                raise
            self._watch.states.pop(job_id, None)
            self._updates.put(RequestFailed("watch", f"The daemon has no job {job_id}: {exc.message}", job_id))
            return None

    def _forward_events(self) -> None:
        client = self._require_client()
        for data in client.poll_events(timeout=POLL_S):
            event = _well_formed(read_event, data)
            if not isinstance(event, ProgressEvent | StateEvent) or event.job_id not in self._watch.states:
                continue
            if isinstance(event, ProgressEvent):
                preview = self._write_preview(event.job_id, event.preview_jpeg)
                self._updates.put(JobProgress(event.job_id, event.fraction, event.stage, event.eta_s, preview))
            else:
                self._follow(event.job)  # the event carries the job: no request to read it again

    def _write_preview(self, job_id: str, jpeg: bytes | None) -> str:
        """Write a preview JPEG for the panel (atomically, throttled per job); its path, or ''."""
        now = time.monotonic()
        if not jpeg or now - self._watch.last_preview.get(job_id, 0.0) < PREVIEW_EVERY_S:
            return ""
        self._watch.last_preview[job_id] = now
        path = self._preview_dir / f"{job_id}.jpg"
        partial_path = path.with_suffix(".part")
        partial_path.write_bytes(jpeg)
        partial_path.replace(path)
        return str(path)


def client_keys(key_file: str, daemon: ConnectionInfo) -> CurveKeys | None:
    """The CURVE key pair of the **Client Key File** preference for a ``daemon`` that takes only encrypted
    connections; None for any other daemon (the preference is not even read). Raises VfxError naming the
    preference when the file is unusable, or when ``daemon`` needs one and none is set."""
    if not daemon.server_public_key:
        return None
    if not key_file:
        raise VfxError(
            "this daemon only takes encrypted connections: make a key pair with `python -m daemon keygen "
            "KEYFILE`, add its public key to the daemon's --authorized-keys file, and set Client Key File in "
            "the add-on's preferences to KEYFILE"
        )
    try:
        return CurveKeys.load(key_file)
    except OSError as exc:
        raise VfxError(f"Client Key File {key_file}: {exc.strerror or exc}") from None
    except VfxError as exc:
        raise VfxError(f"Client Key File: {exc.message}") from None
