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

Then the whole bake as the Bake operator runs it, solve (worker thread) and keys (main thread), today's against the
add-on before clean motion (``--baseline-rev``, default 75cef32: causal One Euro smoothing, sideways root only):

- **clean**: zero-phase smoothing, shot cuts (two, at frames 400 and 700), root in three axes, foot contacts and
  locking, the floor fit, jumps, settling of unseen limbs and the quality report (made and kept), all on;
- **before**: that commit's ``solve_clip`` (its ``addon/retarget`` loaded from git) and the same bulk write.

Both solve the same ``--frames`` of synthetic landmarks: the metarig's rest landmarks swaying smoothly (a few
centimetres), walking across and towards a pinhole camera, a wrist unseen now and then. Goal: clean at most 2x
before. Prints a table, then one JSON line with the numbers as its last line.
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
from scripts.bench.blender.extension import enable_rigify, install_extension

GOAL_RATIO = 30.0
CLEAN_GOAL_RATIO = 2.0


def random_walk_pose(addon, bones: tuple[str, ...], root: str, frames: int, seed: int = 0):
    """A PoseFrames of ``frames`` smooth, sign-continuous quaternions per bone and a drifting root location."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.03, size=(frames, len(bones), 4))
    quats = np.cumsum(steps, axis=0) + np.array([1.0, 0.0, 0.0, 0.0])
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    quats = addon.bridge.retarget.filters.make_continuous(quats)
    location = np.cumsum(rng.normal(scale=0.005, size=(frames, 3)), axis=0)
    measured = np.ones((frames, len(bones)), dtype=bool)
    return addon.bridge.retarget.solver.PoseFrames(bones, quats, root, location, measured)


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


def synthetic_clip(addon, rig, bone_map, frames: int, seed: int = 1):
    """(world (N, 33, 3), visibility (N, 33), image (N, 33, 3), size): a swaying person walking across and
    towards a pinhole camera (the solver's assumed field of view), its left wrist unseen in a few stretches."""
    retarget = addon.bridge.retarget
    rng = np.random.default_rng(seed)
    rest = retarget.solver.rest_landmarks(rig, bone_map)
    body = np.zeros((33, 3))
    for name, point in rest.items():
        body[retarget.frames.LANDMARK[name]] = point
    hips = (body[retarget.frames.LANDMARK["left_hip"]] + body[retarget.frames.LANDMARK["right_hip"]]) / 2
    sway = np.cumsum(rng.normal(scale=0.004, size=(frames, 33, 3)), axis=0)
    sway -= np.linspace(0, 1, frames)[:, None, None] * sway[-1]  # a bounded sway, not a drift
    blender = body - hips + sway
    world = retarget.frames.blender_to_mediapipe(blender)
    times = np.arange(frames) / 24.0
    path = np.stack([0.6 * np.sin(0.3 * times), -0.05 * times, np.full(frames, hips[2])], axis=1)
    camera = retarget.frames.blender_to_mediapipe(blender + path[:, None] - np.array([0.0, -6.0, 1.0]))
    size = (1280.0, 720.0)
    focal = retarget.root_motion.focal_px(size[0])
    image = np.stack(
        [
            (size[0] / 2 + focal * camera[..., 0] / camera[..., 2]) / size[0],
            (size[1] / 2 + focal * camera[..., 1] / camera[..., 2]) / size[1],
            np.zeros(camera.shape[:2]),
        ],
        axis=-1,
    )
    visibility = np.ones((frames, 33))
    wrist = retarget.frames.LANDMARK["left_wrist"]
    for start in range(50, frames, 200):
        visibility[start : start + 80, wrist] = 0.1
    return world, visibility, image, size


def load_retarget_at(revision: str, work: Path):
    """The ``addon/retarget`` package of git ``revision``, imported on its own (it needs numpy only)."""
    import importlib.util
    import subprocess

    folder = work / f"retarget-{revision}"
    folder.mkdir(parents=True)
    listing = subprocess.run(
        ["git", "-C", str(common.ROOT), "ls-tree", "--name-only", revision, "addon/retarget/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for path in listing:
        text = subprocess.run(
            ["git", "-C", str(common.ROOT), "show", f"{revision}:{path}"], check=True, capture_output=True, text=True
        ).stdout
        (folder / Path(path).name).write_text(text)
    name = f"retarget_{revision}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.solver")


def whole_bakes(addon, obj, rig, bone_map, args: argparse.Namespace, work: Path) -> dict:
    """Median seconds of solve + keys (+ the quality report, for clean) for today's bake and the baseline's."""
    world, visibility, image, size = synthetic_clip(addon, rig, bone_map, args.frames)
    present = np.ones(args.frames, dtype=bool)
    frames = 1 + np.arange(args.frames, dtype=np.float64)
    shots = [0, 400, 700]
    summary = {"shot_starts": shots, "tracks": [{"number": 1}], "default_track": 0}
    before_solver = load_retarget_at(args.baseline_rev, work)
    solver = addon.bridge.retarget.solver
    clean_s, before_s, solve_clean_s, solve_before_s = [], [], [], []
    for _ in range(args.repeats):
        fresh_action(obj)
        started = time.perf_counter()
        pose = solver.Retargeter(rig, bone_map).solve_clip(world, visibility, present, 24.0, image, size, shots)
        solved = time.perf_counter()
        report = addon.pose.bake_report.make_report(pose, summary, 0, "bench", obj.name)
        addon.pose.bake.bake_pose(obj, pose, frames)
        addon.pose.bake_report.keep(obj, report, str(work))
        clean_s.append(time.perf_counter() - started)
        solve_clean_s.append(solved - started)

        fresh_action(obj)
        started = time.perf_counter()
        old = before_solver.Retargeter(rig, bone_map).solve_clip(world, visibility, present, 24.0, image, size)
        solved = time.perf_counter()
        addon.pose.bake.bake_pose(
            obj, solver.PoseFrames(old.bones, old.rotations, old.root_bone, old.root_location, old.measured), frames
        )
        before_s.append(time.perf_counter() - started)
        solve_before_s.append(solved - started)
    clean, before = statistics.median(clean_s), statistics.median(before_s)
    return {
        "baseline_rev": args.baseline_rev,
        "clean_bake_s": clean,
        "clean_solve_s": statistics.median(solve_clean_s),
        "before_bake_s": before,
        "before_solve_s": statistics.median(solve_before_s),
        "clean_vs_before": clean / before,
        "clean_goal_ratio": CLEAN_GOAL_RATIO,
        "clean_goal_met": clean / before <= CLEAN_GOAL_RATIO,
        "contacts_found": int(pose.contacts.any(axis=1).sum()) if pose.contacts is not None else 0,
    }


def run(args: argparse.Namespace, work: Path) -> dict:
    addon = install_extension(work)
    import bpy

    enable_rigify()
    bpy.ops.object.armature_human_metarig_add()
    obj = bpy.context.object
    rig = addon.pose.armature_io.read_rig(obj)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    bones = tuple(bone_map.driven_bones())
    pose = random_walk_pose(addon, bones, bone_map.bones["hips"], args.frames)
    frames = 1 + np.arange(args.frames, dtype=np.float64)
    channels = 4 * len(bones) + 3

    bulk_s, rebake_s = [], []
    for _ in range(args.repeats):
        fresh_action(obj)
        started = time.perf_counter()
        report = addon.pose.bake.bake_pose(obj, pose, frames)
        bulk_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        addon.pose.bake.bake_pose(obj, pose, frames)
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
    whole = whole_bakes(addon, obj, rig, bone_map, args, work)
    return {
        **whole,
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
    parser.add_argument("--baseline-rev", default="75cef32", help="git revision of the bake to compare with")
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
    print(f"Whole bake (solve + keys), {numbers['frames']} frames, against {numbers['baseline_rev']}:")
    print(
        f"  clean (all on)     {numbers['clean_bake_s'] * 1000:9.1f} ms (solve {numbers['clean_solve_s'] * 1000:.1f})"
    )
    print(
        f"  before             {numbers['before_bake_s'] * 1000:9.1f} ms (solve {numbers['before_solve_s'] * 1000:.1f})"
    )
    print(f"  ratio: {numbers['clean_vs_before']:.2f}x (goal <= {CLEAN_GOAL_RATIO:g}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=2))
    common.result_line(
        numbers, f"{min(numbers['ratio_vs_per_property'], numbers['ratio_vs_per_key']):.0f}x", numbers["goal_met"]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
