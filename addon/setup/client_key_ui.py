"""The Create Client Key button: this Blender's key pair for a daemon on another machine, made without a terminal."""

from __future__ import annotations

import bpy

from ...shared.client import CurveKeys
from ...shared.errors import VfxError
from ..common import preferences

KEY_FILE_NAME = "client.key"
"""In the data folder; readable by this user only."""


class VFXMOCAP_OT_create_client_key(bpy.types.Operator):
    """Make this Blender's key pair for a daemon on another machine (or reuse the one in the data folder), set it
    as the Client Key File, and put its public key on the clipboard for the daemon's --authorized-keys file"""

    bl_idname = "vfxmocap.create_client_key"
    bl_label = "Create Client Key"

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = preferences.data_dir() / KEY_FILE_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = CurveKeys.load(path) if path.is_file() else CurveKeys.create(path)
        except (OSError, VfxError) as exc:
            self.report({"ERROR"}, f"Cannot make the client key {path}: {getattr(exc, 'message', exc)}")
            return {"CANCELLED"}
        preferences.get().client_key_file = str(path)
        context.window_manager.clipboard = keys.public
        self.report(
            {"INFO"},
            f"Client Key File: {path}. Its public key, now on the clipboard, goes in the daemon's --authorized-keys "
            f"file: {keys.public}",
        )
        return {"FINISHED"}


CLASSES = (VFXMOCAP_OT_create_client_key,)
