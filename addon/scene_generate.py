"""Generate from Scene: render a control pass from the scene's camera and send it to Wan 2.1 VACE.

The pass (:mod:`.scene_passes`) is inserted as a strip at the shot's frames and becomes the selected strip; the
job is then made by the add-on's own submission path (:func:`.submission.prepare`) with the Generate panel's
options, reference and prompt for the mode, so its result is inserted like any job's: above the pass strip,
from its first frame, one generated frame per scene frame. The pose pass goes to ``vace_pose``; the depth and
layout passes go to ``vace_motion`` with ``control=as_is`` (the pass is the control video, unchanged). The job
asks for the pass's own size, so the daemon reads the control frames exactly as they are on disk.

Main thread only. ``Scene.vfx_scene_generate`` holds the settings; the panel sits in the Motion Capture tab of
the 3D viewport and the Sequencer.
"""

from __future__ import annotations

import json
import textwrap

import bpy

from . import runtime, scene_passes, strips, submission
from .scene_control.framing import frame_notes

PASS_MODES = {"pose": "vace_pose", "depth": "vace_motion", "layout": "vace_motion"}
"""The VACE mode each pass drives."""
WRAP_CHARS = 48


class SceneGenerateSettings(bpy.types.PropertyGroup):
    control_pass: bpy.props.EnumProperty(
        name="Pass",
        items=(
            ("pose", "Pose", "The humanoid rigs' skeletons through the camera (OpenPose colours): vace_pose"),
            ("depth", "Depth", "The scene's depth through the camera, near bright: vace_motion"),
            ("layout", "Layout", "Flat grey shading with outlines: the set's shapes, vace_motion"),
        ),
        default="pose",
    )
    occlusion_margin: bpy.props.FloatProperty(
        name="Occlusion Margin",
        description="How far behind the nearest surface a joint may be and still be drawn (so joints inside "
        "their own body stay); a negative value draws every joint",
        default=0.25,
        soft_min=-1.0,
        soft_max=2.0,
        subtype="DISTANCE",
    )


def _mode_option(scene: bpy.types.Scene, mode: str, name: str, fallback: object) -> object:
    for param in scene.vfx_mocap.mode_params(mode):
        if param.name == name:
            return param.value
    return fallback


def plan(scene: bpy.types.Scene) -> tuple[str, scene_passes.Shot]:
    """(mode, shot) for the scene's chosen pass, at the size the mode's Generate options ask for."""
    settings = scene.vfx_scene_generate
    mode = PASS_MODES[settings.control_pass]
    quality = str(_mode_option(scene, mode, "quality", "standard"))
    width = int(_mode_option(scene, mode, "width", 0) or 0)
    height = int(_mode_option(scene, mode, "height", 0) or 0)
    return mode, scene_passes.plan_shot(scene, quality, width, height)


def render_and_insert(scene: bpy.types.Scene) -> tuple[scene_passes.RenderedPass, bpy.types.ImageStrip]:
    """Render the chosen pass for the planned shot and insert it as a strip. Raises strips.BadInput."""
    settings = scene.vfx_scene_generate
    _mode, shot = plan(scene)
    rendered = scene_passes.render_pass(scene, settings.control_pass, shot, settings.occlusion_margin)
    return rendered, scene_passes.insert_pass_strip(scene, rendered)


class VFXMOCAP_OT_render_scene_pass(bpy.types.Operator):
    """Render the chosen control pass from the active camera over the frame range and insert it as a strip"""

    bl_idname = "vfxmocap.render_scene_pass"
    bl_label = "Render Pass"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            rendered, strip = render_and_insert(context.scene)
        except strips.BadInput as exc:
            runtime.get().last_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Rendered {len(rendered.files)} frames of the {rendered.name} pass as '{strip.name}'")
        return {"FINISHED"}


class VFXMOCAP_OT_generate_from_scene(bpy.types.Operator):
    """Render the chosen pass from the active camera and generate video from it with the reference image and
    prompt of the Generate panel (vace_pose for the pose pass, vace_motion for depth and layout)"""

    bl_idname = "vfxmocap.generate_from_scene"
    bl_label = "Generate from Scene"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        rt = runtime.get()
        try:
            mode, shot = plan(scene)
            # Everything the panel can fix is checked before rendering: the daemon, the mode, the reference.
            _check_daemon_and_reference(scene, mode)
            rendered, _strip = render_and_insert(scene)
            request = submission.prepare(scene, rt.status, mode)
        except strips.BadInput as exc:
            rt.last_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        request.params["width"], request.params["height"] = shot.framing.width, shot.framing.height
        request.params.pop("frame_count", None)
        if mode == "vace_motion":
            request.params["control"] = "as_is"
            request.params.pop("flow_scale_px", None)
        job = submission.record(scene, request)
        job.strip_props_json = json.dumps(shot.strip_props(rendered.name), sort_keys=True)
        rt.connection.submit(request.job_id, request.mode, request.params, request.inputs)
        notes = frame_notes(shot.frame_count, int(request.params.get("window_frames", 81)))
        self.report(
            {"INFO"},
            f"Submitted {mode} job {request.job_id[:8]}: {shot.frame_count} frames from {shot.frame_start}, "
            f"{shot.framing.describe()}" + "".join(f". {note}" for note in notes),
        )
        return {"FINISHED"}


def _check_daemon_and_reference(scene: bpy.types.Scene, mode: str) -> None:
    """BadInput if the daemon is not connected, lacks ``mode`` or its weights, or the reference is unusable."""
    status = runtime.get().status
    if status.state != "connected":
        submission.prepare(scene, status, mode)  # raises, naming the daemon's state as the Generate panel does
    info = (status.health or {}).get("modes", {}).get(mode)
    if info is None:
        raise strips.BadInput(f"The daemon has no mode '{mode}': update it, or use another pass")
    if not info.get("ready", False):
        missing = "; ".join(info.get("missing") or ()) or "the daemon did not say what"
        raise strips.BadInput(f"Mode '{mode}' is not ready. Missing: {missing}")
    if strips.reference_spec(scene) is None:
        raise strips.BadInput(f"Mode '{mode}' needs a reference image: choose a file or an image strip under Reference")
    if not str(_mode_option(scene, mode, "prompt", "")).strip():
        raise strips.BadInput(f"Mode '{mode}' needs a prompt: describe the video under Generate from Scene")


def _wrapped(layout: bpy.types.UILayout, text: str, icon: str = "NONE") -> None:
    column = layout.column(align=True)
    for index, line in enumerate(textwrap.wrap(text, WRAP_CHARS) or [""]):
        column.label(text=line, icon=icon if index == 0 else "BLANK1")


def draw_scene_generate(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Generate from Scene panel: the shot (camera, frames, size), the pass, the mode's options, buttons."""
    scene = context.scene
    settings = scene.vfx_scene_generate
    layout.prop(settings, "control_pass", expand=True)
    try:
        mode, shot = plan(scene)
    except strips.BadInput as exc:
        _wrapped(layout, str(exc), icon="ERROR")
        return
    column = layout.column(align=True)
    column.label(text=f"Camera: {shot.camera}", icon="CAMERA_DATA")
    column.label(text=f"Frames {shot.frame_start}-{shot.frame_start + shot.frame_count - 1} ({shot.frame_count})")
    _wrapped(column, f"Size {shot.framing.describe()}")
    for note in frame_notes(shot.frame_count, int(_mode_option(scene, mode, "window_frames", 81) or 81)):
        _wrapped(column, note, icon="INFO")
    if settings.control_pass == "pose":
        layout.prop(settings, "occlusion_margin")
    layout.operator("vfxmocap.render_scene_pass", text="Render Pass", icon="RENDER_STILL")
    layout.label(text=f"Mode: {mode} (options, reference and prompt in Generate)")
    prompt = next((param for param in scene.vfx_mocap.mode_params(mode) if param.name == "prompt"), None)
    if prompt is not None:
        layout.prop(prompt, prompt.value_attr, text="Prompt")
    row = layout.row()
    row.scale_y = 1.4
    row.operator("vfxmocap.generate_from_scene", text="Generate from Scene", icon="RENDER_ANIMATION")


def _panel_class(space: str, prefix: str) -> type:
    def draw(panel: bpy.types.Panel, context: bpy.types.Context) -> None:
        draw_scene_generate(panel.layout, context)

    name = f"VFXMOCAP_PT_{prefix}_scene_generate"
    attributes = {
        "bl_idname": name,
        "bl_label": "Generate from Scene",
        "bl_space_type": space,
        "bl_region_type": "UI",
        "bl_category": "Motion Capture",
        "bl_options": {"DEFAULT_CLOSED"},
        "draw": draw,
    }
    return type(name, (bpy.types.Panel,), attributes)


CLASSES = (
    SceneGenerateSettings,
    VFXMOCAP_OT_render_scene_pass,
    VFXMOCAP_OT_generate_from_scene,
    _panel_class("VIEW_3D", "view3d"),
    _panel_class("SEQUENCE_EDITOR", "sequencer"),
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vfx_scene_generate = bpy.props.PointerProperty(type=SceneGenerateSettings)


def unregister() -> None:
    del bpy.types.Scene.vfx_scene_generate
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
