"""The Ray actor that runs one mode's jobs on a cluster worker, keeping the model loaded between jobs.

Runs on a worker machine, which has the daemon's Python packages (shipped by Ray with each job) and the
mode's weights, but not the artist's files: a job's inputs arrive as values from Ray's object store (or as
paths on a drive every machine shares), are written to a private temporary folder, and are opened with the
same parser local jobs use. The outputs go back as bytes; the temporary folder is removed after every job.

Thread contract: the actor runs with several threads so that :meth:`poll` and :meth:`cancel` are answered
while :meth:`run` computes; the daemon's bridge never sends two ``run`` calls to one actor at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from models.catalog import import_runner
from models.media import open_media
from models.runner import JobCancelled, Media

from .devices import resolve_device
from .executor import ProgressThrottle, job_error


class RemoteContext:
    """The :class:`models.runner.RunContext` of a job on a worker: throttled progress and logs are kept for
    the bridge to collect with :meth:`RunnerHost.poll`."""

    def __init__(self, output_dir: Path, device: Any, cancel: threading.Event) -> None:
        self.output_dir = output_dir
        self.device = device
        self._cancel = cancel
        self._throttle = ProgressThrottle()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def progress(self, fraction: float, stage: str, preview: np.ndarray | None = None) -> None:
        send, jpeg = self._throttle.admit(fraction, stage, preview)
        if send:
            with self._lock:
                self._events.append({"op": "progress", "fraction": fraction, "stage": stage, "preview_jpeg": jpeg})

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def log(self, message: str) -> None:
        with self._lock:
            self._events.append({"op": "log", "message": message})

    def take_events(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self._events = self._events, []
        return events


def materialize(folder: Path, specs: dict[str, Any], payloads: tuple[Any, ...]) -> dict[str, Media]:
    """Open a job's inputs from what the bridge sent: file bytes are written under ``folder`` and opened from
    there, arrays are used as they are, paths on the shared drive are opened in place."""
    media: dict[str, Media] = {}
    for name, spec in specs.items():
        local = {k: v for k, v in spec.items() if k not in ("file", "files", "names", "array")}
        if "file" in spec:
            target = folder / name / spec["names"][0]
            target.parent.mkdir(parents=True)
            target.write_bytes(payloads[spec["file"]])
            local["path"] = str(target)
        elif "files" in spec:
            (folder / name).mkdir(parents=True)
            local["paths"] = []
            for file_name, data in zip(spec["names"], payloads[spec["files"]], strict=True):
                (folder / name / file_name).write_bytes(data)
                local["paths"].append(str(folder / name / file_name))
        elif "array" in spec:
            local["array"] = payloads[spec["array"]]
        media[name] = open_media(name, local)
    return media


class RunnerHost:
    """One mode's runner on one worker. Loads the model on its first job and keeps it until the daemon's
    bridge ends the actor (idle, memory released, or the daemon stopping)."""

    def __init__(self, mode: str, runner: str, models_dir: str, device: str) -> None:
        self.mode = mode
        self.runner = import_runner(runner)()
        self.runner.models_dir = Path(models_dir)
        self.device_choice = device
        self.device: Any = None
        self.loads = 0
        self.jobs = 0
        self._contexts: dict[str, RemoteContext] = {}
        self._cancels: dict[str, threading.Event] = {}

    def describe(self) -> dict[str, Any]:
        """Where the actor runs and what it did: node id and address, process id, model loads and jobs run."""
        import ray

        return {
            "mode": self.mode,
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
            "loaded": self.device is not None,
            "loads": self.loads,
            "jobs": self.jobs,
        }

    def run(self, job_id: str, params: dict[str, Any], specs: dict[str, Any], *payloads: Any) -> dict[str, Any]:
        """Run one job to its end. Returns ``{"state": "succeeded", summary, arrays, frame_count, files}``
        (``files``: relative path -> bytes of everything the runner wrote), ``{"state": "cancelled"}`` or
        ``{"state": "failed", "error": wire error}``. Never raises for the job's own failure."""
        cancel = self._cancels.setdefault(job_id, threading.Event())
        folder = Path(tempfile.mkdtemp(prefix=f"vfx-{job_id}-"))
        output_dir = folder / "outputs"
        output_dir.mkdir()
        ctx = RemoteContext(output_dir, self.device, cancel)
        self._contexts[job_id] = ctx
        self.jobs += 1
        try:
            if self.device is None:
                ctx.progress(0.0, "loading model")
                device = resolve_device(self.device_choice)
                self.runner.load(device)
                self.device, ctx.device = device, device
                self.loads += 1
            inputs = materialize(folder / "inputs", specs, payloads)
            ctx.progress(0.0, "starting")
            result = self.runner.run(inputs, params, ctx)
            ctx.raise_if_cancelled()
            files = {
                str(path.relative_to(output_dir)): path.read_bytes()
                for path in sorted(output_dir.rglob("*"))
                if path.is_file() and not path.name.endswith(".tmp")
            }
            return {
                "state": "succeeded",
                "summary": result.summary,
                "arrays": result.arrays,
                "frame_count": result.frame_count,
                "files": files,
            }
        except JobCancelled:
            return {"state": "cancelled"}
        except Exception as exc:  # the job fails; the actor and its loaded model live on
            return {"state": "failed", "error": job_error(exc)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._cancels.pop(job_id, None)

    def poll(self, job_id: str) -> list[dict[str, Any]]:
        """Progress and log events of ``job_id`` since the last poll (empty once it ended)."""
        ctx = self._contexts.get(job_id)
        if ctx is None:
            return []
        events = ctx.take_events()
        if job_id not in self._cancels:  # ended: nothing more will come
            self._contexts.pop(job_id, None)
        return events

    def cancel(self, job_id: str) -> None:
        """Ask the running job to stop at its next cancel check."""
        flag = self._cancels.get(job_id)
        if flag is not None:
            flag.set()
