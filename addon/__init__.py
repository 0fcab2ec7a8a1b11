"""The Blender side of VFX Motion Capture: panels, operators and the bridge to the daemon.

``register`` adds the classes and scene properties, starts the connection thread, the timer pump and the
file-load / undo handlers, and auto-starts the daemon if the preferences say so. ``unregister`` undoes all of
it: no timer, handler, thread, socket or daemon process started here survives it.
"""

from __future__ import annotations

import bpy

from .common import preferences, properties, pump, runtime
from .generate import operators, panels, project_results, scene_generate
from .live import live_view_ui
from .pose import mocap
from .setup import daemon_setup_ui, model_fetch_ui

CLASSES = (
    preferences.MocapPreferences,
    *daemon_setup_ui.CLASSES,
    *model_fetch_ui.CLASSES,
    *properties.CLASSES,
    *operators.CLASSES,
    *panels.CLASSES,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    rt = runtime.start()
    project_results.register()
    bpy.app.timers.register(pump.tick, first_interval=pump.INTERVAL_S, persistent=True)
    for name in pump.RESYNC_HANDLERS:
        getattr(bpy.app.handlers, name).append(pump.resync_jobs)
    prefs = preferences.get()
    settings = preferences.daemon_settings()
    if prefs.auto_start and (settings.python or settings.connection_file):
        rt.connection.start_daemon(settings)
    mocap.register()
    live_view_ui.register()
    scene_generate.register()


def unregister() -> None:
    scene_generate.unregister()
    live_view_ui.unregister()
    mocap.unregister()
    for name in pump.RESYNC_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if pump.resync_jobs in handlers:
            handlers.remove(pump.resync_jobs)
    if bpy.app.timers.is_registered(pump.tick):
        bpy.app.timers.unregister(pump.tick)
    pump.forget_waiting()
    project_results.unregister()
    daemon_setup_ui.unregister()
    model_fetch_ui.unregister()
    runtime.stop()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
