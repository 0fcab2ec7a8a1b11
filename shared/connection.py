"""The connection file: how a client finds and authenticates to a running daemon.

The daemon writes it (mode 0600, in a 0700 runtime directory) when it is ready and removes it on a clean
exit. It holds the endpoint, the HMAC key (random per start), the CURVE public key when the transport is
encrypted, the daemon's pid, a session id that is new at every start (so clients notice restarts) and the
protocol version.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConnectionFileError

CONNECTION_FILE_NAME = "daemon.json"
APP_NAME = "vfx-mocap"


@dataclass(frozen=True)
class ConnectionInfo:
    endpoint: str
    key: str
    session_id: str
    pid: int
    protocol_version: int
    server_public_key: str | None = None
    version: str = ""
    data_dir: str = ""

    @property
    def key_bytes(self) -> bytes:
        return self.key.encode("ascii")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def default_runtime_dir() -> Path:
    """Where the daemon's sockets and connection file live; ``VFXMOCAP_RUNTIME_DIR`` overrides.

    Kept short on purpose: ipc:// socket paths are limited to about 100 bytes.
    """
    override = os.environ.get("VFXMOCAP_RUNTIME_DIR")
    if override:
        return Path(override)
    if sys.platform.startswith("linux") and os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / APP_NAME
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", tempfile.gettempdir())) / APP_NAME / "run"
    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{os.getuid()}"


def default_data_dir() -> Path:
    """Where the job database, job folders and weights live: the platform's data folder (platformdirs: on Linux
    ``~/.local/share/vfx-mocap``, on macOS ``~/Library/Application Support/vfx-mocap``, on Windows
    ``%LOCALAPPDATA%\\vfx-mocap``), shared by every Blender version and the CLI; ``VFXMOCAP_DATA_DIR`` overrides."""
    override = os.environ.get("VFXMOCAP_DATA_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_log_dir(data_dir: Path | None = None) -> Path:
    """Where the daemon's logs go: ``<data_dir>/logs`` for a data folder chosen by hand (``--data-dir`` or
    ``VFXMOCAP_DATA_DIR``, so that separate daemons keep separate logs), else the platform's log folder (on Linux
    ``~/.local/state/vfx-mocap/log``, on macOS ``~/Library/Logs/vfx-mocap``, on Windows
    ``%LOCALAPPDATA%\\vfx-mocap\\Logs``)."""
    chosen = data_dir if data_dir is not None else os.environ.get("VFXMOCAP_DATA_DIR")
    if chosen:
        return Path(chosen) / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def default_connection_file() -> Path:
    return default_runtime_dir() / CONNECTION_FILE_NAME


def parse_connection(data: Any, source: str) -> ConnectionInfo:
    if not isinstance(data, dict):
        raise ConnectionFileError(f"{source} does not hold a JSON object")
    try:
        return ConnectionInfo(
            endpoint=str(data["endpoint"]),
            key=str(data["key"]),
            session_id=str(data["session_id"]),
            pid=int(data["pid"]),
            protocol_version=int(data["protocol_version"]),
            server_public_key=data.get("server_public_key"),
            version=str(data.get("version", "")),
            data_dir=str(data.get("data_dir", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConnectionFileError(f"{source} is missing or has a bad field: {exc}") from exc


def read_connection_file(path: Path | str | None = None) -> ConnectionInfo:
    """Read a connection file; the default is the one in :func:`default_runtime_dir`."""
    file = Path(path) if path is not None else default_connection_file()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConnectionFileError(
            f"no daemon connection file at {file}: start the daemon with `python -m daemon serve`"
        ) from None
    except OSError as exc:
        raise ConnectionFileError(f"cannot read the connection file {file}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConnectionFileError(f"{file} is not valid JSON: {exc}") from exc
    return parse_connection(data, str(file))
