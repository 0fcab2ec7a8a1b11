"""Pose to armature: solving a pose job's landmarks onto a rig and baking them (body, hands, face shape keys),
live pose from a camera or a video, and their panel, operators and properties."""

from __future__ import annotations

from . import live_pose, mocap_operators, mocap_panel, mocap_parts, mocap_properties, mocap_tasks

CLASSES = (*mocap_properties.CLASSES, *mocap_operators.CLASSES, *mocap_panel.CLASSES, *mocap_parts.CLASSES)


def register() -> None:
    """The settings on scenes and armatures, and the live loop's file-load handler (the classes are registered)."""
    mocap_properties.register()
    mocap_parts.register()
    live_pose.register()


def unregister() -> None:
    """Stop live pose and the background solves, then remove the settings (before the classes go)."""
    live_pose.unregister()
    mocap_tasks.unregister()
    mocap_parts.unregister()
    mocap_panel.unregister()
    mocap_properties.unregister()
