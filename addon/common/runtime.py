"""What this Blender session holds while the add-on is enabled, and nothing is saved of it: the connection
thread, the daemon's last status, preview thumbnails and the last error shown in the panel.

Created by ``register()`` and closed by ``unregister()``. Main thread only.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bpy
import bpy.utils.previews

from ..bridge.connection_thread import Connection, DaemonStatus
from . import preferences


class Runtime:
    def __init__(self) -> None:
        self.preview_dir = Path(tempfile.mkdtemp(prefix="vfx-mocap-previews-"))
        self.connection = Connection(self.preview_dir)
        self.status = DaemonStatus("stopped")
        self.last_error = ""
        self.notice = ""
        self.action_errors: dict[str, str] = {}
        """Where an operator failed ("generate", or a job id) -> its message, drawn next to that button."""
        """A one-time message for the Daemon panel (e.g. the job store was moved out of the extension's folder)."""
        self._previews = bpy.utils.previews.new()

    def close(self) -> None:
        """Stop the connection thread (and a daemon this session started); free previews and files."""
        self.connection.close(keep_jobs_running=preferences.get().keep_jobs_running)
        bpy.utils.previews.remove(self._previews)
        shutil.rmtree(self.preview_dir, ignore_errors=True)

    @property
    def modes(self) -> Mapping[str, Mapping[str, Any]]:
        """The daemon's modes as its last health reply described them (empty when not connected)."""
        health = self.status.health if self.status.state == "connected" else None
        return (health or {}).get("modes", {})

    def set_preview(self, job_id: str, path: str) -> None:
        """Show the JPEG at ``path`` as the job's thumbnail (replacing the previous one)."""
        if job_id in self._previews:
            del self._previews[job_id]
        self._previews.load(job_id, path, "IMAGE", force_reload=True)

    def preview(self, job_id: str) -> bpy.types.ImagePreview | None:
        """The job's latest preview thumbnail, if it sent one."""
        return self._previews.get(job_id)


_current: Runtime | None = None


def start() -> Runtime:
    global _current
    _current = Runtime()
    return _current


def stop() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None


def report_internal_error(what: str, exc: BaseException) -> str:
    """Show an unexpected error (a bug) where the artist looks, the panel's last error, with its traceback in
    the system console; returns the message. For timer callbacks, which must never raise: Blender drops a
    timer that does, silently."""
    traceback.print_exception(exc)
    message = f"{what} failed ({type(exc).__name__}: {exc}); the traceback is in the system console"
    if _current is not None:
        _current.last_error = message
    return message


def get() -> Runtime:
    """The running session state; only valid while the add-on is registered."""
    if _current is None:
        raise RuntimeError("VFX Motion Capture is not registered")
    return _current
