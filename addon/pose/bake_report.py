"""The quality report of a bake: how sure the solve was of each bone, how many frames were held, the feet's
contacts, the shot cuts and who was followed, and with a face where its shape values came from (``face_source``:
"model" or "landmarks"). Made on the solve's worker thread (plain data, JSON-ready); written
with the bake: onto the Action (custom property :data:`REPORT_PROP`), into the pose job's folder
(``bake_reports/<armature>.json``), and as each driven pose bone's confidence (custom property
:data:`CONFIDENCE_PROP`, 0..1). The Pose to Armature panel shows the last one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..bridge.retarget import feet
from ..bridge.retarget.solver import PoseFrames
from . import pose_people

REPORT_PROP = "vfx_mocap_report"
CONFIDENCE_PROP = "vfx_mocap_confidence"
LOW_CONFIDENCE = 0.5
"""Bones whose mean confidence is below this are listed as unsure."""


def make_report(pose: PoseFrames, summary: dict, person: int, job_id: str, armature: str) -> dict[str, Any]:
    """The report of ``pose``, solved from the pose job ``job_id`` (its ``summary``) following ``person`` (0: the
    largest) for ``armature``."""
    count = len(pose)
    confidence = pose.confidence if pose.confidence is not None else pose.measured.astype(float)
    contacts = pose.contacts if pose.contacts is not None else np.zeros((count, 2), dtype=bool)
    bones = {
        bone: {"confidence": round(float(confidence[:, k].mean()), 3), "frames_held": int((~pose.measured[:, k]).sum())}
        for k, bone in enumerate(pose.bones)
    }
    return {
        "job": job_id,
        "armature": armature,
        "frames": count,
        "frames_without_person": int((~pose.measured.any(axis=1)).sum()),
        "person": person or pose_people.default_person(summary),
        "people": pose_people.track_count(summary),
        "cuts": [int(start) for start in summary.get("shot_starts", []) if start > 0],
        "bones": bones,
        "unsure_bones": sorted(b for b, v in bones.items() if v["confidence"] < LOW_CONFIDENCE),
        "foot_contacts": {
            side: {"frames": int(contacts[:, k].sum()), "steps": len(feet.spans(contacts[:, k]))}
            for k, side in enumerate(feet.SIDES)
        },
    }


def keep(obj: bpy.types.Object, report: dict[str, Any], output_dir: str) -> str:
    """Write ``report`` with the bake (see the module); returns the path of the job folder's copy, or an error
    message starting with "Cannot" when the folder cannot be written (the armature's Action, if it has one, keeps
    the report anyway)."""
    text = json.dumps(report, indent=1)
    action = obj.animation_data.action if obj.animation_data else None
    if action is not None:
        action[REPORT_PROP] = text
    for bone, values in report["bones"].items():
        pose_bone = obj.pose.bones.get(bone)
        if pose_bone is not None:
            pose_bone[CONFIDENCE_PROP] = values["confidence"]
    path = Path(output_dir) / "bake_reports" / f"{bpy.path.clean_name(obj.name)}.json"
    try:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        kept_on = f"; it is on the Action '{action.name}'" if action is not None else ""
        return f"Cannot keep the bake report in the job's folder ({exc}){kept_on}"
    return str(path)


FACE_SOURCE_WORDS = {
    "model": "Face shapes from MediaPipe's blendshape model",
    "landmarks": "Face shapes estimated from the face mesh",
}
"""The report's ``face_source`` (present when the bake drove a face) as the panel says it."""


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines for the panel."""
    bones = report["bones"]
    mean = float(np.mean([v["confidence"] for v in bones.values()])) if bones else 0.0
    held = max((v["frames_held"] for v in bones.values()), default=0)
    contacts = report["foot_contacts"]
    lines = [
        f"Person {report['person']} of {report['people']}, {report['frames']} frames, "
        f"{report['frames_without_person']} without the person",
        f"Confidence {mean:.0%} on average; up to {held} frames held",
        f"Feet planted: left {contacts['left']['steps']} times, right {contacts['right']['steps']} times",
        f"Shot cuts at clip frames {', '.join(map(str, report['cuts']))}" if report["cuts"] else "No shot cuts",
    ]
    if report["unsure_bones"]:
        lines.append(f"Unsure (below {LOW_CONFIDENCE:.0%}): {', '.join(report['unsure_bones'])}")
    if "face_source" in report:
        lines.append(FACE_SOURCE_WORDS.get(report["face_source"], f"Face shapes from {report['face_source']}"))
    return lines
