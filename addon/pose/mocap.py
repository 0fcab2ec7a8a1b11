"""Pose to armature, hooked into the add-on: properties, operators, panels, and the live loop (stopped when the
add-on is disabled or another file is opened) and background solves (stopped when the add-on is disabled)."""

from __future__ import annotations

from . import live_pose, mocap_operators, mocap_panel, mocap_parts, mocap_properties, mocap_tasks


def register() -> None:
    mocap_properties.register()
    mocap_operators.register()
    mocap_panel.register()
    mocap_parts.register()
    live_pose.register()


def unregister() -> None:
    live_pose.unregister()
    mocap_tasks.unregister()
    mocap_parts.unregister()
    mocap_panel.unregister()
    mocap_operators.unregister()
    mocap_properties.unregister()
