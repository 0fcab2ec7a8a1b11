# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""The add-on's preferences: how to reach the daemon, auto-start, finishing jobs after quitting, device, data
folder and keeping results with the .blend.

:func:`daemon_settings` turns them into plain data for the connection thread. Main thread only.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...shared.connection import default_data_dir, default_log_dir, default_runtime_dir
from ..bridge import daemon_setup
from ..bridge.settings import DaemonSettings

ADDON_ID = __package__.rsplit(".", 2)[0]
"""The extension's module name, e.g. ``bl_ext.user_default.vfx_motion_capture``."""

DEVICES = (
    ("auto", "Automatic", "CUDA if present, then Apple Metal (MPS), then the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
    ("mps", "Metal", "The GPU of an Apple Silicon Mac"),
    ("cpu", "CPU", "No GPU: slow, but works everywhere"),
)


class MocapPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    daemon_python: bpy.props.StringProperty(
        name="Daemon Python",
        description=(
            "Only to use an environment of your own: the Python interpreter the daemon is installed in (pip install "
            "of this repository); empty: the environment Set Up Daemon made. The add-on runs "
            "'<python> -m vfx_mocap serve'"
        ),
        subtype="FILE_PATH",
    )
    setup_pose: bpy.props.BoolProperty(name="Pose", description="Install the pose feature set", default=True)
    setup_faceswap: bpy.props.BoolProperty(name="Face Swap", description="Install the face swap feature set")
    setup_generative: bpy.props.BoolProperty(
        name="Generative", description="Install torch and diffusers (LivePortrait and Wan VACE); a large download"
    )
    connection_file: bpy.props.StringProperty(
        name="Connection File",
        description=(
            "Use a daemon started elsewhere through its daemon.json instead of starting one "
            "(leave empty to start the daemon from Blender)"
        ),
        subtype="FILE_PATH",
    )
    client_key_file: bpy.props.StringProperty(
        name="Client Key File",
        description=(
            "For a daemon on another machine, which takes only encrypted connections: this Blender's key pair, made "
            "with 'python -m daemon keygen KEYFILE' (its public key goes in the daemon's --authorized-keys file). "
            "Results of such a daemon are copied into the Data Folder's remote_results folder"
        ),
        subtype="FILE_PATH",
    )
    auto_start: bpy.props.BoolProperty(
        name="Start With Blender",
        description="Start (or connect to) the daemon when the add-on loads, if it is configured",
        default=True,
    )
    device: bpy.props.EnumProperty(
        name="Device",
        description="Where the daemon runs the models; a change takes effect when the daemon restarts",
        items=DEVICES,
        default="auto",
    )
    keep_jobs_running: bpy.props.BoolProperty(
        name="Finish Jobs After Quitting",
        description=(
            "When Blender quits (or the add-on is disabled) while jobs are queued or running, the daemon this "
            "Blender started finishes them and then exits; reopen the file to insert the results. Off: the "
            "daemon stops at once and running jobs are interrupted (retry them later)"
        ),
        default=True,
    )
    output_dir: bpy.props.StringProperty(
        name="Data Folder",
        description=(
            "Where the daemon keeps its job database, results and weights (empty: the platform's data folder, shared "
            "by every Blender version and the command line, and kept when the extension is removed)"
        ),
        subtype="DIR_PATH",
    )
    keep_results_with_blend: bpy.props.BoolProperty(
        name="Keep Results With the .blend",
        description=(
            "When a .blend is saved, copy the results its strips show into a 'vfx_results' folder beside it and "
            "point the strips there (relative paths), so the file and its media travel together"
        ),
        default=True,
    )

    def draw(self, context: bpy.types.Context) -> None:
        from ..setup import daemon_setup_ui

        layout = self.layout
        daemon_setup_ui.draw(layout, self)
        layout.use_property_split = True
        layout.prop(self, "daemon_python")
        layout.prop(self, "connection_file")
        row = layout.row(align=True)
        row.prop(self, "client_key_file")
        row.operator("vfxmocap.create_client_key", icon="LOCKED")
        layout.prop(self, "auto_start")
        layout.prop(self, "keep_jobs_running")
        layout.prop(self, "device")
        layout.prop(self, "output_dir", placeholder=str(default_data_dir()))
        layout.prop(self, "keep_results_with_blend")


def get() -> MocapPreferences:
    """This add-on's preferences."""
    return bpy.context.preferences.addons[ADDON_ID].preferences


def old_store_dir() -> Path:
    """Where versions before 0.2 kept the daemon's data: inside the extension's user folder, which Blender deletes
    with the extension (see :func:`.data_folder.move_old_store`)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path="daemon", create=False))


def resolved_python() -> tuple[str, str]:
    """The interpreter *Start* runs the daemon with, and where it comes from: the **Daemon Python** preference,
    else the environment *Set Up Daemon* completed, else a checkout's ``.venv`` when the add-on runs from one;
    ``("", "")`` when there is none."""
    chosen = get().daemon_python
    if chosen:
        return bpy.path.abspath(chosen), "Daemon Python preference"
    made = daemon_setup.ready_python(data_dir())
    if made:
        return made, "set up by Set Up Daemon"
    checkout = daemon_setup.checkout_python(Path(__file__).resolve().parents[2])
    return (checkout, "this checkout's .venv") if checkout else ("", "")


def data_dir() -> Path:
    """The daemon's data folder: the preference, else the platform's data folder."""
    chosen = get().output_dir
    return Path(bpy.path.abspath(chosen)) if chosen else default_data_dir()


def daemon_settings() -> DaemonSettings:
    """The preferences as plain data, with Blender-relative paths (``//``) made absolute."""
    prefs = get()
    folder = data_dir()
    return DaemonSettings(
        python=resolved_python()[0],
        connection_file=bpy.path.abspath(prefs.connection_file) if prefs.connection_file else "",
        client_key_file=bpy.path.abspath(prefs.client_key_file) if prefs.client_key_file else "",
        device=prefs.device,
        runtime_dir=default_runtime_dir(),
        data_dir=folder,
        log_dir=default_log_dir(folder if prefs.output_dir else None),
        keep_jobs_running=prefs.keep_jobs_running,
    )
