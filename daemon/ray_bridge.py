"""The Ray driver: a process of its own between the daemon and a Ray cluster (``python -m daemon.ray_bridge FD``).

Ray ends a driver whose cluster has gone away, and a driver call can block for a minute when the cluster does
not answer; so the daemon never imports Ray and talks to this process over a socket pair (FD) instead. If the
cluster goes away this process says so and exits; the daemon notices, reports it and starts a new one later.

Messages are dicts sent with :class:`multiprocessing.connection.Connection`. From the daemon: the settings
first, then ``run``, ``cancel``, ``release`` and ``stop``. To the daemon: ``connected``, ``cluster`` (a snapshot
every second), ``started``, ``progress``, ``log``, ``done``, ``released`` and ``lost``.

Jobs run on :class:`daemon.ray_actor.RunnerHost` actors, one mode each, kept while jobs of that mode keep
coming (a job goes to a free actor of its mode; otherwise a new one starts where the cluster has room, idle
actors of other modes giving way) and ended after ``idle_unload_s`` without work. Actors are owned by this
process: they end with it. Nothing is retried by Ray (``max_restarts=0``): a lost actor fails its job once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from shared import errors as e

from .executor import job_error
from .ray_resources import ResourceRequest, request_for

log = logging.getLogger("daemon.ray_bridge")

SNAPSHOT_INTERVAL_S = 1.0
CLUSTER_ANSWER_S = 5.0
"""A cluster that does not answer a status call within this many seconds is reported gone."""
POLL_INTERVAL_S = 0.1


class Infeasible(Exception):
    """No node of the cluster could ever host the actor a mode asks for."""


@dataclass
class Actor:
    mode: str
    handle: Any
    request: ResourceRequest
    info: dict[str, Any]
    busy: str | None = None
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    def view(self) -> dict[str, Any]:
        return {**self.info, "job_id": self.busy, "loaded_at": self.loaded_at, "last_used": self.last_used}


class Bridge:
    def __init__(self, conn: Connection, settings: dict[str, Any]) -> None:
        self.conn = conn
        self.settings = settings
        self.requests: dict[str, ResourceRequest] = {
            mode: ResourceRequest(**value) for mode, value in settings["requests"].items()
        }
        self.shared_dir = Path(settings["shared_dir"]) if settings.get("shared_dir") else None
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._actors: list[Actor] = []
        self._cancels: dict[str, threading.Event] = {}
        self._host: Any = None

    def send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def done(self, job_id: str, state: str, started: bool, **outcome: Any) -> None:
        """Tell the daemon how a job ended, with the actors' state after it."""
        self.send(
            {
                "op": "done",
                "job_id": job_id,
                "state": state,
                "started": started,
                "actors": self.actor_views(),
                **outcome,
            }
        )

    # -- connecting and watching the cluster ------------------------------------------------------------------

    def connect(self) -> None:
        import ray

        from .ray_actor import RunnerHost

        code = {importlib.import_module(name.split(".")[0]) for name in self.settings["code"]}
        ray.init(
            address=self.settings["address"],
            namespace="vfx-mocap",
            runtime_env={"py_modules": sorted(code, key=lambda m: m.__name__), "excludes": ["__pycache__"]},
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        self._host = ray.remote(RunnerHost)
        self.send({"op": "connected", "address": self.settings["address"], "snapshot": self.snapshot()})

    def snapshot(self) -> dict[str, Any]:
        import ray

        nodes = [
            {
                "node_id": node["NodeID"],
                "address": node["NodeManagerAddress"],
                "alive": node["Alive"],
                "resources": {k: v for k, v in node["Resources"].items() if not k.startswith("node:")},
            }
            for node in ray.nodes()
        ]
        clean = lambda r: {k: v for k, v in r.items() if not k.startswith("node:")}  # noqa: E731
        return {
            "nodes": nodes,
            "total": clean(ray.cluster_resources()),
            "free": clean(ray.available_resources()),
            "actors": self.actor_views(),
        }

    def actor_views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [actor.view() for actor in self._actors]

    def watch(self) -> None:
        """Send a snapshot every second; end the process if the cluster stops answering."""
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vfx-ray-status")
        while True:
            time.sleep(SNAPSHOT_INTERVAL_S)
            try:
                snapshot = pool.submit(self.snapshot).result(timeout=CLUSTER_ANSWER_S)
            except Exception as exc:
                reason = "it did not answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                self._exit_lost(f"the Ray cluster at {self.settings['address']} stopped answering ({reason})")
            self.send({"op": "cluster", "snapshot": snapshot})
            self.sweep()

    def _exit_lost(self, message: str) -> None:
        try:
            self.send({"op": "lost", "message": message})
        finally:
            os._exit(3)

    # -- actors --------------------------------------------------------------------------------------------

    def _kill(self, actor: Actor) -> None:
        import ray

        with self._lock:
            if actor in self._actors:
                self._actors.remove(actor)
        ray.kill(actor.handle, no_restart=True)

    def sweep(self) -> None:
        """End actors idle for longer than ``idle_unload_s``: their memory (and GPU share) goes back."""
        now = time.time()
        with self._lock:
            idle = [a for a in self._actors if a.busy is None and now - a.last_used > self.settings["idle_unload_s"]]
        for actor in idle:
            self._kill(actor)

    def release(self) -> list[str]:
        with self._lock:
            idle = [a for a in self._actors if a.busy is None]
        for actor in idle:
            self._kill(actor)
        return sorted({a.mode for a in idle})

    def _fits(self, need: dict[str, float]) -> bool:
        import ray

        free = ray.available_resources()
        return all(free.get(name, 0.0) >= amount for name, amount in need.items())

    def _check_feasible(self, mode: str, need: dict[str, float]) -> None:
        import ray

        nodes = [n for n in ray.nodes() if n["Alive"]]
        if any(all(n["Resources"].get(k, 0.0) >= v for k, v in need.items()) for n in nodes):
            return
        offers = "; ".join(
            f"{n['NodeManagerAddress']}: "
            + ", ".join(f"{k}={v:g}" for k, v in sorted(n["Resources"].items()) if not k.startswith(("node:", "obj")))
            for n in nodes
        )
        wanted = ", ".join(f"{k}={v:g}" for k, v in sorted(need.items()))
        raise Infeasible(
            f"no node of the Ray cluster offers what {mode} asks for ({wanted}); nodes: {offers or 'none'}. Add "
            f"such a worker, or change [{mode}] in the --ray-resources file"
        )

    def _make_room(self, mode: str, need: dict[str, float]) -> bool:
        """End idle actors of other modes holding what ``need`` lacks (least recently used first) until it
        fits. True when it fits."""
        import ray

        while not self._fits(need):
            free = ray.available_resources()
            short = {name for name, amount in need.items() if free.get(name, 0.0) < amount}
            with self._lock:
                idle = sorted(
                    (
                        a
                        for a in self._actors
                        if a.busy is None and a.mode != mode and short & set(a.request.as_resources())
                    ),
                    key=lambda a: a.last_used,
                )
            if not idle:
                return False
            self._kill(idle[0])
            deadline = time.monotonic() + 2.0
            while not self._fits(need) and time.monotonic() < deadline:  # the reservation comes back shortly
                time.sleep(0.05)
        return True

    def _start_actor(self, job_id: str, mode: str, runner: str, cancel: threading.Event) -> Actor | None:
        import ray

        request = request_for(self.requests, mode)
        handle = self._host.options(
            **request.actor_options(), max_restarts=0, max_task_retries=0, max_concurrency=4
        ).remote(mode, runner, self.settings["models_dir"], self.settings["device"])
        ready = handle.describe.remote()
        while not ray.wait([ready], timeout=POLL_INTERVAL_S)[0]:
            if cancel.is_set():
                ray.kill(handle, no_restart=True)
                return None
        actor = Actor(mode, handle, request, ray.get(ready), busy=job_id)
        with self._lock:
            self._actors.append(actor)
        return actor

    def place(self, job_id: str, mode: str, runner: str, cancel: threading.Event) -> Actor | None:
        """A free actor of ``mode``, or a new one once the cluster has room; None if cancelled meanwhile."""
        need = request_for(self.requests, mode).as_resources()
        self._check_feasible(mode, need)
        waiting = False
        while not cancel.is_set():
            with self._lock:
                free = [a for a in self._actors if a.mode == mode and a.busy is None]
                if free:
                    actor = max(free, key=lambda a: a.last_used)
                    actor.busy = job_id
                    return actor
            if self._make_room(mode, need):
                return self._start_actor(job_id, mode, runner, cancel)
            if not waiting:
                self.send({"op": "progress", "job_id": job_id, "fraction": 0.0, "stage": "waiting for a worker"})
                waiting = True
            time.sleep(POLL_INTERVAL_S)
        return None

    # -- jobs ----------------------------------------------------------------------------------------------

    def ship_inputs(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        """Specs the actor understands and the object references they point to: file contents and arrays go
        through the object store; files on the shared drive go as paths."""
        import ray

        specs: dict[str, Any] = {}
        refs: list[Any] = []
        for name, spec in inputs.items():
            rest = {k: v for k, v in spec.items() if k not in ("path", "paths", "blob_path")}
            if "blob_path" in spec:
                rest["array"] = len(refs)
                refs.append(ray.put(np.load(spec["blob_path"], allow_pickle=False)))
            elif self._shared(spec.get("path") or spec.get("paths")):
                rest.update({k: spec[k] for k in ("path", "paths") if k in spec})
            elif "path" in spec:
                rest.update(file=len(refs), names=[Path(spec["path"]).name])
                refs.append(ray.put(Path(spec["path"]).read_bytes()))
            else:
                paths = [Path(p) for p in spec["paths"]]
                rest.update(files=len(refs), names=[f"{i:06d}{p.suffix.lower()}" for i, p in enumerate(paths)])
                refs.append(ray.put([p.read_bytes() for p in paths]))
            specs[name] = rest
        return specs, refs

    def _shared(self, value: str | list[str] | None) -> bool:
        if self.shared_dir is None or value is None:
            return False
        paths = [value] if isinstance(value, str) else value
        return all(Path(p).resolve().is_relative_to(self.shared_dir) for p in paths)

    def run(self, message: dict[str, Any]) -> None:
        """Run one job (on its own thread) and send its ``done``."""
        job_id = message["job_id"]
        cancel = self._cancels[job_id]
        started = False
        try:
            specs, refs = self.ship_inputs(message["inputs"])
            actor = self.place(job_id, message["mode"], message["runner"], cancel)
            if actor is None:
                self.done(job_id, "cancelled", started=False)
                return
            self.send(
                {"op": "started", "job_id": job_id, "node": actor.info["node_ip"], "node_id": actor.info["node_id"]}
            )
            started = True
            self._follow(job_id, actor, message, specs, refs, cancel)
        except Infeasible as exc:
            error = {"code": e.MODE_UNAVAILABLE, "message": str(exc), "detail": None}
            self.done(job_id, "failed", started, error=error)
        except Exception as exc:  # an input that could not be read, an actor that could not start
            log.exception("job %s failed in the bridge", job_id)
            self.done(job_id, "failed", started, error=job_error(exc))
        finally:
            self._cancels.pop(job_id, None)

    def _follow(
        self,
        job_id: str,
        actor: Actor,
        message: dict[str, Any],
        specs: dict[str, Any],
        refs: list[Any],
        cancel: threading.Event,
    ) -> None:
        import ray
        from ray.exceptions import RayError

        run = actor.handle.run.remote(job_id, message["params"], specs, *refs)
        cancel_sent = killed = None
        while True:
            done = bool(ray.wait([run], timeout=POLL_INTERVAL_S)[0])
            self._forward(job_id, actor)
            if done:
                break
            if cancel.is_set():
                if cancel_sent is None:
                    actor.handle.cancel.remote(job_id)
                    cancel_sent = time.monotonic()
                elif not killed and time.monotonic() - cancel_sent > self.settings["cancel_grace_s"]:
                    log.warning("job %s ignored its cancel: ending its actor", job_id)
                    self._kill(actor)  # the runner ignores cancel: stop the remote work the hard way
                    killed = True
        try:
            result = ray.get(run)
        except RayError as exc:
            self._kill(actor)
            if killed:
                self.done(job_id, "cancelled", started=True)
                return
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = {
                "code": e.INTERRUPTED,
                "message": f"the Ray worker on {actor.info['node_ip']} running this job was lost "
                f"({type(exc).__name__}: {first_line[:300]}); retry it",
                "detail": {"node_id": actor.info["node_id"]},
            }
            self.done(job_id, "lost", started=True, error=error)
            return
        with contextlib.suppress(RayError, TimeoutError):  # keep the old counts; a dead actor fails its next job
            actor.info = ray.get(actor.handle.describe.remote(), timeout=CLUSTER_ANSWER_S)
        with self._lock:  # free before "done": the daemon's next job of this mode may come at once
            actor.busy, actor.last_used = None, time.time()
        files = result.pop("files", {})
        if result["state"] == "succeeded":
            work = Path(message["work_dir"])
            for relative, data in files.items():
                target = work / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        self.done(job_id, result.pop("state"), started=True, **result)

    def _forward(self, job_id: str, actor: Actor) -> None:
        import ray
        from ray.exceptions import RayError

        try:
            events = ray.get(actor.handle.poll.remote(job_id), timeout=CLUSTER_ANSWER_S)
        except (RayError, TimeoutError):
            return  # a dead actor: the run's own result says so
        for event in events:
            self.send({**event, "job_id": job_id})

    # -- the loop ------------------------------------------------------------------------------------------

    def serve(self) -> None:
        threading.Thread(target=self.watch, name="vfx-ray-watch", daemon=True).start()
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the daemon is gone: our actors end with this process
            op = message["op"]
            if op == "run":
                self._cancels[message["job_id"]] = threading.Event()
                threading.Thread(target=self.run, args=(message,), name=f"vfx-ray-{message['job_id']}").start()
            elif op == "cancel":
                flag = self._cancels.get(message["job_id"])
                if flag is not None:
                    flag.set()
            elif op == "release":
                self.send({"op": "released", "modes": self.release()})
            elif op == "stop":
                self.release()
                os._exit(0)


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bridge = Bridge(conn, conn.recv())
    try:
        bridge.connect()
    except Exception as exc:
        bridge.send(
            {"op": "lost", "message": f"could not connect to the Ray cluster at {bridge.settings['address']}: {exc}"}
        )
        os._exit(2)
    bridge.serve()


if __name__ == "__main__":
    main()
