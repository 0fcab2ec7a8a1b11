"""Retargeting accuracy in real Blender, through the Bake operator: rigs posed with known rotations, their
evaluated joints turned into MediaPipe landmarks (of a person 0.9 times the rig's size), baked back, compared.

Known motion with the default settings first: the metarig moved smoothly (every limb, the hips and the head
swinging at 0.2-0.7 Hz for 4 s at 24 fps), its landmarks jittered by a few millimetres as a tracker's are, baked
with the panel's defaults (zero-phase smoothing, root motion on), compared frame by frame.

Then random poses without smoothing. Rigs: Rigify's human metarig, a Mixamo-named FBX-like rig (Y-up,
centimetres, object turned and scaled, bone tails and rolls arbitrary), and a rig Rigify generates from the
metarig (its FK controls driven; its DEF bones, which deform the mesh, compared). Each is baked twice to check
that a second bake replaces the first.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import bpy
import harness
import mocap_common as mc
import numpy as np
from mathutils import Matrix

FRAMES = 48
FRAME_START = 10
PERSON_SCALE = 0.9
MOTION_FRAMES = 96
MOTION_FPS = 24.0
JITTER_M = 0.004
"""Tracker-like noise on the known motion's landmarks (metres)."""
IMAGE_SIZE = (1280, 720)
CAMERA = np.array([0.0, -8.0, 1.0])
"""The known walk's camera: 8 m in front of the metarig, 1 m up, looking along +Y (pinhole, the solver's assumed
field of view)."""
WALK_STEPS, STEP_FRAMES, STEP_HALF_ANGLE_DEG = 6, 12, 20.0


def bake_landmarks(
    addon: Any, obj: Any, world: np.ndarray, folder: Path, job_id: str, image: np.ndarray | None = None
) -> dict[str, Any]:
    """Bake ``world`` landmarks (and ``image`` ones of IMAGE_SIZE frames) onto ``obj`` through the operator,
    twice; what each bake wrote."""
    scene = bpy.context.scene
    job = (
        mc.write_pose_job(folder, world, *IMAGE_SIZE, image=image)
        if image is not None
        else mc.write_pose_job(folder, world)
    )
    mc.add_succeeded_job(scene, job_id, job, FRAME_START)
    scene.vfx_mocap_pose.armature = obj
    out = {}
    for attempt in ("first", "second"):
        before = len(addon.pose.mocap_tasks.finished)
        started = time.monotonic()
        result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id=job_id)
        assert result == {"FINISHED"}, error
        done = mc.wait_for_bake(addon, harness, before)
        channels = mc.action_channels(obj)
        out[attempt] = {
            "seconds": time.monotonic() - started,
            "fcurves": len(channels),
            "keys": int(sum(len(keys) for keys in channels.values())),
            "report_keys": done.report.keys,
            "frames": [done.report.frame_start, done.report.frame_end],
            "bones": sorted({mc.bone_of(path) for path, _ in channels}),
            "actions": len(bpy.data.actions),
        }
    return out


def truth_poses(obj: Any, bone_map: Any, hinges: dict[str, Any], rest_points: dict, names: list[str], seed: int):
    """Pose ``obj`` FRAMES times; (landmarks (N, 33, 3), evaluated rotations of ``names`` (N, len, 3, 3))."""
    rng = np.random.default_rng(seed)
    world, truth = [], []
    for _ in range(FRAMES):
        mc.pose_randomly(obj, bone_map, rng, hinges)
        bpy.context.view_layer.update()
        world.append(mc.landmarks(obj, bone_map, rest_points, PERSON_SCALE))
        truth.append(mc.rotations(obj, names))
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
    return np.array(world), np.array(truth)


def rest_y_axes(obj: Any, names: list[str]) -> np.ndarray:
    return np.array([np.array(obj.data.bones[name].matrix_local.col[1][:3]) for name in names])


def baked_rotations(obj: Any, names: list[str], count: int = FRAMES) -> np.ndarray:
    scene = bpy.context.scene
    out = []
    for frame in range(FRAME_START, FRAME_START + count):
        scene.frame_set(frame)
        out.append(mc.rotations(obj, names))
    return np.array(out)


def errors(truth: np.ndarray, solved: np.ndarray, names: list[str], rest_axes: np.ndarray) -> dict[str, Any]:
    """Angles between the true and the baked turns; ``direction``: between where each bone points (its rest Y
    axis, ``rest_axes`` (len(names), 3), turned), which ignores twist."""
    angles = mc.angle_degrees(truth, solved)
    y_truth, y_solved = truth @ rest_axes[..., None], solved @ rest_axes[..., None]
    directions = np.degrees(np.arccos(np.clip(np.sum(y_truth[..., 0] * y_solved[..., 0], axis=-1), -1, 1)))
    return {
        "mean_deg": float(angles.mean()),
        "max_deg": float(angles.max()),
        "per_bone_mean_deg": dict(zip(names, angles.mean(axis=0).round(3).tolist(), strict=True)),
        "direction_mean_deg": float(directions.mean()),
        "direction_per_bone_mean_deg": dict(zip(names, directions.mean(axis=0).round(3).tolist(), strict=True)),
    }


def rig_case(addon: Any, obj: Any, folder: Path, seed: int, folds: dict[str, np.ndarray]) -> dict[str, Any]:
    rig = addon.pose.armature_io.read_rig(obj)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    rest_points = addon.bridge.retarget.solver.rest_landmarks(rig, bone_map)
    b = bone_map.bones
    hinges = {}
    for side in mc.SIDES:
        hinges[f"forearm.{side}"] = mc.hinge_axis(
            obj, b[f"upper_arm.{side}"], b[f"forearm.{side}"], b[f"hand.{side}"], folds["elbow"]
        )
        hinges[f"shin.{side}"] = mc.hinge_axis(
            obj, b[f"thigh.{side}"], b[f"shin.{side}"], b[f"foot.{side}"], folds["knee"]
        )
    limbs = [b[f"{limb}.{side}"] for side in mc.SIDES for limb in mc.LIMBS]
    world, truth = truth_poses(obj, bone_map, hinges, rest_points, limbs, seed)
    baked = bake_landmarks(addon, obj, world, folder, f"{obj.name.lower()}-accuracy")
    solved = baked_rotations(obj, limbs)
    summary = {
        "map": bone_map.name,
        "driven": bone_map.driven_bones(),
        "limb": errors(truth, solved, limbs, rest_y_axes(obj, limbs)),
        "bakes": baked,
    }
    return summary, world, truth


def known_motion(addon: Any, obj: Any, folder: Path, folds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Move ``obj`` smoothly for MOTION_FRAMES frames (each bone about its own axis, sinusoidally; elbows and knees
    about their hinge), bake its jittered landmarks with the scene's current (default) settings, compare."""
    rig = addon.pose.armature_io.read_rig(obj)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    rest_points = addon.bridge.retarget.solver.rest_landmarks(rig, bone_map)
    b = bone_map.bones
    rng = np.random.default_rng(11)
    times = np.arange(MOTION_FRAMES) / MOTION_FPS
    swings = []
    for role, amplitude in (("hips", 25), ("head", 15), ("upper_arm", 60), ("hand", 30), ("thigh", 35), ("foot", 20)):
        for bone in [b[role]] if role in b else [b[f"{role}.{side}"] for side in mc.SIDES]:
            axis = rng.normal(size=3)
            phase, frequency = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.7)
            angles = math.radians(amplitude) * np.sin(2 * math.pi * frequency * times + phase)
            swings.append((bone, axis / np.linalg.norm(axis), angles))
    for side in mc.SIDES:
        for upper, lower, end, fold in (("upper_arm", "forearm", "hand", "elbow"), ("thigh", "shin", "foot", "knee")):
            hinge = mc.hinge_axis(obj, b[f"{upper}.{side}"], b[f"{lower}.{side}"], b[f"{end}.{side}"], folds[fold])
            phase, frequency = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.7)
            swings.append(
                (b[f"{lower}.{side}"], hinge, np.radians(65 + 30 * np.sin(2 * math.pi * frequency * times + phase)))
            )
    limbs = [b[f"{limb}.{side}"] for side in mc.SIDES for limb in mc.LIMBS]
    world, truth = [], []
    for frame in range(MOTION_FRAMES):
        for bone, axis, angles in swings:
            mc.set_rotation(obj, bone, Matrix.Rotation(float(angles[frame]), 3, axis.tolist()))
        bpy.context.view_layer.update()
        world.append(mc.landmarks(obj, bone_map, rest_points, PERSON_SCALE) + rng.normal(scale=JITTER_M, size=(33, 3)))
        truth.append(mc.rotations(obj, limbs))
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
    bake_landmarks(addon, obj, np.array(world), folder, "metarig-known-motion")
    solved = baked_rotations(obj, limbs, MOTION_FRAMES)
    settings = bpy.context.scene.vfx_mocap_pose
    obj.animation_data_clear()  # the cases after this one start from an unanimated metarig at rest
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion, pose_bone.location = (1, 0, 0, 0), (0, 0, 0)
    bpy.context.scene.frame_set(1)
    return {
        "frames": MOTION_FRAMES,
        "fps": bpy.context.scene.render.fps / bpy.context.scene.render.fps_base,
        "smoothing": settings.use_smoothing,
        "root_motion": settings.root_motion,
        "limb": errors(np.array(truth), solved, limbs, rest_y_axes(obj, limbs)),
    }


def camera_view(addon: Any, points: np.ndarray) -> np.ndarray:
    """Normalised image landmarks (..., 3) of Blender points (metres) seen by CAMERA."""
    camera = addon.bridge.retarget.frames.blender_to_mediapipe(points - CAMERA)
    focal = addon.bridge.retarget.root_motion.focal_px(IMAGE_SIZE[0])
    u = IMAGE_SIZE[0] / 2 + focal * camera[..., 0] / camera[..., 2]
    v = IMAGE_SIZE[1] / 2 + focal * camera[..., 1] / camera[..., 2]
    return np.stack([u / IMAGE_SIZE[0], v / IMAGE_SIZE[1], np.zeros_like(u)], axis=-1)


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    return np.array(Matrix.Rotation(angle, 3, axis.tolist()))


def known_walk(addon: Any, obj: Any, folder: Path) -> dict[str, Any]:
    """Walk ``obj`` (the metarig) with straight legs towards the camera and 30 degrees to the side, each stance
    foot staying exactly where it landed while the leg pivots over it (easing in and out of each step), feet level;
    bake what the camera sees with the default settings; compare where the baked feet and hips go."""
    rig = addon.pose.armature_io.read_rig(obj)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    rest_points = addon.bridge.retarget.solver.rest_landmarks(rig, bone_map)
    b = bone_map.bones
    bones = obj.data.bones
    rest = {name: np.array(bones[name].matrix_local.to_3x3()) for name in b.values()}
    head = {name: np.array(bones[name].head_local) for name in b.values()}
    direction = np.array([math.sin(math.radians(30)), -math.cos(math.radians(30)), 0.0])
    axis = np.cross(direction, [0.0, 0.0, 1.0])
    half = math.radians(STEP_HALF_ANGLE_DEG)
    hip = {side: head[b[f"thigh.{side}"]] for side in mc.SIDES}
    ankle = {side: head[b[f"foot.{side}"]] for side in mc.SIDES}
    leg = {side: hip[side] - ankle[side] for side in mc.SIDES}
    planted = dict(ankle)
    planted["R"] = ankle["R"] + np.linalg.norm(leg["R"]) * math.sin(half) * direction
    stance_sides, world, image, hips_true = [], [], [], []
    for step in range(WALK_STEPS):
        stance, swing = ("R", "L") if step % 2 == 0 else ("L", "R")
        for frame in range(STEP_FRAMES):
            theta = half * math.cos(math.pi * frame / STEP_FRAMES)
            offset = planted[stance] + axis_angle(axis, theta) @ leg[stance] - hip[stance]
            for pose_bone in obj.pose.bones:
                pose_bone.rotation_mode = "QUATERNION"
                pose_bone.rotation_quaternion, pose_bone.location = (1, 0, 0, 0), (0, 0, 0)
            obj.pose.bones[b["hips"]].location = (rest[b["hips"]].T @ offset).tolist()
            for side, angle in ((stance, theta), (swing, -theta)):
                turn = axis_angle(axis, angle)
                for role, basis in (("thigh", turn), ("foot", turn.T)):
                    bone = b[f"{role}.{side}"]
                    local = Matrix((rest[bone].T @ basis @ rest[bone]).tolist())
                    obj.pose.bones[bone].rotation_quaternion = local.to_quaternion()
            bpy.context.view_layer.update()
            landmarks = mc.landmarks(obj, bone_map, rest_points, 1.0)
            hips_now = (np.array(obj.pose.bones[b["thigh.L"]].head) + np.array(obj.pose.bones[b["thigh.R"]].head)) / 2
            world.append(landmarks)
            image.append(camera_view(addon, addon.bridge.retarget.frames.mediapipe_to_blender(landmarks) + hips_now))
            hips_true.append(hips_now)
            stance_sides.append(stance)
        end = planted[stance] + axis_angle(axis, -half) @ leg[stance] - hip[stance]
        planted[swing] = end + hip[swing] - axis_angle(axis, half) @ leg[swing]
        planted[swing][2] = ankle[swing][2]
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion, pose_bone.location = (1, 0, 0, 0), (0, 0, 0)
    bake_landmarks(addon, obj, np.array(world), folder, "metarig-known-walk", np.array(image))
    count = len(world)
    heel, hips_baked = {side: [] for side in mc.SIDES}, []
    for frame in range(count):
        bpy.context.scene.frame_set(FRAME_START + frame)
        for side, word in mc.SIDES.items():
            pose_bone = obj.pose.bones[b[f"foot.{side}"]]
            local = pose_bone.bone.matrix_local.inverted() @ Matrix.Translation(rest_points[f"{word}_heel"].tolist())
            heel[side].append(np.array((pose_bone.matrix @ local).to_translation()))
        hips_baked.append(
            (np.array(obj.pose.bones[b["thigh.L"]].head) + np.array(obj.pose.bones[b["thigh.R"]].head)) / 2
        )
    drift = []
    for side in mc.SIDES:
        on_floor = np.array([s == side for s in stance_sides])
        for start, end in addon.bridge.retarget.feet.spans(on_floor):
            places = np.array(heel[side][start + 1 : end - 1])  # a contact is seen from its second frame
            drift.append(float(np.linalg.norm(places - places[0], axis=-1).max()))
    truth = np.array(hips_true) - hips_true[0]
    baked = np.array(hips_baked) - hips_baked[0]
    obj.animation_data_clear()
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion, pose_bone.location = (1, 0, 0, 0), (0, 0, 0)
    bpy.context.scene.frame_set(1)
    return {
        "frames": count,
        "planted_drift_m": drift,
        "path_m": float(np.linalg.norm(np.diff(truth, axis=0), axis=-1).sum()),
        "towards_camera_m": float(-truth[-1, 1]),
        "root_error_m": float(np.linalg.norm(baked - truth, axis=-1).max()),
    }


def exit_without_teardown(result: Path) -> None:
    """Blender 4.5 as a Python module hangs in its C++ teardown, after Python has finished, once Rigify has
    generated a rig. Leave at the end of Python's own shutdown instead, with the scenario's exit status (its
    record, already written, holds a traceback when it failed)."""
    failed = "traceback" in json.loads(result.read_text() or "{}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    folder = Path(args.data_dir)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(MOTION_FPS), 1.0
    metarig = mc.add_metarig()
    folds = {"elbow": np.array([0.0, -1.0, 0.0]), "knee": np.array([0.0, 1.0, 0.0])}
    scene.vfx_mocap_pose.armature = metarig
    record["known_motion"] = known_motion(addon, metarig, folder / "known-motion", folds)
    record["known_walk"] = known_walk(addon, metarig, folder / "known-walk")

    scene.vfx_mocap_pose.use_smoothing = False  # random poses per frame are not a motion to smooth
    scene.vfx_mocap_pose.root_motion = False
    bpy.ops.object.mode_set(mode="OBJECT")
    started = time.monotonic()
    bpy.context.view_layer.objects.active = metarig
    bpy.ops.pose.rigify_generate()
    if bpy.app.version < (5, 0, 0):
        atexit.register(exit_without_teardown, args.result)
    generated = bpy.data.objects["rig"]
    record["generate_s"] = time.monotonic() - started

    record["metarig"], world, truth = rig_case(addon, metarig, folder / "metarig", 1, folds)

    # The generated rig deforms through its DEF bones, which follow the FK controls the map drives: compare
    # them with the metarig's bones (the generated rig has the metarig's rest pose).
    def_names = [f"DEF-{limb}.{side}" for side in mc.SIDES for limb in mc.LIMBS]
    generated_rig = addon.pose.armature_io.read_rig(generated)
    generated_map = addon.bridge.retarget.bone_maps.detect_map(generated_rig)
    baked = bake_landmarks(addon, generated, world, folder / "generated", "generated-accuracy")
    solved = baked_rotations(generated, def_names)
    record["generated"] = {
        "map": generated_map.name,
        "driven": generated_map.driven_bones(),
        "switches": {f"{s.bone}[{s.prop}]": generated.pose.bones[s.bone][s.prop] for s in generated_map.switches},
        "def": errors(truth, solved, def_names, rest_y_axes(generated, def_names)),
        "bakes": baked,
    }

    mixamo = mc.add_mixamo_rig("mixamorig:")
    fbx_folds = {"elbow": np.array([0.0, 0.0, 1.0]), "knee": np.array([0.0, 0.0, -1.0])}  # -Y and +Y of Z-up, Y-up
    record["mixamo"], _, _ = rig_case(addon, mixamo, folder / "mixamo", 2, fbx_folds)
    record["detected_panels"] = mc.draw_panels()
    record["presets"] = presets(addon, mixamo, folder / "presets")
    record["rebake_fewer_bones"] = rebake_with_fewer_bones(addon, mixamo)
    record["renamed_during_bake"] = rename_during_bake(addon, mixamo, metarig)
    record["bad_switches"] = bad_switches(addon, mixamo)


def presets(addon: Any, obj: Any, folder: Path) -> dict[str, Any]:
    """Edit the detected map as a custom one, save it as a preset, break it, load the preset back."""
    bpy.context.scene.vfx_mocap_pose.armature = obj
    state = obj.vfx_mocap_map
    detected = state.bone_map(addon.pose.armature_io.read_rig(obj))
    result, error = harness.operator_report(bpy.ops.vfxmocap.bone_map_edit)
    assert result == {"FINISHED"}, error
    rig = addon.pose.armature_io.read_rig(obj)
    edited = state.bone_map(rig)
    out: dict[str, Any] = {
        "source_after_edit": state.source,
        "entries": len(state.entries),
        "edit_keeps_the_map": edited.to_dict() == detected.to_dict(),
        "custom_panels": mc.draw_panels(),
    }
    path = folder / "mixamo.json"
    result, error = harness.operator_report(bpy.ops.vfxmocap.bone_map_save_preset, filepath=str(path))
    assert result == {"FINISHED"}, error
    out["saved"] = json.loads(path.read_text())
    state.entries["forearm.L"].bone = ""
    state.entries["anchor:index.L"].bone = ""
    out["broken_lacks"] = sorted(set(detected.driven_bones()) - set(state.bone_map(rig).driven_bones()))
    result, error = harness.operator_report(bpy.ops.vfxmocap.bone_map_load_preset, filepath=str(path))
    assert result == {"FINISHED"}, error
    out["restored"] = state.bone_map(rig).to_dict() == detected.to_dict()
    path.write_text('{"format": "vfx-mocap-bone-map", "version": 1, "name": "x", "bones": {"elbow.L": "a"}}')
    result, error = harness.operator_report(bpy.ops.vfxmocap.bone_map_load_preset, filepath=str(path))
    out["bad_preset"] = {"result": sorted(result or ()), "error": error}
    return out


def rebake_with_fewer_bones(addon: Any, obj: Any) -> dict[str, Any]:
    """Bake again with the custom map no longer driving the left forearm and hand: their keys in the baked range
    go (a forearm key after the range stays), and the hand, left without keys, goes back to rest."""
    state = obj.vfx_mocap_map
    forearm, hand = state.entries["forearm.L"].bone, state.entries["hand.L"].bone
    after_range = FRAME_START + FRAMES + 20
    obj.pose.bones[forearm].keyframe_insert("rotation_quaternion", frame=after_range)
    state.entries["forearm.L"].bone = state.entries["hand.L"].bone = ""
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="mixamo-accuracy")
    assert result == {"FINISHED"}, error
    done = mc.wait_for_bake(addon, harness, before)
    channels = mc.action_channels(obj)
    in_range = {
        mc.bone_of(path)
        for (path, _), keys in channels.items()
        if ((keys[:, 0] >= FRAME_START) & (keys[:, 0] < FRAME_START + FRAMES)).any()
    }
    out = {
        "driven": sorted(done.report.bones),
        "keyed_in_range": sorted(in_range),
        "forearm": forearm,
        "forearm_frames": sorted(
            {float(k) for (p, _), keys in channels.items() if mc.bone_of(p) == forearm for k in keys[:, 0]}
        ),
        "after_range": after_range,
        "hand_fcurves": sum(mc.bone_of(path) == hand for path, _ in channels),
        "hand_rotation": list(obj.pose.bones[hand].rotation_quaternion),
        "record": json.loads(obj.animation_data.action[addon.pose.bake.BAKED_PROP]),
    }
    state.entries["forearm.L"].bone, state.entries["hand.L"].bone = forearm, hand
    return out


def rename_during_bake(addon: Any, mixamo: Any, metarig: Any) -> dict[str, Any]:
    """Queue a metarig bake and a Mixamo one, and rename a bone the Mixamo map drives while they are solved: the
    metarig is baked, the Mixamo bake fails with its reason in the panel, and with the name back it bakes."""
    scene = bpy.context.scene
    tasks = addon.pose.mocap_tasks
    forearm = "mixamorig:LeftForeArm"
    before = len(tasks.finished)
    for obj, job_id in ((metarig, "metarig-accuracy"), (mixamo, "mixamo-accuracy")):
        scene.vfx_mocap_pose.armature = obj
        result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id=job_id)
        assert result == {"FINISHED"}, error
    mixamo.data.bones[forearm].name = forearm + ".renamed"

    def both_done() -> bool:
        tasks.tick()
        return len(tasks.finished) >= before + 2

    harness.pump_until(addon, both_done, "the two bakes")
    first, failed = tasks.finished[before], tasks.finished[before + 1]
    out = {
        "first": {"armature": first.armature, "baked": first.report is not None},
        "failed": {"armature": failed.armature, "baked": failed.report is not None, "error": failed.error},
        "last_error": addon.common.runtime.get().last_error,
        "panel": mc.draw_panels(("_posetoarmature",))["labels"],
        "busy": tasks.busy(),
    }
    mixamo.data.bones[forearm + ".renamed"].name = forearm
    before = len(tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="mixamo-accuracy")
    assert result == {"FINISHED"}, error
    again = mc.wait_for_bake(addon, harness, before)
    out["again"] = {"baked": again.report is not None, "bones": len(again.report.bones)}
    return out


def bad_switches(addon: Any, obj: Any) -> dict[str, Any]:
    """The custom map's switches as text that is not JSON, then as JSON of the wrong shape: the Bake operator
    reports which field is wrong and how to write it."""
    state = obj.vfx_mocap_map
    out = {}
    for case, text in (("not_json", '[["torso", "IK_FK", 1.0]'), ("wrong_shape", '[["torso", "IK_FK"]]')):
        state.switches_json = text
        result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="mixamo-accuracy")
        out[case] = {
            "result": sorted(result or ()),
            "error": error,
            "last_error": addon.common.runtime.get().last_error,
        }
    state.switches_json = "[]"
    return out


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(), main)
