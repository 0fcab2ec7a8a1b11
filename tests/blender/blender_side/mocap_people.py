"""Several people in real footage, baked in real Blender through the Bake operator: a pose job of vtest.avi's
pedestrians (made by the real pose runner, ``people`` = all, on the pytest side) baked with Person set to one
pedestrian and One Armature per Person on: one armature per tracked person, each following its own person; with
Hands on (the default) and, first, a Face Mesh chosen, which is refused (hands and face are the main person's).

Records, per armature: the person it follows, its root location on every baked frame, and on which frames its
person was seen.
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


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    folder = Path(args.data_dir)
    summary = json.loads((folder / "summary.json").read_text())
    scene = bpy.context.scene
    metarig = mc.add_metarig()
    settings = scene.vfx_mocap_pose
    settings.armature = metarig
    settings.person = args.person
    settings.all_people = True
    mc.add_succeeded_job(scene, "vtest-people", folder, FRAME_START)
    # The face is tracked for the main person only: a Face Mesh with another person chosen is refused.
    parts = scene.vfx_mocap_parts
    bpy.ops.mesh.primitive_cube_add()
    face = bpy.context.active_object
    face.shape_key_add(name="Basis")
    face.shape_key_add(name="jawOpen")
    parts.use_face, parts.face_mesh = True, face
    record["face_refused"] = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="vtest-people")
    parts.use_face, parts.face_mesh = False, None
    record["hands_on"] = parts.use_hands  # the default: the bake goes on without fingers for another person
    before = len(addon.pose.mocap_tasks.finished)
    result, error = harness.operator_report(bpy.ops.vfxmocap.bake_pose, job_id="vtest-people")
    assert result == {"FINISHED"}, error
    people = len(summary["tracks"])

    def all_baked() -> bool:
        addon.pose.mocap_tasks.tick()
        return len(addon.pose.mocap_tasks.finished) >= before + people

    harness.pump_until(addon, all_baked, "one bake per person", timeout=120)
    done = addon.pose.mocap_tasks.finished[before:]
    record["errors"] = [d.error for d in done if d.report is None]
    present = np.load(folder / "arrays" / "track_present.npy")
    armatures = {}
    for finished in done:
        obj = bpy.data.objects[finished.armature]
        person = int(obj.get(addon.pose.pose_people.PERSON_PROP, args.person))
        channels = mc.action_channels(obj)
        root = np.stack([channels[('pose.bones["spine"].location', i)][:, 1] for i in range(3)], axis=1)
        armatures[obj.name] = {
            "person": person,
            "root": root.tolist(),
            "seen": present[person - 1].tolist(),
            "action": obj.animation_data.action.name,
        }
    record["armatures"] = armatures
    record["tracks"] = summary["tracks"]
    record["chosen"] = args.person


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(("--person", {"type": int, "required": True})), main)
