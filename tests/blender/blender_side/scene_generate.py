"""Control passes from a Blender scene, and Generate from Scene through the daemon's tiny VACE model.

``--phase passes``: a Rigify human metarig with a known animation, a camera (with lens shift) and boxes at known
distances; renders the pose, depth and layout passes with the add-on's operator and records, for each frame, where
``bpy_extras.object_utils.world_to_camera_view`` puts the evaluated bones (the reference the pose pass is checked
against), where the boxes are, and what the operator reports for a scene without camera, without armature, and
with an armature no bone map recognises.

``--phase generated``: the metarig generated into a Rigify rig (metarig hidden from renders), its left hand moved by
the IK control and its torso by the torso control; records the pose pass and where ``world_to_camera_view`` puts
the heads of the rig's deforming (DEF-) bones.

``--phase generate``: the same scene, the add-on connected to a daemon started by the test (``--connection-file``);
Generate from Scene with the pose pass (vace_pose) and with the depth pass (vace_motion), both followed to their
end and inserted, recording the strips and jobs.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import harness
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

FRAME_START, FRAME_END = 3, 12
"""The shot: 10 frames, not a 4k+1 count, starting after frame 1 so "the shot's frames" means something."""
SCENE_RESOLUTION = (640, 360)
BOXES = {"near_box": (-2.2, -1.0, 0.5), "middle_box": (2.2, 3.0, 0.5), "far_wall": (0.0, 9.0, 1.5)}
"""Object name -> location; the camera looks along +Y from y = -8, so their distances are 7, 11 and 17."""
OCCLUDER = (0.0, -2.0, 0.25)
"""A low box between the camera and the rig's feet: it hides the ankles, not the knees."""
JOINT_BONES = {
    "right_shoulder": "upper_arm.R",
    "right_elbow": "forearm.R",
    "right_wrist": "hand.R",
    "left_shoulder": "upper_arm.L",
    "left_elbow": "forearm.L",
    "left_wrist": "hand.L",
    "right_hip": "thigh.R",
    "right_knee": "shin.R",
    "right_ankle": "foot.R",
    "left_hip": "thigh.L",
    "left_knee": "shin.L",
    "left_ankle": "foot.L",
}
"""OpenPose keypoint -> the metarig bone at whose head the pose pass must draw it: the test's own statement of the
convention, kept apart from the add-on's ``body_joints.BODY_ROLES`` so that a wrong entry there (a swapped side,
an elbow for a wrist) fails the pose-pass tests instead of moving the reference with it."""


def build_scene() -> tuple[bpy.types.Object, bpy.types.Object]:
    """The test scene: (rig, camera)."""
    import addon_utils

    scene = bpy.context.scene
    for obj in list(scene.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.active_object
    rig.name = "Hero"
    bpy.ops.object.mode_set(mode="POSE")
    arm = rig.pose.bones["upper_arm.L"]
    spine = rig.pose.bones["spine"]
    arm.rotation_mode = "XYZ"
    for frame, angle, x in ((FRAME_START, 0.0, -0.4), (FRAME_END, 1.2, 0.4)):
        arm.rotation_euler = (0.0, 0.0, angle)
        arm.keyframe_insert("rotation_euler", frame=frame)
        spine.location = (x, 0.0, 0.0)
        spine.keyframe_insert("location", frame=frame)
    bpy.ops.object.mode_set(mode="OBJECT")

    camera = scene.camera
    camera.location = (0.0, -8.0, 1.0)
    camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    camera.data.lens = 30.0
    camera.data.shift_x = 0.05
    camera.data.shift_y = 0.03
    for name, location in {**BOXES, "occluder": OCCLUDER}.items():
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
        box = bpy.context.active_object
        box.name = name
        if name == "far_wall":
            box.scale = (12.0, 0.2, 6.0)
        elif name == "occluder":
            box.scale = (3.0, 0.2, 0.5)
        else:
            box.scale = (0.8, 0.8, 0.8)
    scene.render.resolution_x, scene.render.resolution_y = SCENE_RESOLUTION
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 40
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = FRAME_START, FRAME_END
    return rig, camera


def reference_points(
    rig: bpy.types.Object, camera: bpy.types.Object, framing: Any, bone_prefix: str = ""
) -> dict[str, Any]:
    """Per frame: the head of every joint's bone (``bone_prefix`` + the metarig's name) through
    ``world_to_camera_view``, at the pass's render size, in pixels of the generation frame; and the boxes' centres
    the same way."""
    scene = bpy.context.scene
    saved = scene.render.resolution_x, scene.render.resolution_y
    scene.render.resolution_x, scene.render.resolution_y = framing.render_size
    frames = []
    try:
        for frame in range(FRAME_START, FRAME_END + 1):
            scene.frame_set(frame)
            depsgraph = bpy.context.evaluated_depsgraph_get()
            evaluated = rig.evaluated_get(depsgraph)
            points = {}
            for joint, bone in JOINT_BONES.items():
                world = evaluated.matrix_world @ evaluated.pose.bones[bone_prefix + bone].head
                points[joint] = to_pixels(world_to_camera_view(scene, camera, world), framing)
            frames.append({"frame": frame, "joints": points})
        boxes = {
            name: to_pixels(world_to_camera_view(scene, camera, Vector(location)), framing)
            for name, location in {**BOXES, "occluder": OCCLUDER}.items()
        }
    finally:
        scene.render.resolution_x, scene.render.resolution_y = saved
    return {"frames": frames, "boxes": boxes}


def to_pixels(view: Vector, framing: Any) -> list[float]:
    """``world_to_camera_view`` coordinates (0..1 from the bottom left) to pixels of the cropped frame, y down."""
    width, height = framing.render_size
    return [view.x * width - framing.left, (1.0 - view.y) * height - framing.top, view.z]


def pass_strip(addon: ModuleType, pass_name: str) -> Any:
    editor = bpy.context.scene.sequence_editor
    strips = [
        s
        for s in addon.common.compat.all_strips(editor)
        if s.get("vfx_scene_pass") == pass_name and not s.get("vfx_job_id")
    ]
    assert len(strips) == 1, f"expected one {pass_name} pass strip, found {len(strips)}"
    return strips[0]


def strip_record(addon: ModuleType, strip: Any) -> dict[str, Any]:
    return {
        "name": strip.name,
        "channel": strip.channel,
        "frame_start": addon.common.compat.timing(strip, "left_handle"),
        "duration": addon.common.compat.timing(strip, "duration"),
        "directory": bpy.path.abspath(strip.directory),
        "files": [element.filename for element in strip.elements],
        "props": {key: value for key, value in strip.items() if key.startswith("vfx_")},
    }


def error_of(operator: Any) -> str:
    result, error = harness.operator_report(operator)
    assert result is None, f"expected an error, got {result}"
    return error


def passes_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir)
    scene = bpy.context.scene
    rig, camera = build_scene()
    settings = scene.vfx_scene_generate
    bpy.ops.vfxmocap.choose_mode(mode="vace_pose")  # no daemon: the mode has no options, so quality is standard
    _mode, shot = addon.generate.scene_generate.plan(scene)
    framing = shot.framing
    record["framing"] = {
        "width": framing.width,
        "height": framing.height,
        "render_size": list(framing.render_size),
        "left": framing.left,
        "top": framing.top,
    }
    record["reference"] = reference_points(rig, camera, framing)
    scene.frame_set(1)
    record["panel"] = harness.draw_panel(addon.generate.scene_generate.draw_scene_generate)
    record["render_engine_before"] = scene.render.engine
    record["strips"] = {}
    for pass_name in ("pose", "depth", "layout"):
        settings.control_pass = pass_name
        result, error = harness.operator_report(bpy.ops.vfxmocap.render_scene_pass)
        assert result == {"FINISHED"}, error
        record["strips"][pass_name] = strip_record(addon, pass_strip(addon, pass_name))
    record["frame_after"] = scene.frame_current
    record["render_engine_after"] = scene.render.engine
    record["resolution_after"] = [scene.render.resolution_x, scene.render.resolution_y]

    record["render_task"] = render_task_checks(addon, scene)

    settings.control_pass = "pose"
    record["errors"] = {}
    rig.data.bones["upper_arm.L"].name = "arm_upper_left"  # a rig no built-in map recognises any more
    record["errors"]["unrecognised"] = error_of(bpy.ops.vfxmocap.render_scene_pass)
    bpy.data.objects.remove(rig)
    record["errors"]["no_armature"] = error_of(bpy.ops.vfxmocap.render_scene_pass)
    scene.camera = None
    record["errors"]["no_camera"] = error_of(bpy.ops.vfxmocap.render_scene_pass)
    record["errors"]["no_camera_generate"] = error_of(bpy.ops.vfxmocap.generate_from_scene)
    record["panel_without_camera"] = harness.draw_panel(addon.generate.scene_generate.draw_scene_generate)


CANCEL_AFTER = 3
"""Frames the render task steps through before it is cancelled."""


def render_settings(scene: bpy.types.Scene) -> dict[str, Any]:
    """The scene's settings a pass render switches, as they are now."""
    render = scene.render
    return {
        "engine": render.engine,
        "resolution": [render.resolution_x, render.resolution_y],
        "frame": scene.frame_current,
        "use_sequencer": render.use_sequencer,
        "use_compositing": render.use_compositing,
        "file_format": render.image_settings.file_format,
        "filepath": render.filepath,
        "use_pass_z": bpy.context.view_layer.use_pass_z,
    }


def strip_count(addon: ModuleType, scene: bpy.types.Scene) -> int:
    return len(addon.common.compat.all_strips(scene.sequence_editor)) if scene.sequence_editor else 0


def step_then_cancel(addon: ModuleType, scene: bpy.types.Scene, generate: bool) -> dict[str, Any]:
    """Start Render Pass (or Generate from Scene) through the task its modal operator steps, render
    CANCEL_AFTER frames, record the scene and the panel meanwhile, press the panel's Cancel, record again."""
    record: dict[str, Any] = {"before": render_settings(scene), "strips_before": strip_count(addon, scene)}
    task = addon.generate.scene_generate.start_render(scene, generate=generate)
    folder = task.render.rendered.folder
    record["folder"] = str(folder)
    record["ended_early"] = [task.step() for _ in range(CANCEL_AFTER)]
    record["during"] = render_settings(scene)
    record["files_during"] = sorted(path.name for path in folder.iterdir())
    record["panel_during"] = harness.draw_panel(addon.generate.scene_generate.draw_scene_generate)
    record["second_render"] = error_of(bpy.ops.vfxmocap.render_scene_pass)
    result, error = harness.operator_report(bpy.ops.vfxmocap.cancel_scene_render)
    assert result == {"FINISHED"}, error
    record["after"] = render_settings(scene)
    record["strips_after"] = strip_count(addon, scene)
    record["folder_after"] = folder.exists()
    record["state"], record["message"] = task.state, task.message
    record["step_after_cancel"] = task.step()
    record["frames_after_cancel"] = task.render.frames_rendered
    record["panel_after"] = harness.draw_panel(addon.generate.scene_generate.draw_scene_generate)
    return record


def render_task_checks(addon: ModuleType, scene: bpy.types.Scene) -> dict[str, Any]:
    """Render Pass through its task: cancelled part way; to the end; failing part way; invoked in background."""
    settings = scene.vfx_scene_generate
    settings.control_pass = "pose"
    scene.frame_set(1)
    record: dict[str, Any] = {"cancelled": step_then_cancel(addon, scene, generate=False)}

    strips_before = strip_count(addon, scene)
    task = addon.generate.scene_generate.start_render(scene, generate=False)
    while not task.step():
        pass
    record["complete"] = {
        "state": task.state,
        "progress_seen": task.progress_seen,
        "strips_added": strip_count(addon, scene) - strips_before,
        "after": render_settings(scene),
    }

    # The depth pass of a camera looking at the empty sky fails once every frame is rendered.
    camera = scene.camera
    saved_rotation = tuple(camera.rotation_euler)
    camera.rotation_euler = (math.radians(180.0), 0.0, 0.0)
    settings.control_pass = "depth"
    strips_before = strip_count(addon, scene)
    task = addon.generate.scene_generate.start_render(scene, generate=False)
    folder = task.render.rendered.folder
    while not task.step():
        pass
    record["failed"] = {
        "state": task.state,
        "message": task.message,
        "strips_added": strip_count(addon, scene) - strips_before,
        "folder_after": folder.exists(),
        "after": render_settings(scene),
        "panel": harness.draw_panel(addon.generate.scene_generate.draw_scene_generate),
        "last_error": addon.common.runtime.get().last_error,
    }
    camera.rotation_euler = saved_rotation

    settings.control_pass = "layout"
    strips_before = strip_count(addon, scene)
    result = bpy.ops.vfxmocap.render_scene_pass("INVOKE_DEFAULT")  # background mode: renders it all at once
    record["invoked"] = {"result": sorted(result), "strips_added": strip_count(addon, scene) - strips_before}
    return record


def generated_rig_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir)
    scene = bpy.context.scene
    metarig, camera = build_scene()
    metarig.animation_data_clear()
    for bone in metarig.pose.bones:  # Rigify builds a broken deform chain from a metarig that is not at rest
        bone.location, bone.rotation_euler, bone.rotation_quaternion = (0, 0, 0), (0, 0, 0), (1, 0, 0, 0)
    bpy.context.view_layer.objects.active = metarig
    before = set(bpy.data.objects)
    bpy.ops.pose.rigify_generate()
    if bpy.app.version < (5, 0, 0):
        atexit.register(exit_without_teardown, args.result)
    metarig.hide_render = True  # as an artist leaves it: the generated rig is the one that renders
    (rig,) = (obj for obj in set(bpy.data.objects) - before if obj.type == "ARMATURE")
    record["rig"] = rig.name
    rig.pose.bones["upper_arm_parent.L"]["IK_FK"] = 0.0  # the IK control moves the arm; the FK controls stay
    for limb in ("upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"):
        rig.pose.bones[limb]["IK_FK"] = 1.0  # FK: they follow the torso
    hand, torso = rig.pose.bones["hand_ik.L"], rig.pose.bones["torso"]
    for frame, lift, x in ((FRAME_START, 0.0, -0.4), (FRAME_END, 0.5, 0.4)):
        hand.location = (lift, 0.0, lift)  # across the hand bone (its local Y), so the wrist follows
        hand.keyframe_insert("location", frame=frame)
        torso.location = (x, 0.0, 0.0)
        torso.keyframe_insert("location", frame=frame)
    _mode, shot = addon.generate.scene_generate.plan(scene)
    record["reference"] = reference_points(rig, camera, shot.framing, bone_prefix="DEF-")
    scene.frame_set(1)
    result, error = harness.operator_report(bpy.ops.vfxmocap.render_scene_pass)
    assert result == {"FINISHED"}, error
    record["pose"] = strip_record(addon, pass_strip(addon, "pose"))


def exit_without_teardown(result: Path) -> None:
    """Blender 4.5 as a Python module hangs in its C++ teardown once Rigify has generated a rig (see
    ``mocap_accuracy.py``): leave at the end of Python's own shutdown, with the scenario's exit status."""
    failed = "traceback" in json.loads(result.read_text() or "{}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)


def generate_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir, connection_file=args.connection_file)
    rt = harness.start_daemon(addon)
    scene = bpy.context.scene
    build_scene()
    state = scene.vfx_mocap
    state.reference_source = "FILE"
    state.reference_path = args.reference
    options = json.loads(args.options)
    for mode in ("vace_pose", "vace_motion"):
        bpy.ops.vfxmocap.choose_mode(mode=mode)
        params = {param.name: param for param in state.mode_params(mode)}
        for name, value in options.items():
            params[name].set_value(value)
    settings = scene.vfx_scene_generate
    settings.control_pass = "pose"
    jobs_before = len(state.jobs)
    record["cancelled"] = step_then_cancel(addon, scene, generate=True)
    record["cancelled"]["jobs_added"] = len(state.jobs) - jobs_before
    record["jobs"] = {}
    for pass_name in ("pose", "depth"):
        settings.control_pass = pass_name
        result, error = harness.operator_report(bpy.ops.vfxmocap.generate_from_scene)
        assert result == {"FINISHED"}, error
        job_id = state.jobs[0].name
        harness.pump_until(addon, lambda job_id=job_id: state.jobs[job_id].is_final, f"the {pass_name} job", 180)
        job = state.jobs[job_id]
        harness.pump_until(addon, lambda job=job: bool(job.result_strip) or job.state != "succeeded", "the insert")
        editor = scene.sequence_editor
        record["jobs"][pass_name] = {
            "id": job_id,
            "mode": job.mode,
            "state": job.state,
            "error": job.error,
            "output_dir": job.output_dir,
            "params": job.params,
            "strip_props": json.loads(job.strip_props_json),
            "source_strip": job.source_strip,
            "pass": strip_record(addon, addon.common.compat.all_strips(editor)[job.source_strip]),
            "result": strip_record(addon, addon.common.compat.all_strips(editor)[job.result_strip])
            if job.result_strip
            else None,
        }
        record["jobs"][pass_name]["last_error"] = rt.last_error


PHASES = {"passes": passes_phase, "generated": generated_rig_phase, "generate": generate_phase}


def main() -> None:
    args = harness.parse_args(
        ("--phase", {"choices": tuple(PHASES), "required": True}),
        ("--connection-file", {"default": ""}),
        ("--reference", {"default": ""}),
        ("--options", {"default": "{}"}),
    )
    harness.run_scenario(args, PHASES[args.phase])


if __name__ == "__main__":
    main()
