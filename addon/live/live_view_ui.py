# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""The "Live View" panel of the Motion Capture tab (Sequencer, 3D viewport and Image Editor), its settings and
its operators: start / stop a live generative mode, record it into the sequencer, show it in an Image Editor.

``Scene.vfx_mocap_live`` holds :class:`MocapLiveSettings`. The mode's options are the same items the Generate
panel edits (``Scene.vfx_mocap.params``), limited to those the daemon lists for the live variant; changing one
while the view runs reaches the daemon within :data:`.live_view.OPTIONS_CHECK_S`. The reference image is the
Generate panel's reference too. Main thread only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy

from ..bridge.live_client import LiveError
from ..common import compat, requests, runtime, strips, ui
from ..common.errors import UserError, fail
from . import live_view

MODES = (
    ("face_swap", "Face Swap", "The reference image's face onto the faces the camera sees"),
    ("liveportrait", "LivePortrait", "The reference portrait animated by the face the camera sees"),
)
TARGET_FACE_SLOT = "target_face"


class MocapLiveSettings(bpy.types.PropertyGroup):
    mode: bpy.props.EnumProperty(name="Live Mode", items=MODES, default="face_swap")
    source: bpy.props.EnumProperty(
        name="Source",
        items=(
            ("CAMERA", "Camera", "A camera connected to the machine the daemon runs on"),
            ("FILE", "Video File", "A video file played at its own frame rate, looping, as a camera would"),
        ),
        default="CAMERA",
    )
    camera_index: bpy.props.IntProperty(
        name="Camera", min=0, max=63, default=0, description="Which camera: 0 is the first the system lists"
    )
    video_path: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")
    target_face_path: bpy.props.StringProperty(
        name="Target Face",
        subtype="FILE_PATH",
        description="Face swap with target 'matching': an image of the person whose faces are replaced",
    )


def live_option_names(mode_info: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(p["name"] for p in mode_info.get("live") or ())


def build_request(scene: bpy.types.Scene) -> tuple[live_view.LiveRequest, tuple[str, ...]]:
    """The live request the panel describes, and the names of the mode's live options. Raises LiveError or
    UserError naming what to change."""
    settings = scene.vfx_mocap_live
    mode = settings.mode
    info = requests.live_mode_info(mode)
    names = live_option_names(info)
    params = {p.name: p.value for p in scene.vfx_mocap.mode_params(mode) if p.name in names}
    inputs: dict[str, dict[str, Any]] = {}
    for slot in info.get("inputs", ()):
        if slot["kind"] != "image":
            continue  # the camera stands in for the mode's video input
        if slot["name"] == TARGET_FACE_SLOT:
            # Sent whenever it is set, so that switching Target to 'matching' while running finds it.
            if params.get("target") == "matching" or settings.target_face_path:
                inputs[slot["name"]] = {"path": strips.readable_file(settings.target_face_path, "the target face")}
            continue
        reference = strips.reference_spec(scene)
        if reference is None:
            raise UserError(f"Live {mode} needs a reference image: choose a file or an image strip under Reference")
        inputs[slot["name"]] = reference
    if settings.source == "FILE":
        source: dict[str, Any] = {"path": strips.readable_file(settings.video_path, "the live video"), "loop": True}
    else:
        source = {"camera": settings.camera_index}
    return requests.live_request(mode, info, source, params, inputs), names


class VFXMOCAP_OT_live_view_start(bpy.types.Operator):
    """Run the chosen live mode on the camera (or a video file) and show its frames in the 'VFX Live' image"""

    bl_idname = "vfxmocap.live_view_start"
    bl_label = "Start Live View"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            request, names = build_request(context.scene)
            live_view.start(context.scene, request, names)
        except UserError as exc:
            return fail(self, exc)
        self.report({"INFO"}, f"Live {request.mode} starting")
        return {"FINISHED"}


class VFXMOCAP_OT_live_view_stop(bpy.types.Operator):
    """Stop the live view here and in the daemon (a recording in progress is inserted)"""

    bl_idname = "vfxmocap.live_view_stop"
    bl_label = "Stop Live View"

    def execute(self, context: bpy.types.Context) -> set[str]:
        live_view.stop()
        return {"FINISHED"}


class VFXMOCAP_OT_live_view_record(bpy.types.Operator):
    """Start recording the live frames, or stop and insert them as an image-sequence strip at the current frame"""

    bl_idname = "vfxmocap.live_view_record"
    bl_label = "Record Live View"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        view = live_view.current()
        if view is None or not view.running:
            return fail(self, "The live view is not running: start it first")
        if view.recording:
            view.stop_recording()
            self.report({"INFO"}, "Recording stopped: the take is inserted when its last frames are written")
            return {"FINISHED"}
        render = context.scene.render
        folder = live_view.recording_folder(live_view.new_take_id())
        try:
            view.start_recording(folder, render.fps / render.fps_base)
        except (LiveError, OSError) as exc:
            return fail(self, f"Cannot record into {folder}: {exc}")
        self.report({"INFO"}, f"Recording into {folder}")
        return {"FINISHED"}


class VFXMOCAP_OT_live_view_show(bpy.types.Operator):
    """Show the 'VFX Live' image in an Image Editor"""

    bl_idname = "vfxmocap.live_view_show"
    bl_label = "Show in Image Editor"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if bpy.data.images.get(live_view.IMAGE_NAME) is None:
            return fail(self, "No live frame yet: start the live view first")
        if not live_view.show_in_image_editor(context):
            return fail(
                self, f"No Image Editor is open: change an area to the Image Editor and pick '{live_view.IMAGE_NAME}'"
            )
        return {"FINISHED"}


def _draw_stats(layout: bpy.types.UILayout, view: live_view.LiveView) -> None:
    session = view.session
    column = layout.column(align=True)
    latest = view.last_frame
    work = f", {latest.process_ms:.0f} ms a frame" if latest is not None else ""
    column.label(text=f"Showing {view.shown_fps:.1f} fps (daemon {session.daemon_fps:.1f} fps{work})", icon="PLAY")
    if view.latencies_ms:
        p50, p95 = live_view.percentile(view.latencies_ms, 0.5), live_view.percentile(view.latencies_ms, 0.95)
        column.label(text=f"Latency {p50:.0f} ms (p95 {p95:.0f} ms), capture to image")
        main = live_view.percentile(view.main_thread_ms, 0.5)
        column.label(text=f"Main thread {main:.1f} ms a frame; {view.shown} shown")
    elif session.state == "starting":
        column.label(text="Starting (loading the models)...", icon="SORTTIME")


def draw_live_view(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Live View panel."""
    scene = context.scene
    settings = scene.vfx_mocap_live
    state = scene.vfx_mocap
    view = live_view.current()
    running = view is not None and view.running
    modes = runtime.get().modes

    column = layout.column()
    column.enabled = not running
    column.prop(settings, "mode", expand=True)
    info = modes.get(settings.mode) or {}
    if modes and not info.get("ready"):
        ui.wrapped(column, f"Not ready: {'; '.join(info.get('missing') or ()) or 'not offered by the daemon'}", "ERROR")
    column.prop(settings, "source", expand=True)
    column.prop(settings, "camera_index" if settings.source == "CAMERA" else "video_path")
    column.prop(state, "reference_source", expand=True)
    if state.reference_source == "FILE":
        column.prop(state, "reference_path", text="")
    elif state.reference_source == "STRIP" and scene.sequence_editor is not None:
        column.prop_search(state, "reference_strip", scene.sequence_editor, compat.ALL_STRIPS_ATTR, text="")

    names = live_option_names(info)
    params = [p for p in state.mode_params(settings.mode) if p.name in names]
    for param in params:
        layout.prop(param, param.value_attr, text=param.name.replace("_", " ").capitalize())
    if any(p.name == "target" and p.value == "matching" for p in params):
        layout.prop(settings, "target_face_path")

    row = layout.row(align=True)
    row.scale_y = 1.3
    if view is not None and view.stopping:
        row.label(text="Stopping...", icon="SORTTIME")
    elif view is not None and view.running:
        row.operator("vfxmocap.live_view_stop", icon="PAUSE")
        row.operator(
            "vfxmocap.live_view_record",
            text="Stop Recording" if view.recording else "Record",
            icon="REC",
            depress=view.recording,
        )
    else:
        row.operator("vfxmocap.live_view_start", icon="PLAY")
    layout.operator("vfxmocap.live_view_show", icon="IMAGE")
    if view is None:
        return
    if running:
        _draw_stats(layout, view)
    if view.recorder is not None:
        layout.label(text=f"Recording: {view.recorder.frames} frames", icon="REC")
    elif view.finishing:
        layout.label(text="Writing the take...", icon="SORTTIME")
    if view.session.update_error:
        ui.wrapped(layout, f"Option refused: {view.session.update_error}", icon="ERROR")
    if view.error:
        ui.wrapped(layout.box(), view.error, icon="ERROR")
    take = view.last_take
    if take is not None:
        layout.label(text=f"Inserted '{take.result_strip}': {take.frame_count} frames", icon="CHECKMARK")


CLASSES = (
    MocapLiveSettings,
    VFXMOCAP_OT_live_view_start,
    VFXMOCAP_OT_live_view_stop,
    VFXMOCAP_OT_live_view_record,
    VFXMOCAP_OT_live_view_show,
    *ui.sidebar_panels("live_view", "Live View", draw_live_view, (*ui.EDITORS, ("IMAGE_EDITOR", "image"))),
)


def register() -> None:
    bpy.types.Scene.vfx_mocap_live = bpy.props.PointerProperty(type=MocapLiveSettings)
    live_view.register()


def unregister() -> None:
    """Stop a running live view (both sides) first, then remove the settings (the add-on removes the classes)."""
    live_view.unregister()
    del bpy.types.Scene.vfx_mocap_live
