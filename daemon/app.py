"""The daemon as a whole: configuration, start-up, health, and graceful shutdown.

Start-up order: runtime directory (0700) → refuse over a live daemon → data folder lock → store (jobs left
running become interrupted) → registry → sockets → connection file (the "ready" signal) → serve. Shutdown
reverses it: stop taking requests, interrupt the running job, release models, remove the connection file.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import ipaddress
import logging
import logging.handlers
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import zmq

from models.catalog import BUILTIN_RUNNERS, import_runner, plugin_runners
from models.manifest import MANIFEST_PATH, load_manifest
from models.runner import Runner
from shared import PROTOCOL_VERSION, __version__
from shared.connection import CONNECTION_FILE_NAME, PLAIN_USER, ConnectionInfo
from shared.errors import VfxError
from shared.wire import new_id

from . import gate
from .blobs import BlobStore
from .connection_file import (
    check_no_live_daemon,
    prepare_runtime_dir,
    remove_connection_file,
    write_connection_file,
)
from .devices import Device, device_memory, probe_device, system_memory
from .engine import EngineLimits, JobEngine
from .events import EventPipe
from .executor import Executor, LocalExecutor
from .live import LiveLimits, LiveSessions
from .outputs import JobFolders
from .private import make_private
from .registry import ModelRegistry
from .requests import RequestHandlers
from .server import Server, ServerLimits
from .store import JobStore
from .trust import Trust

log = logging.getLogger("daemon")


@dataclass
class DaemonConfig:
    runtime_dir: Path
    data_dir: Path
    models_dir: Path | None = None
    log_dir: Path | None = None
    """Where ``daemon.log`` goes; None: ``<data_dir>/logs``."""
    listen: str | None = None
    advertise: str | None = None
    """The host name clients on other machines reach a TCP listen address by (written to the connection
    file). Default: the listen host, or this machine's name when listening on every interface."""
    curve: bool = False
    authorized_keys: Path | None = None
    admin_keys: Path | None = None
    """CURVE public keys of operators (same format as ``authorized_keys``, and let in too): they may stop the
    daemon, prune and release memory, and see every client's jobs."""
    allowed_paths: list[Path] = field(default_factory=list)
    """Folders whose files remote (CURVE) clients may name as inputs; they may name no other file."""
    device: str = "auto"
    idle_unload_s: float = 600.0
    plugins: list[str] = field(default_factory=list)
    manifest: Path | None = None
    executor: str = "local"
    """``local`` (this machine) or ``ray`` (a Ray cluster at ``ray_address``; see docs/scale-out.md)."""
    ray_address: str | None = None
    ray_resources: Path | None = None
    ray_shared_dir: Path | None = None
    ray_models_dir: Path | None = None
    ray_connect_timeout_s: float = 30.0
    engine_limits: EngineLimits = field(default_factory=EngineLimits)
    live_limits: LiveLimits = field(default_factory=LiveLimits)
    server_limits: ServerLimits = field(default_factory=ServerLimits)

    @property
    def connection_file(self) -> Path:
        return self.runtime_dir / CONNECTION_FILE_NAME


def is_loopback(endpoint: str) -> bool:
    host = urlparse(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def advertised_endpoint(bound: str, advertise: str | None) -> str:
    """The endpoint to write in the connection file for the address the router ``bound`` (as ZeroMQ reports
    it, with the port chosen). A wildcard address (0.0.0.0, ::) is not something a client can connect to:
    it becomes ``advertise``, or this machine's fully qualified name."""
    parsed = urlparse(bound)
    if parsed.scheme != "tcp" or parsed.port is None:
        return bound
    host = (parsed.hostname or "").strip("[]")
    wildcard = host in ("0.0.0.0", "::", "*")
    if advertise is None and not wildcard:
        return bound
    name = advertise or socket.getfqdn()
    if ":" in name:  # an IPv6 address
        name = f"[{name}]"
    return f"tcp://{name}:{parsed.port}"


def load_authorized_keys(path: Path) -> set[bytes]:
    """Z85 public keys, one per line, optionally followed by whitespace and a comment. Other lines starting
    with ``#`` are comments (``#`` is also a Z85 character, so a 40-character first word is always a key)."""
    keys = set()
    for line in path.read_text(encoding="ascii").splitlines():
        words = line.split()
        if not words:
            continue
        if len(words[0]) == 40:
            keys.add(words[0].encode("ascii"))
        elif not words[0].startswith("#"):
            raise VfxError(f"{path}: {words[0]!r} is not a 40-character Z85 CURVE public key")
    return keys


class _KeyList:
    """CURVE credentials check for zmq's authenticator: only allow-listed client keys get in."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        """``key`` arrives Z85-encoded, as written in the authorized keys file."""
        return key in self.keys


class Daemon:
    """Owns every part of a running daemon. ``start`` returns once the connection file is written."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.session_id = new_id()
        self.key = secrets.token_hex(32)
        self.started = time.time()
        self._device: Device | None = None
        self._device_lock = threading.Lock()
        self._device_error: str | None = None
        self._lock_file: Any = None
        self.context: zmq.Context[Any] | None = None
        self.authenticator: Any = None

    # -- devices -------------------------------------------------------------------------------------------

    def device(self) -> Device:
        """The resolved device, probing it now (in a child interpreter: torch is not imported here) on first
        use."""
        with self._device_lock:
            if self._device is None:
                self._device = probe_device(self.config.device)
            return self._device

    def _probe_device(self) -> None:
        try:
            self.device()
        except Exception as exc:  # reported in health; jobs needing the device will fail with it too
            self._device_error = f"{type(exc).__name__}: {exc}"
            log.error("device probe failed: %s", self._device_error)

    # -- start / stop --------------------------------------------------------------------------------------

    def _runners(self) -> dict[str, type[Runner]]:
        runners = {mode: import_runner(target) for mode, target in BUILTIN_RUNNERS.items()}
        for module in self.config.plugins:
            runners.update(plugin_runners(module))
        return runners

    def _lock_data_dir(self) -> None:
        lock_path = self.config.data_dir / "daemon.lock"
        self._lock_file = open(lock_path, "a+")  # noqa: SIM115 - held open for the daemon's lifetime
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise VfxError(
                    f"another daemon uses the data folder {self.config.data_dir}; stop it or pass --data-dir"
                ) from None

    def _bind(self) -> tuple[zmq.Socket[Any], str, str | None]:
        assert self.context is not None
        cfg = self.config
        router = self.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a client that reconnects with its id takes over
        gate.configure_router(router, gate.GateLimits())
        router.setsockopt(zmq.SNDHWM, 1000)
        public_key = None
        listen = cfg.listen
        if listen is None:
            listen = "tcp://127.0.0.1:*" if sys.platform == "win32" else f"ipc://{cfg.runtime_dir}/daemon.sock"
        remote = listen.startswith("tcp://") and not is_loopback(listen)
        if remote and cfg.authorized_keys is None:
            raise VfxError(
                f"listening on {listen} (beyond loopback) requires encryption: pass --authorized-keys FILE "
                "with the CURVE public keys of allowed clients (create them with `python -m daemon keygen`)"
            )
        if listen.startswith("tcp://"):
            from zmq.auth.thread import ThreadAuthenticator

            self.authenticator = ThreadAuthenticator(self.context)
            self.authenticator.start()
        if listen.startswith("tcp://") and not (remote or cfg.curve):
            # Authenticated at the handshake, so nothing unauthenticated is ever received (see daemon/gate.py).
            self.authenticator.configure_plain(domain="*", passwords={PLAIN_USER: self.key})
            router.plain_server = True
        elif listen.startswith("tcp://"):
            if cfg.authorized_keys is None:
                raise VfxError("--curve requires --authorized-keys FILE listing the allowed client keys")
            public, secret = zmq.curve_keypair()
            self.authenticator.configure_curve_callback(
                domain="*",
                credentials_provider=_KeyList(load_authorized_keys(cfg.authorized_keys) | self._admin_keys()),
            )
            router.curve_server = True
            router.curve_secretkey = secret
            public_key = public.decode("ascii")
        elif not listen.startswith(("ipc://", "tcp://")):
            raise VfxError(f"--listen {listen}: use ipc://PATH or tcp://HOST:PORT")
        router.bind(listen)
        endpoint = advertised_endpoint(router.getsockopt(zmq.LAST_ENDPOINT).decode(), cfg.advertise)
        return router, endpoint, public_key

    def _admin_keys(self) -> set[bytes]:
        return load_authorized_keys(self.config.admin_keys) if self.config.admin_keys else set()

    def _executor(self, models_dir: Path) -> Executor:
        cfg = self.config
        if cfg.executor == "local":
            return LocalExecutor(self.engine, self.device)
        from .ray_executor import RayExecutor, RaySettings  # imports no Ray: the bridge process does
        from .ray_resources import load_requests

        settings = RaySettings(
            address=cfg.ray_address or "",
            requests=load_requests(cfg.ray_resources),
            models_dir=cfg.ray_models_dir or models_dir,
            device=cfg.device,
            shared_dir=cfg.ray_shared_dir,
            plugins=cfg.plugins,
            idle_unload_s=cfg.idle_unload_s,
            connect_timeout_s=cfg.ray_connect_timeout_s,
        )
        runners = {mode: type(self.registry.runner(mode)) for mode in self.registry.modes}
        return RayExecutor(self.engine, settings, runners, self.registry.release)

    def _check_executor_config(self) -> None:
        cfg = self.config
        if cfg.executor not in ("local", "ray"):
            raise VfxError(f"--executor {cfg.executor}: use local or ray")
        if cfg.executor == "ray" and sys.platform == "win32":
            raise VfxError(
                "--executor ray needs a Linux or macOS daemon (Ray's multi-machine clusters do not run on Windows)"
            )
        if cfg.executor == "ray" and not cfg.ray_address:
            raise VfxError("--executor ray needs --ray-address HOST:PORT (the head node's GCS address) or auto")
        if cfg.executor == "local" and (cfg.ray_address or cfg.ray_resources or cfg.ray_shared_dir):
            raise VfxError("--ray-address, --ray-resources and --ray-shared-dir apply to --executor ray only")

    def start(self) -> None:
        cfg = self.config
        self._check_executor_config()
        prepare_runtime_dir(cfg.runtime_dir)
        check_no_live_daemon(cfg.connection_file)
        make_private(cfg.data_dir)
        self._lock_data_dir()
        log_dir = cfg.log_dir or cfg.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        _log_to_file(log_dir / "daemon.log")
        if cfg.device in ("cuda", "mps"):
            self.device()  # asked for explicitly: fail now with a clear message rather than at the first job
        self.store = JobStore(cfg.data_dir / "jobs.sqlite3")
        models_dir = cfg.models_dir or cfg.data_dir / "models"
        self.registry = ModelRegistry(
            self._runners(),
            device=self.device,
            manifest=load_manifest(cfg.manifest or MANIFEST_PATH),
            models_dir=models_dir,
            idle_unload_s=cfg.idle_unload_s,
            fetch_command=fetch_command(models_dir, cfg.manifest),
        )
        self.context = zmq.Context()
        events = EventPipe(self.context)
        self.engine = JobEngine(
            self.store,
            self.registry,
            JobFolders(cfg.data_dir / "jobs"),
            BlobStore(cfg.data_dir / "blobs"),
            cfg.engine_limits,
            emit=events.job_event,
        )
        interrupted = self.engine.recover()
        if interrupted:
            log.warning("jobs interrupted by the previous daemon's exit: %s", ", ".join(interrupted))
        router, self.endpoint, public_key = self._bind()
        connection_gate = gate.ConnectionGate(router) if self.endpoint.startswith("tcp://") else None
        gate.raise_descriptor_limit()
        self.live = LiveSessions(
            self.registry,
            admission=self.engine.admission,
            notify=events.live_changed,
            limits=cfg.live_limits,
        )
        self.executor = self._executor(models_dir)
        trust = Trust(remote=public_key is not None, admin_keys=self._admin_keys(), allowed_paths=cfg.allowed_paths)
        handlers = RequestHandlers(
            self.engine, self.health, self.session_id, self.live, self.executor.release_memory, trust
        )
        self.server = Server(
            self.context,
            router,
            self.key.encode("ascii"),
            self.session_id,
            self.engine,
            handlers,
            limits=cfg.server_limits,
            housekeeping=self._housekeeping,
            live=self.live,
            events=events,
            gate=connection_gate,
        )
        self.executor.start()
        self.info = ConnectionInfo(
            endpoint=self.endpoint,
            key=self.key,
            session_id=self.session_id,
            pid=os.getpid(),
            protocol_version=PROTOCOL_VERSION,
            server_public_key=public_key,
            version=__version__,
            data_dir=str(cfg.data_dir),
        )
        write_connection_file(cfg.connection_file, self.info)
        if cfg.device in ("auto", "cpu"):  # cuda/mps were resolved above, before the ready signal
            threading.Thread(target=self._probe_device, name="vfx-device-probe", daemon=True).start()
        log.info("daemon %s ready on %s (session %s)", __version__, self.endpoint, self.session_id[:8])

    def serve(self) -> None:
        try:
            self.server.serve()
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: running job interrupted, models released, connection file removed."""
        log.info("stopping")
        remove_connection_file(self.config.connection_file, self.session_id)
        self.live.stop_all()
        if not self.executor.stop(timeout):
            log.warning("the running job did not stop within %.0f s; it is marked interrupted", timeout)
        self.store.mark_running_interrupted()
        self.registry.release()
        self.server.close()
        if self.endpoint.startswith("ipc://"):
            Path(self.endpoint.removeprefix("ipc://")).unlink(missing_ok=True)
        if self.authenticator is not None:
            self.authenticator.stop()
        assert self.context is not None
        self.context.destroy(linger=0)
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def _housekeeping(self) -> None:
        self.live.sweep()
        self.registry.sweep()
        self.registry.relieve_memory_pressure()

    # -- health --------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        total, available = system_memory()
        device = self._device.describe() if self._device else None
        if device and device["kind"] != "cpu":
            total_now, free_now = device_memory(device["kind"])  # now, once a mode has loaded torch
            if total_now is not None:
                device["total_memory"], device["free_memory"] = total_now, free_now
        return {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "session_id": self.session_id,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            "endpoint": self.endpoint,
            "encrypted": self.info.server_public_key is not None,
            "data_dir": str(self.config.data_dir),
            "device": device,
            "device_status": "ready" if device else (self._device_error or "probing"),
            "torch_loaded": "torch" in sys.modules,
            "memory": {"total": total, "available": available},
            "modes": {mode: self.registry.readiness(mode, device) for mode in self.registry.modes},
            "loaded_models": self.executor.loaded_models(),
            "queue": {
                "depth": self.engine.queue_depth(),
                "running": self.engine.running_jobs(),
                "max_queued": self.engine.limits.max_queued,
                "max_queued_per_client": self.engine.limits.max_queued_per_client,
                "worker_alive": self.executor.alive,
            },
            "executor": self.executor.health(),
            "exit_when_idle": self.server.exit_when_idle,
            "live_sessions": self.live.count(),
            "live_sessions_ending": self.live.ending(),
            "counters": dict(self.server.counters),
            "clients_tracked": self.server.tracked_clients,
            "database": self.store.state(),
        }


def fetch_command(models_dir: Path, manifest: Path | None) -> tuple[str, ...]:
    """The ``fetch-models`` command that fetches into this daemon's models folder, with this daemon's Python (and
    manifest, when it was given one), to show as the fix for missing weights; ``{mode}`` stands for the mode."""
    options = ("--models-dir", str(models_dir), *(("--manifest", str(manifest)) if manifest is not None else ()))
    # An installed daemon has no top-level "daemon" package: its entry point is vfx_mocap (see vfx_mocap/)
    module = "vfx_mocap" if importlib.util.find_spec("vfx_mocap") is not None else "daemon"
    return (sys.executable, "-m", module, "fetch-models", "{mode}", *options)


def _log_to_file(path: Path) -> None:
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _stdout_to_stderr() -> None:
    """Send whatever is printed from now on (libraries print to stdout) to stderr, the log: a parent that stops
    reading our stdout once it has the ready line (Blender does) can never block or break the daemon."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no real stdout or stderr: nothing can block
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def run(config: DaemonConfig) -> int:
    """Start, print the ready line, serve until SIGTERM/SIGINT or a shutdown request."""
    daemon = Daemon(config)
    daemon.start()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d received", signum)
        daemon.server.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"ready {config.connection_file}", flush=True)
    _stdout_to_stderr()
    daemon.serve()
    gc.freeze()  # everything is closed: skip the exit-time collection over torch's objects (~1 s on 2 cores)
    return 0
