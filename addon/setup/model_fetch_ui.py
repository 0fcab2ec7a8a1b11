# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""The *Fetch* and *Cancel* buttons of a mode that needs a download, and their runs (:mod:`.model_fetch`).

Main thread only. The Generate panel draws :func:`draw_needs_download`; a timer redraws it while a fetch runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy

from ..bridge.model_fetch import FetchRun
from ..common import runtime
from ..common.errors import fail

REDRAW_S = 0.5
_runs: dict[str, FetchRun] = {}


def run_for(mode: str) -> FetchRun | None:
    return _runs.get(mode)


def _size(size: Any) -> str:
    if not isinstance(size, int | float) or size <= 0:
        return "size not known"
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _tick() -> float | None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "VIEW_3D"):
                area.tag_redraw()
    # The daemon's health (every few seconds) turns the mode ready once the files are in place.
    return REDRAW_S if any(run.state == "running" for run in _runs.values()) else None


class VFXMOCAP_OT_fetch_models(bpy.types.Operator):
    """Download and verify this mode's weights into the daemon's models folder (the daemon's own fetch-models)"""

    bl_idname = "vfxmocap.fetch_models"
    bl_label = "Fetch"

    mode: bpy.props.StringProperty()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(runtime.get().modes)

    def execute(self, context: bpy.types.Context) -> set[str]:
        run = _runs.get(self.mode)
        if run is not None and run.state == "running":
            return {"CANCELLED"}
        download = runtime.get().modes.get(self.mode, {}).get("download") or {}
        argv = download.get("argv")
        if not argv:
            return fail(self, f"The daemon names no download for {self.mode}")
        _runs[self.mode] = FetchRun(self.mode, [str(a) for a in argv]).start()
        if not bpy.app.timers.is_registered(_tick):
            bpy.app.timers.register(_tick, first_interval=REDRAW_S)
        return {"FINISHED"}


class VFXMOCAP_OT_fetch_models_cancel(bpy.types.Operator):
    """Stop this download; the next Fetch resumes it"""

    bl_idname = "vfxmocap.fetch_models_cancel"
    bl_label = "Cancel Fetch"

    mode: bpy.props.StringProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        run = _runs.get(self.mode)
        if run is not None:
            run.cancel()
        return {"FINISHED"}


def draw_needs_download(layout: bpy.types.UILayout, mode: str, title: str, info: Mapping[str, Any]) -> None:
    """One line: ``Face swap: needs a download (889 MB)`` and *Fetch* (or the progress and *Cancel*), then the
    licences, and the error of the last fetch right under it."""
    download = info.get("download") or {}
    run = _runs.get(mode)
    row = layout.row(align=True)
    row.label(text=f"{title}: needs a download ({_size(download.get('bytes'))})", icon="IMPORT")
    if run is not None and run.state == "running":
        row.operator(VFXMOCAP_OT_fetch_models_cancel.bl_idname, text="Cancel", icon="CANCEL").mode = mode
        layout.progress(factor=run.fraction, type="BAR", text=run.progress[-60:])
    else:
        row.operator(VFXMOCAP_OT_fetch_models.bl_idname, text="Fetch", icon="IMPORT").mode = mode
    for licence in download.get("licences") or ():
        layout.label(text=f"Licence: {licence}")
    if run is not None and run.state in ("failed", "cancelled"):
        layout.label(text=run.error[:200], icon="ERROR" if run.state == "failed" else "CANCEL")


CLASSES = (VFXMOCAP_OT_fetch_models, VFXMOCAP_OT_fetch_models_cancel)


def unregister() -> None:
    """End fetches in progress (their parts stay for the next Fetch) and the timer."""
    for run in _runs.values():
        run.cancel()
        run.wait(5.0)
    _runs.clear()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
