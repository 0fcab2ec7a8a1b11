"""Face shapes from MediaPipe's blendshape model, baked in real Blender through the Bake operator.

Two pose jobs of Megamind.avi frames 10..180 made by the real pose runner on the pytest side with the face on: one
where the daemon had the blendshape model (``face_blendshapes`` and ``face_source`` "model"), one where it had not
(the mesh alone). Each is baked onto a metarig and a mesh with ARKit-named shape keys and one other; then the first
again with the pose option Face Shapes set to landmarks (added as the daemon's description would add it). The record
holds each bake's report, the panel's report lines and the shape keys' (frame, value) keys.
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

FRAME_START = 1
SHAPE_KEYS = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthLowerDownRight", "smirk")


def bake(addon: Any, job_id: str, folder: Path) -> dict[str, Any]:
    scene = bpy.context.scene
    metarig = mc.add_metarig()
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.mesh.primitive_cube_add()
    mesh = bpy.context.object
    mesh.name = f"Face {job_id}"
    mesh.shape_key_add(name="Basis")
    for name in SHAPE_KEYS:
        mesh.shape_key_add(name=name)
    scene.vfx_mocap_pose.armature = metarig
    parts = scene.vfx_mocap_parts
    parts.use_hands, parts.use_face, parts.face_mesh = False, True, mesh
    mc.add_succeeded_job(scene, job_id, folder, FRAME_START)
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id=job_id)
    assert result == {"FINISHED"}, error
    finished = mc.wait_for_bake(addon, harness, before)
    keys = mesh.data.shape_keys
    shapes = {}
    for fcurve in addon.common.compat.action_channels(keys.animation_data.action, keys).fcurves:
        name = fcurve.data_path.split('"')[1]
        co = np.zeros(len(fcurve.keyframe_points) * 2, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        shapes[name] = co.reshape(-1, 2).tolist()
    kept = Path(finished.quality_kept)
    return {
        "error": finished.error,
        "face_source": finished.quality.get("face_source"),
        "kept_face_source": json.loads(kept.read_text()).get("face_source") if kept.is_file() else None,
        "lines": addon.pose.bake_report.summary_lines(finished.quality),
        "shapes": shapes,
    }


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    for job_id in ("model", "mesh"):
        record[job_id] = bake(addon, job_id, Path(args.data_dir) / job_id)
    option = bpy.context.scene.vfx_mocap.params.add()
    option.mode, option.name, option.kind, option.choices = "pose", "face_shapes", "choice", "auto|landmarks"
    option.set_value("landmarks")
    record["forced"] = bake(addon, "forced", Path(args.data_dir) / "model")


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(), main)
