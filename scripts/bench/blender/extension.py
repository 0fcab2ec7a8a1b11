"""The extension in a benchmark that runs in a bpy venv: built from this checkout, installed by Blender's own
installer into a throwaway Blender user folder, and connected to a daemon through the add-on's operator."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType

MODULE = "bl_ext.user_default.vfx_motion_capture"
"""The installed extension's package."""


def install_extension(work: Path) -> ModuleType:
    """Build the extension into ``work/dist`` and install it, enabled, with Blender's user folder in
    ``work/blender-user``; return its ``addon`` package. Call it before anything imports bpy: Blender reads where
    the user folder is when bpy is imported."""
    os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender-user")
    import bpy

    from scripts import build_extension

    bpy.ops.extensions.package_install_files(
        filepath=str(build_extension.build(work / "dist")), repo="user_default", enable_on_install=True
    )
    return sys.modules[f"{MODULE}.addon"]


def connect_daemon(addon: ModuleType) -> None:
    """Run the add-on's Start Daemon operator (it starts a daemon, or connects to the one in the preferences'
    connection file) and pump as Blender's timer would until connected; raise with the add-on's message on error."""
    import bpy

    runtime = addon.common.runtime.get()
    bpy.ops.vfxmocap.daemon_start()
    while runtime.status.state not in {"connected", "error"}:
        addon.common.pump.tick()
        time.sleep(0.02)
    if runtime.status.state == "error":
        raise RuntimeError(runtime.status.message)


def enable_rigify() -> None:
    """Turn on Rigify (for its human metarig), as a user does in the preferences."""
    import addon_utils  # only importable once bpy has set up Blender's script paths

    addon_utils.enable("rigify", default_set=True)
