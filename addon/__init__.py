"""The Blender side of VFX Motion Capture: panels, operators and the bridge to the daemon.

The add-on is laid out by feature: ``setup/`` (installing the daemon, fetching weights), ``generate/`` (the
Generate panel and the job list), ``pose/`` (pose to armature, live pose), ``live/`` (the live view); ``common/``
is what they share on the Blender side and ``bridge/`` the part that runs without Blender (connection thread,
live client, recorder, daemon process, the retarget solver).

``register`` adds :data:`CLASSES` (every class of every feature, in one list) and the scene properties, starts the
connection thread, the timer pump and the file-load / undo handlers, and auto-starts the daemon if the preferences
say so. ``unregister`` undoes all of it: no timer, handler, thread, socket or daemon process started here survives
it.
"""

from __future__ import annotations

import bpy

from . import generate, live, pose, setup
from .common import preferences, properties, pump, runtime

FEATURES = (generate, pose, live)
"""The feature packages with settings or handlers to add after the classes (``setup`` has classes only)."""

CLASSES = (
    preferences.MocapPreferences,
    *properties.CLASSES,
    *setup.CLASSES,
    *generate.CLASSES,
    *pose.CLASSES,
    *live.CLASSES,
)
"""Every class the add-on registers, property groups before the groups and panels that use them."""


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    rt = runtime.start()
    bpy.app.timers.register(pump.tick, first_interval=pump.INTERVAL_S, persistent=True)
    for name in pump.RESYNC_HANDLERS:
        getattr(bpy.app.handlers, name).append(pump.resync_jobs)
    for feature in FEATURES:
        feature.register()
    prefs = preferences.get()
    settings = preferences.daemon_settings()
    if prefs.auto_start and (settings.python or settings.connection_file):
        rt.connection.start_daemon(settings)


def unregister() -> None:
    for feature in reversed(FEATURES):
        feature.unregister()
    for name in pump.RESYNC_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if pump.resync_jobs in handlers:
            handlers.remove(pump.resync_jobs)
    if bpy.app.timers.is_registered(pump.tick):
        bpy.app.timers.unregister(pump.tick)
    pump.forget_waiting()
    setup.unregister()
    runtime.stop()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
