"""The real sample video through the daemon's pose mode, baked onto a Rigify metarig from its movie strip, and
inserted as a pose control video.

The strip starts at timeline frame 5 and shows the whole movie (its first frame is black: no person). Bakes:
unsmoothed (to check the documented handling of frames without a person exactly), then smoothed over it (it
must replace, not add), then with key reduction. Then the pose control video of the same strip.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import bpy
import harness
import mocap_common as mc
import numpy as np

STRIP_START = 5


def select_only(addon: Any, editor: Any, strip: Any) -> None:
    for other in addon.common.compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip


def quaternions(channels: dict, bones: list[str]) -> np.ndarray:
    """(frames, bones, 4) keyed quaternion values, all channels keyed on the same frames."""
    out = []
    for bone in bones:
        path = f'pose.bones["{bone}"].rotation_quaternion'
        out.append(np.stack([channels[(path, i)][:, 1] for i in range(4)], axis=1))
    return np.stack(out, axis=1)


def bake(addon: Any, what: str, timeout: float = 60.0) -> Any:
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose)
    assert result == {"FINISHED"}, error

    def done() -> bool:
        addon.pose.mocap_tasks.tick()
        return len(addon.pose.mocap_tasks.finished) > before

    harness.pump_until(addon, done, what, timeout=timeout)
    finished = addon.pose.mocap_tasks.finished[-1]
    assert finished.report is not None, finished.error
    return finished


def summarize(obj: Any, driven: list[str]) -> dict[str, Any]:
    """What the action holds; ``quats`` when every channel is keyed on the same frames (no key reduction)."""
    channels = mc.action_channels(obj)
    frames = {tuple(keys[:, 0].astype(int).tolist()) for keys in channels.values()}
    summary = {
        "fcurves": len(channels),
        "keys": int(sum(len(k) for k in channels.values())),
        "keyed_bones": sorted({mc.bone_of(path) for path, _ in channels}),
        "frame_sets": len(frames),
        "first_frame": int(min(k[0, 0] for k in channels.values())),
        "last_frame": int(max(k[-1, 0] for k in channels.values())),
        "nan": int(sum(np.isnan(k).sum() for k in channels.values())),
        "channels": channels,
    }
    if len(frames) == 1:
        quats = quaternions(channels, driven)
        summary["quats"] = quats
        summary["min_consecutive_dot"] = float(np.sum(quats[1:] * quats[:-1], axis=-1).min())
    return summary


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python, args.data_dir)
    rt = harness.start_daemon(addon)

    scene = bpy.context.scene
    scene.vfx_mocap.auto_insert = False  # the control video below is inserted by its own operator
    overlay = next(p for p in scene.vfx_mocap.mode_params("pose") if p.name == "skeleton_background")
    overlay.set_value("overlay")  # so the bake's pose job is no control video, and one is made for step 4
    scene.vfx_mocap_parts.use_hands = False  # the body alone here; hands and face: mocap_hands_face.py
    metarig = mc.add_metarig()
    settings = scene.vfx_mocap_pose
    settings.armature = metarig
    settings.use_smoothing = False
    editor = scene.sequence_editor_create()
    strip = addon.common.compat.new_movie_strip(editor, "megamind", args.video, 1, STRIP_START)
    select_only(addon, editor, strip)
    record["strip"] = {
        "start": addon.common.compat.timing(strip, "left_handle"),
        "duration": addon.common.compat.timing(strip, "duration"),
    }

    # 1. No pose result yet: the operator runs pose on the strip, then bakes.
    first = bake(addon, "pose on the strip, then the bake", timeout=200)
    job = scene.vfx_mocap.jobs[first.job_id]
    record["job"] = {"id": job.name, "state": job.state, "params": job.params}
    arrays, job_summary = addon.pose.mocap_tasks.load_pose_arrays(job.output_dir)
    present = arrays["present"]
    visibility = np.nan_to_num(arrays["visibility"])
    rig = addon.pose.armature_io.read_rig(metarig)
    bone_map = addon.bridge.retarget.bone_maps.detect_map(rig)
    driven = bone_map.driven_bones()
    unsmoothed = summarize(metarig, driven)
    record["unsmoothed"] = {k: v for k, v in unsmoothed.items() if k not in ("quats", "channels")}
    record["report"] = {"frames": [first.report.frame_start, first.report.frame_end], "keys": first.report.keys}
    # At each cut the key before it holds (constant) instead of blending into the next shot between frames.
    path = f'pose.bones["{bone_map.bones["upper_arm.L"]}"].rotation_quaternion'
    fcurve = next(fc for fc in mc.fcurves(metarig) if fc.data_path == path and fc.array_index == 0)
    record["interpolation_at_frames"] = {
        int(k.co[0]): k.interpolation for k in fcurve.keyframe_points if int(k.co[0]) - STRIP_START in (96, 97, 98)
    }
    # The quality report: kept with the bake (Action, job folder, bone properties), shown in the panel.
    quality = first.quality
    record["quality"] = {
        "report": quality,
        "kept": first.quality_kept,
        "file_matches": json.loads(Path(first.quality_kept).read_text()) == quality,
        "action_matches": json.loads(metarig.animation_data.action[addon.pose.bake_report.REPORT_PROP]) == quality,
        "bone_confidence": {
            b.name: b[addon.pose.bake_report.CONFIDENCE_PROP]
            for b in metarig.pose.bones
            if addon.pose.bake_report.CONFIDENCE_PROP in b
        },
        "panel": mc.draw_panels(("_posetoarmature",))["labels"],
    }
    record["frames_with_person"] = int(present.sum())
    record["first_present"] = int(np.argmax(present))
    record["absent_frames"] = np.flatnonzero(~present).tolist()
    record["driven"] = driven
    quats = unsmoothed["quats"]
    lead = record["first_present"]
    # Documented: frames before the first sighting take the first sighting's pose.
    record["lead_max_change"] = float(np.abs(np.abs(np.sum(quats[:lead] * quats[lead], axis=-1)) - 1.0).max())
    # Documented: bones never seen well enough stay at rest (this footage shows upper bodies).
    legs = [bone_map.bones[f"{limb}.{side}"] for side in mc.SIDES for limb in ("shin", "foot")]
    ankles = [addon.bridge.retarget.frames.LANDMARK[f"{w}_ankle"] for w in mc.SIDES.values()]
    record["ankles_ever_seen"] = bool((visibility[:, ankles] >= settings.min_visibility).any())
    record["legs_at_rest"] = bool(np.allclose(np.abs(quats[:, [driven.index(b) for b in legs], 0]), 1.0, atol=1e-6))
    arm = driven.index(bone_map.bones["upper_arm.L"])
    record["arm_turns_deg"] = float(np.degrees(2 * np.arccos(np.clip(np.abs(quats[:, arm, 0]), 0, 1))).max())

    # 2. Smoothed, over the first bake: it replaces it.
    settings.use_smoothing = True
    bake(addon, "the smoothed bake")
    smoothed = summarize(metarig, driven)
    record["smoothed"] = {k: v for k, v in smoothed.items() if k not in ("quats", "channels")}
    within = np.ones(len(smoothed["quats"]) - 1, dtype=bool)  # frame pairs inside a shot (a cut is no turn)
    within[[start - 1 for start in job_summary["shot_starts"] if start > 0]] = False
    for name, baked in (("unsmoothed", unsmoothed), ("smoothed", smoothed)):
        dots = np.sum(baked["quats"][1:] * baked["quats"][:-1], axis=-1)
        record[name]["min_consecutive_dot_within_shots"] = float(dots[within].min())
    # Shot cuts: the root goes on from where it was; nothing is smoothed across a cut.
    root = np.stack(
        [smoothed["channels"][(f'pose.bones["{bone_map.bones["hips"]}"].location', i)][:, 1] for i in range(3)], 1
    )
    steps = np.linalg.norm(np.diff(root, axis=0), axis=-1)
    cuts = [start for start in job_summary["shot_starts"] if start > 0]
    record["cuts"] = {
        "shot_starts": job_summary["shot_starts"],
        "root_step_at_cuts": [float(steps[start - 1]) for start in cuts],
        "root_step_within_shots_max": float(np.delete(steps, [start - 1 for start in cuts]).max()),
    }
    record["actions"] = len(bpy.data.actions)

    # 3. Key reduction: fewer keys, the curve within the tolerance of every solved frame.
    settings.reduce_keys = True
    settings.reduce_tolerance = 0.5
    bake(addon, "the reduced bake")
    reduced = summarize(metarig, driven)
    record["reduced"] = {"keys": reduced["keys"], "fcurves": reduced["fcurves"], "nan": reduced["nan"]}
    deviation = 0.0
    for key, keys in smoothed["channels"].items():
        path, index = key
        fcurve = next(fc for fc in mc.fcurves(metarig) if fc.data_path == path and fc.array_index == index)
        evaluated = np.array([fcurve.evaluate(frame) for frame in keys[:, 0]])
        if path.endswith("rotation_quaternion"):
            deviation = max(deviation, float(np.abs(evaluated - keys[:, 1]).max()))
    record["reduced"]["max_quaternion_deviation"] = deviation

    # 4. The pose control video: a pose job with black skeletons, inserted above the strip.
    select_only(addon, editor, strip)
    result, error = harness.operator_report(bpy.ops.vfxmocap.pose_control_video)
    assert result == {"FINISHED"}, error

    def inserted() -> Any:
        addon.pose.mocap_tasks.tick()
        return next((s for s in addon.common.compat.all_strips(editor) if s.get("vfx_mode") == "pose"), None)

    harness.pump_until(addon, lambda: inserted() is not None, "the control video strip", timeout=200)
    control = inserted()
    record["control"] = {
        "type": control.type,
        "channel": control.channel,
        "start": addon.common.compat.timing(control, "left_handle"),
        "elements": len(control.elements),
        "directory": bpy.path.abspath(control.directory),
        "files": [e.filename for e in control.elements][:: max(1, len(control.elements) // 8)],
        "params": control.get("vfx_params"),
    }
    record["control"]["last_error"] = rt.last_error
    record["video"] = str(Path(args.video))


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(), main)
