# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Generate from Scene: render a control pass from the scene's camera and send it to Wan 2.1 VACE.

The pass (:mod:`.scene_passes`) is inserted as a strip at the shot's frames and becomes the selected strip; the
job is then made by the add-on's one job request builder (:func:`..common.requests.job_request`) with the Generate
panel's options, reference and prompt for the mode, so its result is inserted like any job's: above the pass strip,
from its first frame, one generated frame per scene frame. The pose pass goes to ``vace_pose``; the depth and
layout passes go to ``vace_motion`` with ``control=as_is`` (the pass is the control video, unchanged). The job
asks for the pass's own size, so the daemon reads the control frames exactly as they are on disk.

Both operators render the pass as a modal operator, one frame per timer tick (:mod:`.scene_render_task`): the
panel and the status bar show the progress, Esc or the panel's Cancel stops it with the scene's settings put back
and nothing inserted or submitted. In background mode their ``execute`` renders every frame at once.

Main thread only. ``Scene.vfx_scene_generate`` holds the settings; the panel sits in the Motion Capture tab of
the 3D viewport and the Sequencer.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import bpy

from ..bridge import requests as checked
from ..bridge.scene_control.framing import frame_notes
from ..common import requests, runtime, strips, ui
from ..common.errors import UserError, fail
from . import scene_passes, scene_render_task

PASS_MODES = {"pose": "vace_pose", "depth": "vace_motion", "layout": "vace_motion"}
"""The VACE mode each pass drives."""
TICK_S = 0.01
"""Seconds between the modal render's frames: Blender handles events and redraws between them."""


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


def _mode_option(scene: bpy.types.Scene, mode: str, name: str, fallback: Any) -> Any:
    """The value of ``mode``'s option ``name`` (bool, int, float or str, as the daemon describes it), else
    ``fallback``."""
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


def start_render(scene: bpy.types.Scene, generate: bool) -> scene_render_task.SceneRenderTask:
    """Check what Render Pass (``generate`` False) or Generate from Scene needs, switch the scene's settings for
    the chosen pass and make its render the current task, nothing rendered yet: step it to the end (the modal
    operator does, one frame per timer tick). Raises UserError before anything is written."""
    if scene_render_task.busy():
        raise UserError("A pass is already rendering: wait for it, or cancel it (Esc, or Cancel in the panel)")
    settings = scene.vfx_scene_generate
    mode, shot = plan(scene)
    if generate:
        # Everything the panel can fix is checked before rendering: the daemon, the mode, the reference.
        _check_daemon_and_reference(scene, mode)
    render = scene_passes.PassRender(scene, settings.control_pass, shot, settings.occlusion_margin)
    if generate:
        finish = functools.partial(_insert_and_submit, scene, mode)
        what = f"Generating from the {settings.control_pass} pass"
    else:
        finish = functools.partial(_insert, scene)
        what = f"Rendering the {settings.control_pass} pass"
    return scene_render_task.start(render, finish, what)


def _insert(scene: bpy.types.Scene, rendered: scene_passes.RenderedPass) -> str:
    strip = scene_passes.insert_pass_strip(scene, rendered)
    return f"Rendered {len(rendered.files)} frames of the {rendered.name} pass as '{strip.name}'"


def _insert_and_submit(scene: bpy.types.Scene, mode: str, rendered: scene_passes.RenderedPass) -> str:
    """Insert the pass strip (it becomes the selected strip the job reads) and submit the job for ``mode``."""
    scene_passes.insert_pass_strip(scene, rendered)
    shot = rendered.shot
    request = requests.job_request(scene, mode)
    request.params["width"], request.params["height"] = shot.framing.width, shot.framing.height
    request.params.pop("frame_count", None)
    if mode == "vace_motion":
        request.params["control"] = "as_is"
        request.params.pop("flow_scale_px", None)
    job = requests.submit(scene, request)
    job.strip_props_json = json.dumps(shot.strip_props(rendered.name), sort_keys=True)
    notes = frame_notes(shot.frame_count, int(request.params.get("window_frames", 81)))
    return (
        f"Submitted {mode} job {request.job_id[:8]}: {shot.frame_count} frames from {shot.frame_start}, "
        f"{shot.framing.describe()}" + "".join(f". {note}" for note in notes)
    )


def _redraw_panels(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR"):
                area.tag_redraw()


class _SceneRenderOperator(bpy.types.Operator):
    """Renders the pass as a modal operator: one frame per timer tick, progress in the panel, the status bar and
    the cursor, Esc or the panel's Cancel to stop. In background mode, which has no event loop, and from scripts
    (``execute``), every frame is rendered at once through the same task."""

    bl_options = frozenset({"UNDO"})
    generate = False
    _task: scene_render_task.SceneRenderTask | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if scene_render_task.busy():
            cls.poll_message_set("A pass is rendering: wait for it, or cancel it")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            task = start_render(context.scene, self.generate)
        except UserError as exc:
            return fail(self, exc)
        while not task.step():
            pass
        return self._ended(task)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        try:
            self._task = start_render(context.scene, self.generate)
        except UserError as exc:
            return fail(self, exc)
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK_S, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0.0, 1.0)
        self._show(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        task = self._task
        assert task is not None
        if event.type == "ESC" and event.value == "PRESS":
            task.cancel()
        elif event.type == "TIMER":
            task.step()
        if task.rendering:
            self._show(context)
            return {"PASS_THROUGH"}
        self._stop(context)
        return self._ended(task)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator itself (another file opened, the window closed): cancel the render."""
        if self._task is not None:
            self._task.cancel()
        self._stop(context)

    def _show(self, context: bpy.types.Context) -> None:
        assert self._task is not None
        context.window_manager.progress_update(self._task.progress)
        if context.workspace is not None:
            context.workspace.status_text_set(f"{self._task.status_text()}. Esc to cancel")
        _redraw_panels(context)

    def _stop(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw_panels(context)

    def _ended(self, task: scene_render_task.SceneRenderTask) -> set[str]:
        if task.state == scene_render_task.FINISHED:
            self.report({"INFO"}, task.message)
            return {"FINISHED"}
        self.report({"WARNING"} if task.state == scene_render_task.CANCELLED else {"ERROR"}, task.message)
        return {"CANCELLED"}


class VFXMOCAP_OT_render_scene_pass(_SceneRenderOperator):
    """Render the chosen control pass from the active camera over the frame range and insert it as a strip"""

    bl_idname = "vfxmocap.render_scene_pass"
    bl_label = "Render Pass"


class VFXMOCAP_OT_generate_from_scene(_SceneRenderOperator):
    """Render the chosen pass from the active camera and generate video from it with the reference image and
    prompt of the Generate panel (vace_pose for the pose pass, vace_motion for depth and layout)"""

    bl_idname = "vfxmocap.generate_from_scene"
    bl_label = "Generate from Scene"
    generate = True


class VFXMOCAP_OT_cancel_scene_render(bpy.types.Operator):
    """Stop rendering the pass: the scene's settings and frame are put back, the partial pass is removed, nothing
    is inserted or submitted"""

    bl_idname = "vfxmocap.cancel_scene_render"
    bl_label = "Cancel Pass Render"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return scene_render_task.busy()

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene_render_task.cancel_current()
        _redraw_panels(context)
        return {"FINISHED"}


def _check_daemon_and_reference(scene: bpy.types.Scene, mode: str) -> None:
    """UserError if the daemon is not connected, lacks ``mode`` or its weights, or the reference is unusable: the
    job request's own checks, made before rendering (the pass strip the job reads does not exist yet)."""
    info = checked.mode_info(runtime.get().status, mode)
    checked.require_ready(mode, info)
    if strips.reference_spec(scene) is None:
        raise UserError(f"Mode '{mode}' needs a reference image: choose a file or an image strip under Reference")
    if not str(_mode_option(scene, mode, "prompt", "")).strip():
        raise UserError(f"Mode '{mode}' needs a prompt: describe the video under Generate from Scene")


def draw_scene_generate(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Generate from Scene panel: the shot (camera, frames, size), the pass, the mode's options, buttons."""
    scene = context.scene
    settings = scene.vfx_scene_generate
    layout.prop(settings, "control_pass", expand=True)
    _draw_render_task(layout)
    try:
        mode, shot = plan(scene)
    except UserError as exc:
        ui.wrapped(layout, str(exc), icon="ERROR")
        return
    column = layout.column(align=True)
    column.label(text=f"Camera: {shot.camera}", icon="CAMERA_DATA")
    column.label(text=f"Frames {shot.frame_start}-{shot.frame_start + shot.frame_count - 1} ({shot.frame_count})")
    ui.wrapped(column, f"Size {shot.framing.describe()}")
    for note in frame_notes(shot.frame_count, int(_mode_option(scene, mode, "window_frames", 81) or 81)):
        ui.wrapped(column, note, icon="INFO")
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


def _draw_render_task(layout: bpy.types.UILayout) -> None:
    """The running render's progress line and Cancel button, or how the last render ended if it did not finish."""
    task = scene_render_task.current()
    if task is None:
        return
    if task.rendering:
        layout.progress(factor=task.progress, type="BAR", text=task.status_text())
        layout.operator("vfxmocap.cancel_scene_render", text="Cancel (Esc)", icon="CANCEL")
    elif task.state == scene_render_task.FAILED:
        ui.wrapped(layout, task.message, icon="ERROR")
    elif task.state == scene_render_task.CANCELLED:
        ui.wrapped(layout, task.message, icon="CANCEL")


CLASSES = (
    SceneGenerateSettings,
    VFXMOCAP_OT_render_scene_pass,
    VFXMOCAP_OT_generate_from_scene,
    VFXMOCAP_OT_cancel_scene_render,
    *ui.sidebar_panels("scene_generate", "Generate from Scene", draw_scene_generate, closed=True),
)


def register() -> None:
    bpy.types.Scene.vfx_scene_generate = bpy.props.PointerProperty(type=SceneGenerateSettings)


def unregister() -> None:
    scene_render_task.forget()
    del bpy.types.Scene.vfx_scene_generate
