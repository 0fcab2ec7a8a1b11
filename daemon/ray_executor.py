"""The Ray executor: the daemon stays the front door (protocol, job store, events) and jobs run on a Ray cluster.

This module imports nothing of Ray. It starts :mod:`daemon.ray_bridge` (the Ray driver) as a child process and
talks to it over a socket pair: a cluster that goes away ends the bridge, never the daemon. Two threads:

- the link thread starts the bridge, waits for it to connect (``connect_timeout_s``), turns its messages into
  job progress, events and final states, passes cancel requests on, and when the bridge ends (cluster gone,
  unreachable) settles the jobs it held and starts a new bridge ``retry_s`` later;
- the dispatch thread takes the next queued job only while the cluster is connected and the bridge has no job
  still waiting for a worker, so queued jobs wait in the engine's queue while the cluster is away.

A job whose work never started on a worker goes back to the queue when the bridge is lost; a job whose work
started ends ``interrupted`` (retry it), the same rule as a daemon that dies mid-job: a job never runs twice.
Outputs reach the job's ``work/`` folder through the bridge and are published as local jobs' are.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from models.runner import Runner
from shared import errors as e

from .engine import JobEngine
from .executor import Executor, emit_progress
from .ray_resources import ResourceRequest
from .store import JobRecord

log = logging.getLogger("daemon.ray")

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RaySettings:
    """``address``: ``host:port`` of the cluster's head, or ``auto`` (a Ray node on this machine)."""

    address: str
    requests: dict[str, ResourceRequest]
    models_dir: Path
    """The weights folder on the workers (the same path on every worker)."""
    device: str = "auto"
    shared_dir: Path | None = None
    """A folder mounted at the same path on the daemon's machine and every worker: inputs under it travel as
    paths instead of through the object store."""
    plugins: list[str] = field(default_factory=list)
    idle_unload_s: float = 600.0
    connect_timeout_s: float = 30.0
    retry_s: float = 5.0
    cancel_grace_s: float = 5.0
    """A cancelled job whose runner has not stopped after this many seconds has its actor ended."""


@dataclass
class _Job:
    record: JobRecord
    cancel: threading.Event
    work: Path
    started: bool = False
    node: str | None = None
    cancel_sent: bool = False


class RayExecutor(Executor):
    def __init__(
        self, engine: JobEngine, settings: RaySettings, runners: dict[str, type[Runner]], release_local: Any
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.runners = {mode: f"{cls.__module__}:{cls.__qualname__}" for mode, cls in runners.items()}
        self.release_local = release_local
        self._lock = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._waiting_for_worker: str | None = None
        self._status = "connecting"
        self._error: str | None = None
        self._since = time.time()
        self._snapshot: dict[str, Any] = {}
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._released: list[str] | None = None
        self._stopping = threading.Event()
        self._link = threading.Thread(target=self._keep_linked, name="vfx-ray-link", daemon=True)
        self._dispatch = threading.Thread(target=self._dispatch_jobs, name="vfx-ray-dispatch", daemon=True)

    # -- Executor --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._link.start()
        self._dispatch.start()

    @property
    def alive(self) -> bool:
        return (self._link.is_alive() and self._dispatch.is_alive()) or self.engine.closing

    def loaded_models(self) -> list[dict[str, Any]]:
        with self._lock:
            actors = list(self._snapshot.get("actors", []))
        return [
            {
                "mode": a["mode"],
                "loaded_at": a["loaded_at"],
                "last_used": a["last_used"],
                "in_use": a["job_id"] is not None,
                "node": a["node_ip"],
            }
            for a in actors
            if a["loaded"]
        ]

    def release_memory(self) -> list[str]:
        """Models of live sessions on this machine, and every idle actor of the cluster."""
        released = self.release_local()
        with self._lock:
            self._released = None
        if self._send({"op": "release"}):
            with self._lock:
                self._lock.wait_for(lambda: self._released is not None, timeout=10.0)
                released += self._released or []
        return sorted(set(released))

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "kind": "ray",
                "address": self.settings.address,
                "status": self._status,
                "error": self._error,
                "since": self._since,
                "shared_dir": str(self.settings.shared_dir) if self.settings.shared_dir else None,
                **self._snapshot,
            }

    def stop(self, timeout: float) -> bool:
        self._stopping.set()
        self.engine.close()
        self.engine.interrupt_running()
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.wait_for(lambda: not self._jobs, timeout=max(0.0, deadline - time.monotonic()))
            drained = not self._jobs
        self._send({"op": "stop"})
        self._end_bridge(wait_s=5.0)
        self._link.join(5.0)
        self._dispatch.join(5.0)
        return drained

    # -- the bridge process ----------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> bool:
        with self._send_lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(message)
                return True
            except (OSError, ValueError):
                return False

    def _set_status(self, status: str, error: str | None) -> None:
        with self._lock:
            if (status, error) != (self._status, self._error):
                self._since = time.time()
                if error:
                    log.error("ray cluster %s: %s", self.settings.address, error)
                else:
                    log.info("ray cluster %s: %s", self.settings.address, status)
            self._status, self._error = status, error
            if status != "connected":
                self._snapshot = {}
            self._lock.notify_all()

    def _spawn(self) -> Connection:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), *sys.path) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.ray_bridge", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,  # Ray's messages go to the daemon's log, never to the ready line's stdout
            env=env,
        )
        theirs.close()
        conn = Connection(ours.detach())
        s = self.settings
        conn.send(
            {
                "address": s.address,
                "requests": {mode: request.describe() for mode, request in s.requests.items()},
                "models_dir": str(s.models_dir),
                "device": s.device,
                "shared_dir": str(s.shared_dir) if s.shared_dir else None,
                "code": ["daemon", "models", "shared", *s.plugins],
                "idle_unload_s": s.idle_unload_s,
                "cancel_grace_s": s.cancel_grace_s,
            }
        )
        return conn

    def _end_bridge(self, wait_s: float) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _keep_linked(self) -> None:
        while not self._stopping.is_set():
            self._set_status("connecting", self._error)
            conn = self._spawn()
            reason = self._await_connected(conn)
            if reason is None:
                with self._send_lock:
                    self._conn = conn
                reason = self._pump(conn)
            else:
                conn.close()
            self._set_status("unreachable", reason)
            self._settle_all(reason)
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
            self._end_bridge(wait_s=5.0)
            self._stopping.wait(self.settings.retry_s)

    def _await_connected(self, conn: Connection) -> str | None:
        """None once the bridge is connected; otherwise why it is not."""
        deadline = time.monotonic() + self.settings.connect_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if not conn.poll(0.1):
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return f"the Ray bridge process ended while connecting to {self.settings.address} (see daemon.log)"
            if message["op"] == "connected":
                with self._lock:
                    self._snapshot = message["snapshot"]
                self._set_status("connected", None)
                return None
            if message["op"] == "lost":
                return str(message["message"])
        if self._stopping.is_set():
            return "the daemon is stopping"
        return (
            f"could not connect to the Ray cluster at {self.settings.address} within "
            f"{self.settings.connect_timeout_s:.0f} s: is its head node running and reachable from this machine?"
        )

    def _pump(self, conn: Connection) -> str:
        """Handle the bridge's messages until it ends; returns why it ended."""
        reason = f"the connection to the Ray cluster at {self.settings.address} was lost"
        while True:
            self._pass_cancels()
            try:
                if not conn.poll(0.1):
                    continue
                message = conn.recv()
            except (EOFError, OSError):
                return reason
            if message["op"] == "lost":
                reason = str(message["message"])
                continue
            try:
                self._handle(message)
            except Exception:  # the store or the disk failed while recording an outcome: keep the link
                log.exception("could not handle the bridge's %s message", message.get("op"))
                job_id = message.get("job_id")
                if message["op"] == "done" and job_id:
                    with self._lock:
                        self._jobs.pop(job_id, None)
                        self._lock.notify_all()
                    self.engine.abandon(job_id)

    def _pass_cancels(self) -> None:
        with self._lock:
            asked = [job for job in self._jobs.values() if job.cancel.is_set() and not job.cancel_sent]
            for job in asked:
                job.cancel_sent = True
        for job in asked:
            self.engine.update_progress(job.record.job_id, stage="cancelling")
            self._send({"op": "cancel", "job_id": job.record.job_id})

    def _handle(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if "actors" in message:  # started and done carry the actors' latest state, ahead of the next snapshot
            with self._lock:
                if self._snapshot:
                    self._snapshot["actors"] = message["actors"]
        if op == "cluster":
            with self._lock:
                self._snapshot = message["snapshot"]
        elif op == "released":
            with self._lock:
                self._released = list(message["modes"])
                self._lock.notify_all()
        elif op == "started":
            with self._lock:
                job = self._jobs[message["job_id"]]
                job.started, job.node = True, message["node"]
                if self._waiting_for_worker == message["job_id"]:
                    self._waiting_for_worker = None
                self._lock.notify_all()
            log.info("job %s started on node %s", message["job_id"], message["node"])
        elif op == "progress":
            emit_progress(
                self.engine, message["job_id"], message["fraction"], message["stage"], message.get("preview_jpeg")
            )
        elif op == "log":
            log.info("job %s: %s", message["job_id"], message["message"])
            self.engine.emit({"type": "log", "job_id": message["job_id"], "message": message["message"]})
        elif op == "done":
            with self._lock:
                job = self._jobs[message["job_id"]]
            self._finish(job, message)
            with self._lock:
                self._jobs.pop(job.record.job_id, None)
                if self._waiting_for_worker == job.record.job_id:
                    self._waiting_for_worker = None
                self._lock.notify_all()

    def _finish(self, job: _Job, message: dict[str, Any]) -> None:
        """Bring a job the bridge has ended to its final state (``lost``: its worker died)."""
        job_id, state = job.record.job_id, message["state"]
        if state == "succeeded":
            self.engine.folders.publish(job_id, job.work, message["summary"], message["arrays"])
            self.engine.finish(job_id, "succeeded", summary=message["summary"], frame_count=message["frame_count"])
        elif state == "failed":
            self.engine.folders.discard_work(job_id)
            self.engine.finish(job_id, "failed", error=message["error"])
        elif state == "cancelled":
            self._settle_stopped(job)
        else:
            self.engine.folders.discard_work(job_id)
            self.engine.finish(job_id, "interrupted", error=message["error"])
        log.info("job %s %s", job_id, "interrupted" if state == "lost" else state)

    def _settle_stopped(self, job: _Job) -> None:
        """A job stopped by a cancel or by the daemon stopping."""
        job_id = job.record.job_id
        self.engine.folders.discard_work(job_id)
        if not self.engine.closing:
            self.engine.finish(job_id, "cancelled")
        elif not job.started:
            self.engine.requeue(job_id)  # never ran: the next start runs it
        else:
            self.engine.finish(
                job_id,
                "interrupted",
                error={
                    "code": e.INTERRUPTED,
                    "message": "the daemon shut down while this job ran; retry it",
                    "detail": None,
                },
            )

    def _settle_all(self, reason: str) -> None:
        """The bridge is gone: jobs that never started go back to the queue, the others are interrupted."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
            self._waiting_for_worker = None
            self._lock.notify_all()
        for job in jobs:
            job_id = job.record.job_id
            try:
                if job.cancel.is_set():
                    self._settle_stopped(job)
                elif not job.started:
                    self.engine.folders.discard_work(job_id)
                    self.engine.requeue(job_id)
                    log.info("job %s back in the queue: %s", job_id, reason)
                else:
                    self.engine.folders.discard_work(job_id)
                    self.engine.finish(
                        job_id,
                        "interrupted",
                        error={
                            "code": e.INTERRUPTED,
                            "message": f"{reason} while this job ran on {job.node}; retry it",
                            "detail": None,
                        },
                    )
            except Exception:
                log.exception("job %s could not be settled", job_id)
                self.engine.abandon(job_id)

    # -- dispatch ------------------------------------------------------------------------------------------

    def _ready_for_a_job(self) -> bool:
        return self._status == "connected" and self._waiting_for_worker is None

    def _dispatch_jobs(self) -> None:
        while not self.engine.closing:
            with self._lock:
                if not self._lock.wait_for(self._ready_for_a_job, timeout=0.5):
                    continue
            item = self.engine.next_job(timeout=0.5)
            if item is None:
                continue
            record, cancel = item
            try:
                self._hand_over(record, cancel)
            except Exception:  # the disk failed preparing the job's folder
                log.exception("job %s could not be handed to the cluster", record.job_id)
                self.engine.abandon(record.job_id)

    def _hand_over(self, record: JobRecord, cancel: threading.Event) -> None:
        job = _Job(record, cancel, self.engine.folders.fresh_work_dir(record.job_id))
        with self._lock:
            if self._status != "connected":  # lost since we looked: it waits for the next connection
                self.engine.folders.discard_work(record.job_id)
                self.engine.requeue(record.job_id)
                return
            self._jobs[record.job_id] = job
            self._waiting_for_worker = record.job_id
        inputs = {name: self._portable(spec) for name, spec in record.inputs.items()}
        log.info("job %s (%s) handed to the cluster", record.job_id, record.mode)
        self._send(
            {
                "op": "run",
                "job_id": record.job_id,
                "mode": record.mode,
                "runner": self.runners[record.mode],
                "params": record.params,
                "inputs": inputs,
                "work_dir": str(job.work),
            }
        )  # if this fails the bridge is gone, and the link thread puts the job back in the queue

    def _portable(self, spec: dict[str, Any]) -> dict[str, Any]:
        """An input spec the bridge can read: an uploaded blob becomes the file it is stored in."""
        if "blob" in spec:
            rest = {k: v for k, v in spec.items() if k != "blob"}
            return {**rest, "blob_path": str(self.engine.blobs.path(spec["blob"]))}
        return dict(spec)
