"""Hands and face in real Blender, through the Bake operator.

1. Fingers: a Rigify metarig whose fingers are posed with known curls (about each bone's X axis) and knuckle spreads
   (about Z), its joints turned into a pose job's hand landmarks (image coordinates, as the pose mode writes them),
   baked back and compared bone by bone.
2. The real sample video through the daemon with hands and face: a metarig and a mesh with three ARKit-named shape
   keys and one other, baked from the movie strip in one pass.
3. Live: the same video standing in for a camera drives a fresh metarig's fingers and a fresh mesh's shape keys,
   and a recording writes both; then the body alone, for the latency comparison.
"""

from __future__ import annotations

import argparse
import atexit
import sys
import time
from pathlib import Path
from typing import Any

import bpy
import harness
import mocap_common as mc
import numpy as np
from mathutils import Matrix
from mocap_accuracy import exit_without_teardown
from mocap_live import pump_live

FRAMES = 16
FRAME_START = 10
WIDTH, HEIGHT, PIXELS_PER_METRE = 640, 480, 1000.0
STRIP_START = 5
FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def finger_bones(side: str) -> list[str]:
    names = {f: f if f == "thumb" else f"f_{f}" for f in FINGERS}
    return [f"{names[f]}.0{k}.{side}" for f in FINGERS for k in (1, 2, 3)]


def hand_points(obj: Any, side: str) -> np.ndarray:
    """(21, 3) world positions of the posed hand in MediaPipe's order: wrist, then each finger knuckle to tip."""
    world = obj.matrix_world
    bones = finger_bones(side)
    out = [np.array(world @ obj.pose.bones[f"hand.{side}"].head)]
    for f in range(5):
        chain = [obj.pose.bones[name] for name in bones[3 * f : 3 * f + 3]]
        out += [np.array(world @ b.head) for b in chain] + [np.array(world @ chain[-1].tail)]
    return np.array(out)


def to_image(points: np.ndarray, frames: Any) -> np.ndarray:
    """World points (..., 3) in metres to image landmarks of a WIDTH x HEIGHT frame seen from the front."""
    mp = frames.blender_to_mediapipe(points) * PIXELS_PER_METRE
    return (mp / np.array([WIDTH, HEIGHT, WIDTH]) + np.array([0.5, 0.5, 0.0])).astype(np.float32)


def fingers_case(addon: Any, folder: Path) -> dict[str, Any]:
    frames = addon.bridge.retarget.frames
    scene = bpy.context.scene
    obj = mc.add_metarig()
    bpy.ops.object.mode_set(mode="OBJECT")
    rig = addon.pose.armature_io.read_rig(obj)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    finger_map = addon.bridge.retarget.finger_maps.detect_finger_map(rig, bone_map)
    rest_points = addon.bridge.retarget.solver.rest_landmarks(rig, bone_map)
    names = finger_bones("L") + finger_bones("R")
    rng = np.random.default_rng(7)
    world, hands, truth = [], [], []
    for _ in range(FRAMES):
        for pose_bone in obj.pose.bones:
            pose_bone.rotation_mode = "QUATERNION"
            pose_bone.rotation_quaternion = (1, 0, 0, 0)
        for name in names:
            curl = Matrix.Rotation(np.radians(rng.uniform(0, 60)), 3, "X")
            spread = Matrix.Rotation(np.radians(rng.uniform(-12, 12)), 3, "Z") if ".01." in name else Matrix.Identity(3)
            mc.set_rotation(obj, name, spread @ curl)
        bpy.context.view_layer.update()
        world.append(mc.landmarks(obj, bone_map, rest_points, 1.0))
        hands.append([to_image(hand_points(obj, side), frames) for side in ("L", "R")])
        truth.append(mc.rotations(obj, names))
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
    job_dir = mc.write_pose_job(folder, np.array(world), WIDTH, HEIGHT)
    np.save(job_dir / "arrays" / "hand_landmarks.npy", np.array(hands, dtype=np.float32))
    np.save(job_dir / "arrays" / "hand_present.npy", np.ones((FRAMES, 2), dtype=bool))
    mc.add_succeeded_job(scene, "fingers", job_dir, FRAME_START)
    scene.vfx_mocap_pose.armature = obj
    scene.vfx_mocap_parts.use_hands = True
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="fingers")
    assert result == {"FINISHED"}, error
    done = mc.wait_for_bake(addon, harness, before)
    solved = []
    for frame in range(FRAME_START, FRAME_START + FRAMES):
        scene.frame_set(frame)
        solved.append(mc.rotations(obj, names))
    angles = mc.angle_degrees(np.array(truth), np.array(solved))
    keyed = sorted({mc.bone_of(path) for path, _ in mc.action_channels(obj)})
    out = {
        "finger_map": finger_map.name,
        "mean_deg": float(angles.mean()),
        "max_deg": float(angles.max()),
        "per_bone_mean_deg": dict(zip(names, angles.mean(axis=0).round(2).tolist(), strict=True)),
        "keyed": keyed,
        "expected_keyed": sorted({*bone_map.driven_bones(), *names}),
        "report_bones": len(done.report.bones),
        "generated": generated_case(addon, obj, np.array(truth), names),
    }
    bpy.data.objects.remove(obj)
    return out


def generated_case(addon: Any, metarig: Any, truth: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The same job baked onto the rig Rigify generates from the metarig: its finger FK controls are driven; its
    DEF bones, which deform the mesh, are compared with the metarig's posed bones."""
    scene = bpy.context.scene
    metarig.animation_data_clear()
    for pose_bone in metarig.pose.bones:
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
    bpy.context.view_layer.objects.active = metarig
    bpy.ops.pose.rigify_generate()
    if bpy.app.version < (5, 0, 0):
        atexit.register(exit_without_teardown, Path(sys.argv[sys.argv.index("--result") + 1]))
    generated = bpy.data.objects["rig"]
    rig = addon.pose.armature_io.read_rig(generated)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    finger_map = addon.bridge.retarget.finger_maps.detect_finger_map(rig, bone_map)
    scene.vfx_mocap_pose.armature = generated
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="fingers")
    assert result == {"FINISHED"}, error
    mc.wait_for_bake(addon, harness, before)
    deforming = [f"DEF-{name}" for name in names]
    solved = []
    for frame in range(FRAME_START, FRAME_START + FRAMES):
        scene.frame_set(frame)
        solved.append(mc.rotations(generated, deforming))
    angles = mc.angle_degrees(truth, np.array(solved))
    keyed = sorted({mc.bone_of(path) for path, _ in mc.action_channels(generated)})
    return {
        "map": bone_map.name,
        "finger_map": finger_map.name,
        "finger_bones": finger_map.driven_bones(),
        "keyed_fingers": [bone for bone in keyed if bone in set(finger_map.driven_bones())],
        "def_mean_deg": float(angles.mean()),
        "def_per_bone_mean_deg": dict(zip(deforming, angles.mean(axis=0).round(2).tolist(), strict=True)),
    }


def face_mesh(name: str = "Face") -> Any:
    bpy.ops.mesh.primitive_cube_add()
    mesh = bpy.context.object
    mesh.name = name
    mesh.shape_key_add(name="Basis")
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "smirk"):
        mesh.shape_key_add(name=name)
    return mesh


def media_case(addon: Any, args: argparse.Namespace) -> dict[str, Any]:
    harness.configure(args.daemon_python, args.data_dir)
    harness.start_daemon(addon)
    scene = bpy.context.scene
    scene.vfx_mocap.auto_insert = False
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    metarig = mc.add_metarig()
    bpy.ops.object.mode_set(mode="OBJECT")
    mesh = face_mesh()
    scene.vfx_mocap_pose.armature = metarig
    parts = scene.vfx_mocap_parts
    parts.use_hands, parts.use_face, parts.face_mesh = True, True, mesh
    editor = scene.sequence_editor_create()
    strip = addon.common.compat.new_movie_strip(editor, "megamind", args.video, 1, STRIP_START)
    for other in addon.common.compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip
    before = len(addon.pose.mocap_tasks.finished)
    started = time.monotonic()
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose)
    assert result == {"FINISHED"}, error

    def done() -> bool:
        addon.pose.mocap_tasks.tick()
        return len(addon.pose.mocap_tasks.finished) > before

    harness.pump_until(addon, done, "pose with hands and face, then the bake", timeout=220)
    finished = addon.pose.mocap_tasks.finished[-1]
    assert finished.report is not None, finished.error
    job = scene.vfx_mocap.jobs[finished.job_id]
    arrays, _summary = addon.pose.mocap_tasks.load_pose_arrays(job.output_dir)
    armature = mc.action_channels(metarig)
    keys = mesh.data.shape_keys
    shape_channels = {}
    for fcurve in addon.common.compat.action_channels(keys.animation_data.action, keys).fcurves:
        co = np.zeros(len(fcurve.keyframe_points) * 2, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        shape_channels[fcurve.data_path.split('"')[1]] = co.reshape(-1, 2)
    rig = addon.pose.armature_io.read_rig(metarig)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    fingers = addon.bridge.retarget.fingers
    curls = []
    right_seen = np.flatnonzero(arrays["hand_present"][:, 1])
    for index in right_seen:
        scene.frame_set(STRIP_START + int(index))
        curls.append(fingers.curls_deg(hand_points(metarig, "R"), "R"))
    curls = np.array(curls)
    jaw = shape_channels["jawOpen"][:, 1]
    return {
        "seconds": time.monotonic() - started,
        "job_params": job.params,
        "hand_frames": arrays["hand_present"].sum(axis=0).tolist(),
        "face_frames": int(arrays["face_present"].sum()),
        "nan": int(
            sum(np.isnan(k).sum() for k in armature.values()) + sum(np.isnan(k).sum() for k in shape_channels.values())
        ),
        "keyed_bones": sorted({mc.bone_of(path) for path, _ in armature}),
        "expected_bones": sorted({*bone_map.driven_bones(), *finger_bones("L"), *finger_bones("R")}),
        "keyed_shapes": sorted(shape_channels),
        "actions": sorted(a.name for a in bpy.data.actions),
        "armature_frames": [
            int(min(k[0, 0] for k in armature.values())),
            int(max(k[-1, 0] for k in armature.values())),
        ],
        "shape_frames": [
            int(min(k[0, 0] for k in shape_channels.values())),
            int(max(k[-1, 0] for k in shape_channels.values())),
        ],
        "strip_frames": [STRIP_START, STRIP_START + int(addon.common.compat.timing(strip, "duration")) - 1],
        "face_report": finished.face is not None and list(finished.face.shape_keys),
        "error": finished.error,
        "min_middle_end_curl_deg": float(curls[..., 1:].min()) if len(curls) else None,
        "min_finger_knuckle_curl_deg": float(curls[..., 1:, 0].min()) if len(curls) else None,
        "jaw_range": [float(jaw.min()), float(jaw.max())],
    }


def live_run(addon: Any, seconds: float) -> dict[str, Any]:
    """Start live pose, let it run, record ``seconds``, stop; what it did."""
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    driver = addon.pose.live_pose.current()
    pump_live(addon, lambda: driver.applied >= 40, "40 live poses", timeout=120)
    bpy.context.scene.frame_set(20)
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_record)
    assert result == {"FINISHED"}, error
    started = time.monotonic()
    pump_live(addon, lambda: time.monotonic() - started > seconds, "the recording", timeout=seconds + 10)
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_record)
    assert result == {"FINISHED"}, error
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_stop)
    assert result == {"FINISHED"}, error
    pump_live(addon, lambda: not driver.session.alive, "the live thread to end", timeout=15)
    latencies = np.array(driver.latencies_ms)
    return {
        "driver": driver,
        "applied": driver.applied,
        "error": driver.error,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "solve_ms_p50": float(np.median(driver.solve_ms)),
        "daemon_ms_p50": float(np.median([stage[0] for stage in driver.stages_ms])),
        "fps": driver.session.daemon_fps,
    }


def live_case(addon: Any, video: str) -> dict[str, Any]:
    scene = bpy.context.scene
    metarig = mc.add_metarig()
    bpy.ops.object.mode_set(mode="OBJECT")
    mesh = face_mesh("LiveFace")
    settings, parts = scene.vfx_mocap_pose, scene.vfx_mocap_parts
    settings.armature, settings.live_source, settings.video_path = metarig, "FILE", video
    parts.use_hands, parts.use_face, parts.face_mesh = True, True, mesh
    whole = live_run(addon, 3.0)
    driver = whole.pop("driver")
    armature = mc.action_channels(metarig)
    keys = mesh.data.shape_keys
    shapes = {}
    for fcurve in addon.common.compat.action_channels(keys.animation_data.action, keys).fcurves:
        co = np.zeros(len(fcurve.keyframe_points) * 2, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        shapes[fcurve.data_path.split('"')[1]] = co.reshape(-1, 2)
    whole["keyed_bones"] = sorted({mc.bone_of(path) for path, _ in armature})
    whole["keyed_shapes"] = sorted(shapes)
    whole["armature_frames"] = [driver.last_bake.frame_start, driver.last_bake.frame_end]
    whole["shape_frames"] = [driver.last_face_bake.frame_start, driver.last_face_bake.frame_end]
    whole["nan"] = int(sum(np.isnan(k).sum() for k in [*armature.values(), *shapes.values()]))
    whole["jaw_max"] = float(shapes["jawOpen"][:, 1].max())

    body_rig = mc.add_metarig()
    bpy.ops.object.mode_set(mode="OBJECT")
    settings.armature = body_rig
    parts.use_hands, parts.face_mesh = False, None
    body = live_run(addon, 1.0)
    body.pop("driver")
    return {"whole": whole, "body": body}


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    scene = bpy.context.scene
    scene.vfx_mocap_pose.use_smoothing = False
    scene.vfx_mocap_pose.root_motion = False
    record["fingers"] = fingers_case(addon, Path(args.data_dir) / "fingers")
    scene.vfx_mocap_pose.use_smoothing = True
    record["media"] = media_case(addon, args)
    record["live"] = live_case(addon, args.video)
    record["panel"] = mc.draw_panels(("_handsface",))


if __name__ == "__main__":
    parser = harness.parse_args()
    harness.run_scenario(parser, main)
