"""The *Set Up Daemon* section of the preferences: feature sets with their sizes, the button, progress, the log
and *Cancel*. The run itself is :class:`.daemon_setup.SetupRun`; a timer redraws the preferences while it runs.

Main thread only.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..bridge import daemon_setup
from ..common import preferences
from ..common.errors import fail

EXTENSION_DIR = Path(__file__).resolve().parents[2]
REDRAW_S = 0.5
_run: daemon_setup.SetupRun | None = None


def daemon_source() -> Path:
    """The daemon's source: ``daemon_source/`` inside the extension zip, or the checkout the add-on runs from."""
    shipped = EXTENSION_DIR / "daemon_source"
    return shipped if shipped.is_dir() else EXTENSION_DIR


def current_run() -> daemon_setup.SetupRun | None:
    return _run


def _redraw() -> float | None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return REDRAW_S if _run is not None and _run.state == "running" else None


class VFXMOCAP_OT_setup_daemon(bpy.types.Operator):
    """Create (or repair) the daemon's own environment in the data folder from the source inside the extension,
    with the feature sets ticked above; it downloads packages from PyPI"""

    bl_idname = "vfxmocap.setup_daemon"
    bl_label = "Set Up Daemon"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _run is None or _run.state != "running"

    def execute(self, context: bpy.types.Context) -> set[str]:
        global _run
        prefs = preferences.get()
        extras = [f.extra for f in daemon_setup.FEATURE_SETS if getattr(prefs, f"setup_{f.extra}")]
        if not extras:
            return fail(self, "Tick at least one feature set to install")
        settings = preferences.daemon_settings()
        _run = daemon_setup.SetupRun(
            preferences.data_dir(), daemon_source(), extras, settings.log_dir / "setup.log"
        ).start()
        if not bpy.app.timers.is_registered(_redraw):
            bpy.app.timers.register(_redraw, first_interval=REDRAW_S)
        return {"FINISHED"}


class VFXMOCAP_OT_setup_daemon_cancel(bpy.types.Operator):
    """Stop setting up the daemon; the half-made environment is not used until a run completes"""

    bl_idname = "vfxmocap.setup_daemon_cancel"
    bl_label = "Cancel Set Up"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _run is not None and _run.state == "running"

    def execute(self, context: bpy.types.Context) -> set[str]:
        assert _run is not None
        _run.cancel()
        return {"FINISHED"}


def draw(layout: bpy.types.UILayout, prefs: bpy.types.AddonPreferences) -> None:
    """The section: where the daemon runs from, the feature sets, the button, and the run's progress and log."""
    box = layout.box()
    python, source = preferences.resolved_python()
    box.label(text=f"Daemon: {source}" if python else "Daemon: not set up", icon="CHECKMARK" if python else "INFO")
    if python:
        box.label(text=python)
    column = box.column(align=True)
    for feature in daemon_setup.FEATURE_SETS:
        column.prop(prefs, f"setup_{feature.extra}", text=f"{feature.label} ({feature.download})")
    row = box.row(align=True)
    row.operator(VFXMOCAP_OT_setup_daemon.bl_idname, icon="IMPORT")
    row.operator(VFXMOCAP_OT_setup_daemon_cancel.bl_idname, text="Cancel", icon="CANCEL")
    if _run is None:
        return
    if _run.state == "running":
        box.progress(factor=_run.fraction, text=_run.step)
    else:
        icon = {"done": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL"}[_run.state]
        box.label(text=_run.message, icon=icon)
    log = box.column(align=True)
    for line in _run.log_tail(6):
        log.label(text=line[:140])


CLASSES = (VFXMOCAP_OT_setup_daemon, VFXMOCAP_OT_setup_daemon_cancel)


def unregister() -> None:
    """Stop a run in progress (its environment stays unused) and the redraw timer."""
    global _run
    if _run is not None and _run.state == "running":
        _run.cancel()
        _run.wait(10.0)
    _run = None
    if bpy.app.timers.is_registered(_redraw):
        bpy.app.timers.unregister(_redraw)
