"""One live session of the daemon, seen from Blender: a background thread that starts it, fetches the newest
result, hands it to the main thread latest-only, passes option changes on, and stops it.

The thread owns its own :class:`~shared.client.Client`: the connection thread's client is not thread-safe, and a
long poll there would hold up job traffic. Each ``live_next`` is also the session's heartbeat; if Blender dies,
the polls stop and the daemon drops the session after its TTL.

Work that belongs off the main thread (converting a frame for display, solving a pose) runs in the ``prepare``
callback on this thread; the main thread only :meth:`LiveSessionThread.take` s the prepared item. Errors end the
thread with ``state == "failed"`` and ``error`` set to a message for the panel.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from ...shared.client import Client
from ...shared.connection import CONNECTION_FILE_NAME, read_connection_file
from ...shared.errors import ConnectionFileError, DaemonRestarted, DaemonUnavailable, VfxError
from ...shared.messages import LIVE_FINAL_STATES
from .connection_thread import CLIENT_ID, DaemonStatus, client_keys
from .errors import UserError
from .settings import DaemonSettings

POLL_WAIT_S = 0.5
"""Longest wait of one ``live_next``: bounds how long stopping takes, and is well inside the daemon's TTL."""
REQUEST_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 10.0

Prepared = TypeVar("Prepared")


class LiveError(UserError):
    """A live session cannot start; the message says what to do."""


def daemon_connection_file(settings: DaemonSettings, status: DaemonStatus) -> Path:
    """The connection file of the daemon the connection thread reports as ``status``. Raises LiveError when
    the daemon is not connected, or when the file belongs to another daemon than the connected one."""
    if status.state != "connected":
        raise LiveError("The daemon is not running: start it in the Motion Capture panel")
    path = Path(settings.connection_file) if settings.connection_file else settings.runtime_dir / CONNECTION_FILE_NAME
    try:
        info = read_connection_file(path)
    except ConnectionFileError as exc:
        raise LiveError(f"Cannot read the daemon's connection file: {exc}") from None
    connected = (status.health or {}).get("session_id")
    if connected and info.session_id != connected:
        raise LiveError(f"{path} belongs to another daemon than the connected one: restart the daemon")
    return path


@dataclass(frozen=True)
class LiveRequest:
    """What to start, as plain data made on the main thread. ``source`` is ``{"camera": index}`` or
    ``{"path": absolute video path, "loop": True}``; ``inputs`` are input specs as for jobs (``{"path": ...}``)."""

    connection_file: Path
    mode: str
    source: dict[str, Any]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    client_key_file: str = ""
    """The **Client Key File** preference, for an encrypted daemon."""


class LiveSessionThread(Generic[Prepared]):
    """A live session and its thread (named ``thread_name``), started at construction.

    ``prepare(result, arrays)`` runs on the thread for every result fetched (``result`` is the daemon's result
    record: seq, frame_index, captured_at, processed_at, process_ms, data); what it returns is kept latest-only
    for :meth:`take`. ``discard(item)`` (optional) is called on the thread for a prepared item that a newer one
    replaced before the main thread took it, so its resources can be reused.

    ``state`` is ``starting``, ``running``, then ``stopped``, ``ended`` (a video file ran out) or ``failed`` (with
    ``error``). ``daemon_fps`` is the session's output rate as the daemon measures it; ``received`` and
    ``replaced`` count results fetched and results replaced before they were taken.
    """

    def __init__(
        self,
        request: LiveRequest,
        prepare: Callable[[Mapping[str, Any], dict[str, np.ndarray]], Prepared],
        thread_name: str,
        discard: Callable[[Prepared], None] | None = None,
    ) -> None:
        self.request = request
        self.state = "starting"
        self.error = ""
        self.update_error = ""
        """Why the last option change was refused (the session goes on with the options it had)."""
        self.session_id = ""
        self.daemon_fps = 0.0
        self.received = 0
        self.replaced = 0
        self._prepare = prepare
        self._discard = discard
        self._latest: Prepared | None = None
        self._pending_params: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    # -- any thread --------------------------------------------------------------------------------------------

    def take(self) -> Prepared | None:
        """The newest prepared result not taken yet, or None."""
        with self._lock:
            item, self._latest = self._latest, None
        return item

    def update(self, params: Mapping[str, Any]) -> None:
        """Send changed options before the next fetch (only the newest set is sent)."""
        with self._lock:
            self._pending_params = dict(params)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Asked to stop, still winding down (finishing its poll, stopping the daemon's session)."""
        return self._stop.is_set() and self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the thread, which stops the daemon's session first. Waits up to ``timeout`` seconds for that
        (about one poll, :data:`POLL_WAIT_S`, plus the stop request); 0 returns at once (the main thread's
        way: watch :attr:`alive`)."""
        self._stop.set()
        if timeout > 0:
            self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------------------------

    def _finish(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error

    def _run(self) -> None:
        try:
            info = read_connection_file(self.request.connection_file)
            client = Client(
                info,
                timeout=REQUEST_TIMEOUT_S,
                retries=1,
                curve_keys=client_keys(self.request.client_key_file, info),
                connection_file=self.request.connection_file,
                client_id=CLIENT_ID,
            )
        except VfxError as exc:
            self._finish("failed", f"Cannot connect to the daemon: {exc.message}")
            return
        reachable = True
        try:
            self._serve(client)
        except DaemonRestarted:
            reachable = False  # the new daemon never had this session
            self._finish("failed", f"The daemon restarted: start live {self.request.mode} again")
        except DaemonUnavailable as exc:
            reachable = False
            self._finish("failed", f"Lost the daemon: {exc.message}")
        except VfxError as exc:
            self._finish("failed", f"Live {self.request.mode}: {exc.message}")
        except Exception as exc:  # a bug in prepare must reach the panel, not leave it waiting for frames
            self._finish("failed", f"Live {self.request.mode} stopped on an internal error: {exc!r}")
            raise
        finally:
            if reachable:
                self._stop_remote(client)  # also a session the daemon ended: it keeps it until stopped or expired
            client.close()

    def _serve(self, client: Client) -> None:
        request = self.request
        session = client.live_start(request.mode, request.source, request.params, request.inputs)
        self.session_id = session["session_id"]
        self.state = "running"
        seq = 0
        while not self._stop.is_set():
            self._send_update(client)
            session, result, arrays = client.live_next(self.session_id, after_seq=seq, wait_s=POLL_WAIT_S)
            self.daemon_fps = float(session.get("fps") or 0.0)
            if result is None:
                if session["state"] in LIVE_FINAL_STATES:
                    error = session.get("error") or {}
                    self._finish(session["state"], str(error.get("message", "")))
                    return
                continue
            seq = int(result["seq"])
            item = self._prepare(result, arrays)
            with self._lock:
                replaced, self._latest = self._latest, item
                self.received += 1
            if replaced is not None:
                self.replaced += 1
                if self._discard is not None:
                    self._discard(replaced)
        self._finish("stopped")

    def _send_update(self, client: Client) -> None:
        with self._lock:
            params, self._pending_params = self._pending_params, None
        if params is None:
            return
        try:
            client.live_update(self.session_id, params)
            self.update_error = ""
        except (DaemonUnavailable, DaemonRestarted):
            raise
        except VfxError as exc:  # a refused value: say so, keep the session running with what it had
            self.update_error = exc.message

    def _stop_remote(self, client: Client) -> None:
        if not self.session_id:
            return
        with contextlib.suppress(VfxError):  # already gone (timed out, or the daemon died): nothing to clean up
            client.live_stop(self.session_id)
