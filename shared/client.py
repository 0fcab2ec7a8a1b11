"""The synchronous client used by the Blender extension (on a background thread) and the CLI.

Not thread-safe: one thread owns a :class:`Client`. Requests time out and idempotent ones are retried on a
fresh socket (the "Lazy Pirate" pattern), so a lost reply never wedges the caller. A daemon restart is
noticed through the connection file (a new daemon writes it with a new session id and key) and reported once
as :class:`DaemonRestarted`, because subscriptions of the old daemon are gone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from . import PROTOCOL_VERSION
from . import messages as m
from .connection import ConnectionInfo, default_connection_file, read_connection_file
from .errors import ConnectionFileError, DaemonRestarted, DaemonUnavailable, RemoteError, WireError
from .wire import Message, ReplayGuard, blob_id, check_sendable, new_id, pack, unpack


@dataclass(frozen=True)
class CurveKeys:
    """A client's CURVE key pair (Z85 text), needed when the daemon listens beyond loopback."""

    public: str
    secret: str

    @classmethod
    def load(cls, path: Path | str) -> CurveKeys:
        """Read a key file written by ``python -m daemon keygen``: ``public=...`` and ``secret=...`` lines."""
        pairs = [line.split("=", 1) for line in Path(path).read_text(encoding="ascii").split() if "=" in line]
        values = dict(pairs)
        try:
            return cls(public=values["public"], secret=values["secret"])
        except KeyError as exc:
            raise ConnectionFileError(f"{path} is not a client key file (missing {exc})") from None

    @classmethod
    def create(cls, path: Path | str) -> CurveKeys:
        """Make a new key pair and write it to ``path`` (which must not exist; readable by this user only), in the
        form :meth:`load` reads."""
        import os

        public, secret = (key.decode("ascii") for key in zmq.curve_keypair())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(f"public={public}\nsecret={secret}\n")
        return cls(public, secret)


class Client:
    """Talks to one daemon. ``connection_file`` lets the client follow the daemon across restarts."""

    def __init__(
        self,
        info: ConnectionInfo,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        curve_keys: CurveKeys | None = None,
        connection_file: Path | str | None = None,
        client_id: str | None = None,
    ) -> None:
        """``client_id`` names the program this client belongs to: clients that share it (the connection and
        the live-session threads of one Blender) count as one client for the daemon's per-client limits and may
        read each other's jobs and live sessions. Default: a new id, this client alone."""
        if info.protocol_version != PROTOCOL_VERSION:
            raise ConnectionFileError(
                f"the daemon speaks protocol {info.protocol_version} and this client {PROTOCOL_VERSION}: update the "
                "extension and the daemon together (Set Up Daemon in the add-on's preferences, or pip install the "
                "same release), then restart the daemon"
            )
        if info.server_public_key and curve_keys is None:
            raise ConnectionFileError(
                "this daemon requires encryption: create a key pair with `python -m daemon keygen KEYFILE`, "
                "add its public key to the daemon's --authorized-keys file and pass the key file to the client"
            )
        self.info = info
        self.timeout = timeout
        self.retries = retries
        self.curve_keys = curve_keys
        self.connection_file = Path(connection_file) if connection_file else None
        self.session = client_id or new_id()
        self._routing_id = new_id()  # unique per socket owner, even when clients share a client_id
        self.dropped_messages = 0
        self._file_stamp = self._stamp()
        self._guard = ReplayGuard()
        self._events: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._context = zmq.Context()
        self._socket: zmq.Socket[Any] | None = None
        self._connect()

    @classmethod
    def from_file(cls, path: Path | str | None = None, **kwargs: Any) -> Client:
        file = Path(path) if path is not None else default_connection_file()
        return cls(read_connection_file(file), connection_file=file, **kwargs)

    # -- sockets -------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self._routing_id.encode("ascii"))
        self.info.authenticate(sock, self.curve_keys)
        sock.connect(self.info.endpoint)
        self._socket = sock

    def _reconnect(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        self._socket = None
        self._connect()

    def close(self) -> None:
        """Close the socket and the context; the client cannot be used afterwards."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._context.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamp(self) -> tuple[int, int] | None:
        if self.connection_file is None:
            return None
        try:
            stat = self.connection_file.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_ino)

    def _follow_restart(self) -> None:
        """Re-read the connection file if it changed; raise DaemonRestarted if a new daemon wrote it."""
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        info = read_connection_file(self.connection_file)
        self._file_stamp = stamp
        if info.session_id == self.info.session_id:
            return
        self.info = info
        self._guard = ReplayGuard()
        self._reconnect()
        raise DaemonRestarted(
            f"the daemon restarted (new session {info.session_id[:8]}); subscriptions must be renewed",
            detail={"session_id": info.session_id},
        )

    # -- requests ------------------------------------------------------------------------------------------

    def _receive(self, timeout: float) -> Message | None:
        """One verified message within ``timeout`` seconds, or None. Events are also queued."""
        assert self._socket is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if not self._socket.poll(int(remaining * 1000)):
                return None
            frames = self._socket.recv_multipart(copy=False)
            try:
                msg = unpack(frames, key=self.info.key_bytes, guard=self._guard)
            except WireError:
                self.dropped_messages += 1
                continue
            if msg.type == m.EVENT:
                self._events.append(msg.content)
            return msg

    def request(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        arrays: Sequence[np.ndarray] = (),
        *,
        timeout: float | None = None,
    ) -> Message:
        """Send one request and return its verified reply; raise RemoteError if the daemon refused it."""
        self._follow_restart()
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if msg_type in m.IDEMPOTENT else 0)
        for attempt in range(attempts):
            assert self._socket is not None
            msg_id = new_id()
            frames = pack(
                msg_type,
                dict(content or {}),
                key=self.info.key_bytes,
                session=self.session,
                arrays=arrays,
                msg_id=msg_id,
            )
            self._socket.send_multipart(frames, copy=False)
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                reply = self._receive(remaining)
                if reply is None:
                    break
                if reply.type == m.EVENT or reply.parent_id != msg_id:
                    continue  # an event (queued) or a late reply to an earlier attempt
                if not reply.content.get("ok", False):
                    raise RemoteError.from_wire(reply.content.get("error"))
                return reply
            self._reconnect()
            if attempt + 1 < attempts:
                self._follow_restart()
        raise DaemonUnavailable(
            f"no answer from the daemon at {self.info.endpoint} to '{msg_type}' after {attempts} "
            f"attempt(s) of {timeout:g} s: is it running? (`python -m daemon health`)"
        )

    # -- typed helpers ------------------------------------------------------------------------------------

    def ping(self, arrays: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
        return self.request(m.PING, arrays=arrays).arrays()

    def health(self) -> dict[str, Any]:
        return self.request(m.HEALTH).content["health"]

    def submit(
        self,
        job_id: str,
        mode: str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        subscribe: bool = False,
    ) -> dict[str, Any]:
        """Submit a job; resubmitting the same ``job_id`` returns the existing job.

        An input is a spec dict (``{"path": ...}``, ``{"paths": [...]}``) or a numpy array (one RGB image,
        or frames N x H x W x 3), which is uploaded only if the daemon does not hold it yet.
        """
        specs: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, value in (inputs or {}).items():
            if isinstance(value, np.ndarray):
                try:
                    check_sendable([value])
                except WireError as exc:
                    raise WireError(f"inputs.{name}: {exc.message}", detail={"field": f"inputs.{name}"}) from None
                digest = blob_id(value)
                arrays[digest] = value
                specs[name] = {"blob": digest}
            else:
                specs[name] = value
        content = {
            "job_id": job_id,
            "mode": mode,
            "params": dict(params or {}),
            "inputs": specs,
            "subscribe": subscribe,
        }
        try:
            return self.request(m.SUBMIT, content).content["job"]
        except RemoteError as exc:
            missing = exc.detail.get("missing_blobs") if isinstance(exc.detail, dict) else None
            if exc.code != "not_found" or not missing or not set(missing) <= set(arrays):
                raise
        for digest in missing:
            self.upload(arrays[digest])
        return self.request(m.SUBMIT, content).content["job"]

    def upload(self, array: np.ndarray) -> str:
        return self.request(m.UPLOAD, arrays=[array]).content["sha256"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request(m.JOB, {"job_id": job_id}).content["job"]

    def jobs(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """One page of the job history, newest first (see :meth:`jobs_page` for the cursor)."""
        return self.jobs_page(limit, before)[0]

    def jobs_page(self, limit: int = 50, before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """(jobs, cursor): pass the cursor as ``before`` for the next, older page; None after the last."""
        content = self.request(m.JOBS, {"limit": limit, "before": before}).content
        return content["jobs"], content.get("next_before")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request(m.CANCEL, {"job_id": job_id}).content["job"]

    def retry(self, job_id: str) -> dict[str, Any]:
        return self.request(m.RETRY, {"job_id": job_id}).content["job"]

    def result(self, job_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        reply = self.request(m.RESULT, {"job_id": job_id})
        names = reply.content["arrays"]
        return reply.content["summary"], dict(zip(names, reply.arrays(), strict=True))

    def frame(self, job_id: str, index: int) -> np.ndarray:
        """Drawn frame ``index`` of a succeeded job, decoded: RGB uint8 (height, width, 3)."""
        return self.request(m.FRAME, {"job_id": job_id, "index": index}).arrays()[0]

    def frame_file(self, job_id: str, index: int) -> bytes:
        """Drawn frame ``index`` of a succeeded job as the daemon stored it: the PNG file's bytes."""
        return self.request(m.FRAME, {"job_id": job_id, "index": index, "file": True}).arrays()[0].tobytes()

    def subscribe(self, job_id: str) -> dict[str, Any]:
        return self.request(m.SUBSCRIBE, {"job_id": job_id}).content["job"]

    def unsubscribe(self, job_id: str) -> None:
        self.request(m.UNSUBSCRIBE, {"job_id": job_id})

    def release_memory(self) -> list[str]:
        return self.request(m.RELEASE_MEMORY).content["released"]

    def prune(self, older_than_days: float, dry_run: bool = False) -> dict[str, Any]:
        """Delete jobs that finished more than ``older_than_days`` ago, their folders and unused inputs, except jobs
        a saved .blend uses (``kept_for_blend_files``: job id -> .blend paths). ``dry_run``: only say what would go."""
        return self.request(m.PRUNE, {"older_than_days": older_than_days, "dry_run": dry_run}).content

    def shutdown(self, when: str = "now") -> str:
        """Stop the daemon ``now``, once it is ``idle`` (its jobs done), or ``cancel`` an idle stop. Returns what
        the daemon does: ``now`` (also for ``idle`` when it has no work left), ``idle`` or ``cancel``."""
        return str(self.request(m.SHUTDOWN, {"when": when}).content["when"])

    # -- live sessions -------------------------------------------------------------------------------------

    def live_start(
        self,
        mode: str,
        source: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a live session. ``source`` is ``{"camera": 0}`` or ``{"path": "/abs/clip.mp4", "loop": True}``
        (a file played at its frame rate stands in for a camera). Inputs as in :meth:`submit`."""
        specs = {}
        for name, value in (inputs or {}).items():
            specs[name] = {"blob": self.upload(value)} if isinstance(value, np.ndarray) else value
        content = {"mode": mode, "source": dict(source), "params": dict(params or {}), "inputs": specs}
        return self.request(m.LIVE_START, content).content["session"]

    def live_next(
        self, session_id: str, after_seq: int = 0, wait_s: float = 1.0
    ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, np.ndarray]]:
        """The newest result after ``after_seq``, waiting up to ``wait_s`` seconds for one.

        Returns (session, result or None, arrays). Each call also keeps the session alive (its heartbeat).
        """
        reply = self.request(
            m.LIVE_NEXT,
            {"session_id": session_id, "after_seq": after_seq, "wait_s": wait_s},
            timeout=max(self.timeout, wait_s + 5.0),
        )
        result = reply.content["result"]
        arrays = dict(zip(result["arrays"], reply.arrays(), strict=True)) if result else {}
        return reply.content["session"], result, arrays

    def live_update(self, session_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.request(m.LIVE_UPDATE, {"session_id": session_id, "params": dict(params)}).content["session"]

    def live_stop(self, session_id: str) -> dict[str, Any]:
        return self.request(m.LIVE_STOP, {"session_id": session_id}).content["session"]

    def live_list(self) -> list[dict[str, Any]]:
        return self.request(m.LIVE_LIST).content["sessions"]

    # -- events --------------------------------------------------------------------------------------------

    def poll_events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Events received so far, waiting up to ``timeout`` seconds if there are none yet."""
        deadline = time.monotonic() + timeout
        while not self._events and self._receive(max(0.0, deadline - time.monotonic())) is not None:
            pass  # a stray reply to an abandoned request was read; keep waiting for events
        while self._receive(0.0) is not None:
            pass  # drain what has already arrived
        events = list(self._events)
        self._events.clear()
        return events

    def wait(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Block until the job reaches a final state (through events, checking the job as a fallback)."""
        deadline = time.monotonic() + timeout
        job = self.subscribe(job_id)
        while job["state"] not in m.FINAL_STATES:
            if time.monotonic() > deadline:
                raise DaemonUnavailable(f"job {job_id} did not finish within {timeout:g} s")
            events = self.poll_events(timeout=1.0)
            if any(e.get("job_id") == job_id and e.get("type") == "state" for e in events) or not events:
                job = self.job(job_id)
        return job
