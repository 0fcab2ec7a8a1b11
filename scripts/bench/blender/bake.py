"""Baking speed: the add-on's bulk F-curve writes vs one ``keyframe_insert`` per key, on the same rig and poses.

    .venv-bpy50/bin/python -m scripts.bench.blender.bake [--frames 1000] [--repeats 3] [--json out/bench_bake.json]

Runs real Blender (the bpy module) with the extension installed into a temporary Blender user folder. The rig is
Rigify's human metarig with the add-on's detected map (19 driven bones and the root's location: 79 channels).
The poses are a smooth random walk of unit quaternions per bone and a drifting root location, ``--frames`` long.

- **bulk**: ``bake.bake_pose`` (what the Bake operator runs on the main thread once a clip is solved): per
  channel one ``keyframe_points.add`` and one ``foreach_set``; timed on a fresh action, then again over it (a
  re-bake, which replaces the keys).
- **keyframe_insert, per property**: for each frame, for each bone, set the quaternion and call
  ``keyframe_insert("rotation_quaternion", frame=...)`` (four keys per call), and the same for the root location.
- **keyframe_insert, per key**: one ``keyframe_insert(..., index=i)`` per channel and frame (run once: it is
  the slowest).

All three must leave the same keys (checked). Goal: bulk at least 30x faster than either way of inserting.
Prints a table, then one JSON line with the numbers as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scripts.bench import common

MODULE = "bl_ext.user_default.vfx_motion_capture"
GOAL_RATIO = 30.0


def random_walk_pose(addon, bones: tuple[str, ...], root: str, frames: int, seed: int = 0):
    """A PoseFrames of ``frames`` smooth, sign-continuous quaternions per bone and a drifting root location."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.03, size=(frames, len(bones), 4))
    quats = np.cumsum(steps, axis=0) + np.array([1.0, 0.0, 0.0, 0.0])
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    quats = addon.retarget.filters.make_continuous(quats)
    location = np.cumsum(rng.normal(scale=0.005, size=(frames, 3)), axis=0)
    measured = np.ones((frames, len(bones)), dtype=bool)
    return addon.retarget.solver.PoseFrames(bones, quats, root, location, measured)


def enable_rigify() -> None:
    import addon_utils  # only importable once bpy has set up Blender's script paths

    addon_utils.enable("rigify", default_set=True)


def fresh_action(obj) -> None:
    import bpy

    if obj.animation_data and obj.animation_data.action:
        old = obj.animation_data.action
        obj.animation_data.action = None
        bpy.data.actions.remove(old)


def insert_per_property(obj, pose, frames: np.ndarray) -> None:
    bones = obj.pose.bones
    for row, frame in enumerate(frames):
        for index, name in enumerate(pose.bones):
            pose_bone = bones[name]
            pose_bone.rotation_quaternion = pose.rotations[row, index]
            pose_bone.keyframe_insert("rotation_quaternion", frame=float(frame), group=name)
        root = bones[pose.root_bone]
        root.location = pose.root_location[row]
        root.keyframe_insert("location", frame=float(frame), group=pose.root_bone)


def insert_per_key(obj, pose, frames: np.ndarray) -> None:
    bones = obj.pose.bones
    for row, frame in enumerate(frames):
        for index, name in enumerate(pose.bones):
            pose_bone = bones[name]
            pose_bone.rotation_quaternion = pose.rotations[row, index]
            for component in range(4):
                pose_bone.keyframe_insert("rotation_quaternion", index=component, frame=float(frame), group=name)
        root = bones[pose.root_bone]
        root.location = pose.root_location[row]
        for component in range(3):
            root.keyframe_insert("location", index=component, frame=float(frame), group=pose.root_bone)


def keyed_values(obj) -> dict[tuple[str, int], np.ndarray]:
    from bpy_extras import anim_utils

    animation = obj.animation_data
    fcurves = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot).fcurves
    out = {}
    for fcurve in fcurves:
        co = np.zeros(len(fcurve.keyframe_points) * 2, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        out[(fcurve.data_path, fcurve.array_index)] = co.reshape(-1, 2)
    return out


def difference(values: dict, reference: dict) -> float:
    """The largest difference between two actions' keys (frames and values); they must have the same F-curves."""
    assert values.keys() == reference.keys(), "both ways make the same F-curves"
    return max(float(np.abs(values[key] - reference[key]).max()) for key in reference)


def run(args: argparse.Namespace, work: Path) -> dict:
    os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender-user")  # read when bpy is imported
    import bpy

    from scripts import build_extension

    bpy.ops.extensions.package_install_files(
        filepath=str(build_extension.build(work / "dist")), repo="user_default", enable_on_install=True
    )
    addon = sys.modules[f"{MODULE}.addon"]
    enable_rigify()
    bpy.ops.object.armature_human_metarig_add()
    obj = bpy.context.object
    rig = addon.armature_io.read_rig(obj)
    bone_map = addon.retarget.bone_maps.detect_map(rig)
    bones = tuple(bone_map.driven_bones())
    pose = random_walk_pose(addon, bones, bone_map.bones["hips"], args.frames)
    frames = 1 + np.arange(args.frames, dtype=np.float64)
    channels = 4 * len(bones) + 3

    bulk_s, rebake_s = [], []
    for _ in range(args.repeats):
        fresh_action(obj)
        started = time.perf_counter()
        report = addon.bake.bake_pose(obj, pose, frames)
        bulk_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        addon.bake.bake_pose(obj, pose, frames)
        rebake_s.append(time.perf_counter() - started)
    bulk_values = keyed_values(obj)
    assert report.keys == channels * args.frames, report

    property_s = []
    for _ in range(args.repeats):
        fresh_action(obj)
        started = time.perf_counter()
        insert_per_property(obj, pose, frames)
        property_s.append(time.perf_counter() - started)
    differences = [difference(keyed_values(obj), bulk_values)]

    fresh_action(obj)
    started = time.perf_counter()
    insert_per_key(obj, pose, frames)
    per_key_s = time.perf_counter() - started
    differences.append(difference(keyed_values(obj), bulk_values))

    bulk, rebake, per_property = statistics.median(bulk_s), statistics.median(rebake_s), statistics.median(property_s)
    return {
        "blender": bpy.app.version_string,
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "frames": args.frames,
        "bones": len(bones),
        "channels": channels,
        "keys": channels * args.frames,
        "bulk_s": bulk,
        "rebake_s": rebake,
        "keyframe_insert_per_property_s": per_property,
        "keyframe_insert_per_key_s": per_key_s,
        "ratio_vs_per_property": per_property / bulk,
        "ratio_vs_per_key": per_key_s / bulk,
        "max_value_difference": max(differences),
        "goal_ratio": GOAL_RATIO,
        "goal_met": min(per_property, per_key_s) / bulk >= GOAL_RATIO,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfx-bench-bake-"))
    try:
        numbers = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Blender {numbers['blender']}, {numbers['frames']} frames x {numbers['channels']} channels")
    print(f"  bulk bake (fresh action)           {numbers['bulk_s'] * 1000:9.1f} ms")
    print(f"  bulk bake (over it, replacing)     {numbers['rebake_s'] * 1000:9.1f} ms")
    print(f"  keyframe_insert per property       {numbers['keyframe_insert_per_property_s'] * 1000:9.1f} ms")
    print(f"  keyframe_insert per key            {numbers['keyframe_insert_per_key_s'] * 1000:9.1f} ms")
    print(f"  ratio vs per property: {numbers['ratio_vs_per_property']:.1f}x (goal >= {GOAL_RATIO:g}x)")
    print(f"  ratio vs per key:      {numbers['ratio_vs_per_key']:.1f}x")
    print(f"  largest difference between the ways' keys: {numbers['max_value_difference']:.2e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=2))
    common.result_line(
        numbers, f"{min(numbers['ratio_vs_per_property'], numbers['ratio_vs_per_key']):.0f}x", numbers["goal_met"]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
