"""Solved poses into an Action, written in bulk. Main thread only.

Each channel (one quaternion component of one bone, one root location axis) is written with one
``keyframe_points.add(n)`` and one ``foreach_set("co", ...)``, interpolation with one ``foreach_set`` too, never
one ``keyframe_insert`` per key. Baking again over the same frames replaces those keys (keys outside the baked
range are kept), so a second bake never duplicates. The action remembers which channels bakes wrote
(:data:`BAKED_PROP`), so that a bake with another map also clears, in its range, the channels of bones it no
longer drives. Optional key reduction keeps only the keys that linear interpolation cannot reproduce within a
tolerance (Ramer-Douglas-Peucker per bone, its channels together).

Actions: F-curves are found or made through :func:`compat.fcurve_ensure`; the F-curves and groups of the
armature live in its slot's channel bag on 4.4+ and in the action before (:func:`compat.action_channels`). Every
slotted-action switch lives in :mod:`.compat`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import bpy
import numpy as np

from ..bridge.retarget.solver import PoseFrames
from ..common import compat
from ..common.errors import UserError

INTERPOLATIONS = ("BEZIER", "LINEAR")
BAKED_PROP = "vfx_mocap_baked"
"""Action custom property: JSON ``{slot identifier ("" before 4.4): [F-curve data paths bakes wrote keys on]}``."""
REST_VALUES = {"rotation_quaternion": (1.0, 0.0, 0.0, 0.0), "location": (0.0, 0.0, 0.0)}
"""What a channel a bake wrote goes back to once its keys are all cleared."""


class BakeError(UserError):
    """The pose cannot be written onto this armature; the message says why and what to do."""


@dataclass(frozen=True)
class BakeReport:
    """What a bake wrote: the action and slot, how many F-curves and keys, the frame range and the bones."""

    action: str
    slot: str
    fcurves: int
    keys: int
    frame_start: int
    frame_end: int
    bones: tuple[str, ...]


def _enum_value(identifier: str) -> int:
    """The integer ``foreach_set`` takes for a keyframe interpolation name."""
    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[identifier].value


def missing_bones(obj: bpy.types.Object, bones: tuple[str, ...] | list[str]) -> list[str]:
    """The bones of ``bones`` the armature does not have (renamed or deleted since they were read)."""
    return [bone for bone in bones if bone not in obj.pose.bones]


def push_undo_step(message: str) -> None:
    """Make what a timer just baked one undo step (timers, unlike operators, push none of their own)."""
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message=message)


def reduce_keys(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Which of the N samples (N, C) to key so that linear interpolation between kept keys stays within
    ``tolerance`` of every sample, in every component (Ramer-Douglas-Peucker). Returns a bool mask (N,); the
    first and last samples are always kept."""
    count = values.shape[0]
    keep = np.zeros(count, dtype=bool)
    if count == 0:
        return keep
    keep[[0, -1]] = True
    spans = [(0, count - 1)]
    while spans:
        start, end = spans.pop()
        if end - start < 2:
            continue
        inside = np.arange(start + 1, end)
        fraction = ((inside - start) / (end - start))[:, None]
        line = values[start] + fraction * (values[end] - values[start])
        error = np.max(np.abs(values[start + 1 : end] - line), axis=1)
        worst = int(np.argmax(error))
        if error[worst] > tolerance:
            split = start + 1 + worst
            keep[split] = True
            spans += [(start, split), (split, end)]
    return keep


def _write_channel(
    fcurve: bpy.types.FCurve,
    span: tuple[float, float],
    frames: np.ndarray,
    values: np.ndarray,
    interpolation: int | np.ndarray,
) -> int:
    """Replace the keys of ``fcurve`` from ``span[0]`` to ``span[1]`` with (frames, values), none to clear them;
    keep the others. ``interpolation``: one for all keys, or one per key. Returns the number of keys written."""
    points = fcurve.keyframe_points
    old_count = len(points)
    old_co = np.zeros(old_count * 2, dtype=np.float32)
    old_interpolation = np.zeros(old_count, dtype=np.int32)
    if old_count:
        points.foreach_get("co", old_co)
        points.foreach_get("interpolation", old_interpolation)
    old_co = old_co.reshape(-1, 2)
    outside = (old_co[:, 0] < span[0] - 0.5) | (old_co[:, 0] > span[1] + 0.5)
    co = np.concatenate([old_co[outside], np.stack([frames, values], axis=1).astype(np.float32)])
    kinds = np.concatenate([old_interpolation[outside], np.broadcast_to(interpolation, len(frames)).astype(np.int32)])
    order = np.argsort(co[:, 0], kind="stable")
    points.clear()
    points.add(len(co))
    points.foreach_set("co", co[order].ravel())
    points.foreach_set("interpolation", kinds[order])
    fcurve.update()
    return len(frames)


def _clear_stale_channels(
    obj: bpy.types.Object, action: bpy.types.Action, slot: str, written: set[str], span: tuple[float, float]
) -> None:
    """Clear, within ``span``, the keys earlier bakes wrote on channels this bake did not write (bones the map
    no longer drives, a root that is no longer the root); F-curves left without keys are removed and their
    channel goes back to rest. Then remember what bakes have keys on now."""
    try:
        record = json.loads(action.get(BAKED_PROP, "{}"))
    except ValueError:  # edited by hand into something else: start the record afresh
        record = {}
    stale = set(record.get(slot, ())) - written
    channels = compat.action_channels(action, obj)
    still_keyed = set()
    for fcurve in [fc for fc in channels.fcurves if fc.data_path in stale]:
        _write_channel(fcurve, span, np.zeros(0), np.zeros(0), 0)
        if len(fcurve.keyframe_points):
            still_keyed.add(fcurve.data_path)
            continue
        path, index = fcurve.data_path, fcurve.array_index
        channels.fcurves.remove(fcurve)
        owner_path, prop = path.rsplit(".", 1)
        try:
            owner = obj.path_resolve(owner_path)
        except ValueError:  # the bone is gone: nothing to put back
            continue
        getattr(owner, prop)[index] = REST_VALUES[prop][index]
    record[slot] = sorted(written | still_keyed)
    action[BAKED_PROP] = json.dumps(record)


def bake_pose(
    obj: bpy.types.Object,
    pose: PoseFrames,
    frames: np.ndarray,
    *,
    interpolation: str = "BEZIER",
    reduce_tolerance_deg: float | None = None,
    root_scale: float = 1.0,
) -> BakeReport:
    """Write ``pose`` into the armature's action (made and assigned if it has none), frame ``i`` of the pose at
    timeline frame ``frames[i]`` (increasing; a clip from timeline frame ``s`` passes ``s + arange(N)``).

    ``reduce_tolerance_deg``: with a value, keep only the keys needed to stay within that many degrees (bones)
    and that many degrees of arc at ``root_scale`` (the rig's leg length) for the root location; keys are then
    linear. The key before each of the pose's shot cuts is constant (it holds until the cut). Sets the driven
    bones to quaternion rotation. Within the baked frames, clears the keys earlier bakes
    wrote on bones this pose does not drive. Raises BakeError, before writing anything, when the armature lacks
    a bone of the pose.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    count = len(pose)
    if count == 0:
        raise ValueError("nothing to bake: the pose has no frames")
    frames = np.asarray(frames, dtype=np.float64)
    if frames.shape != (count,) or np.any(np.diff(frames) <= 0):
        raise ValueError(f"frames must be {count} increasing timeline frames, got shape {frames.shape}")
    missing = missing_bones(obj, pose.bones)
    if missing:
        raise BakeError(
            f"Armature '{obj.name}' has no bones {', '.join(repr(b) for b in missing)} any more: they were renamed "
            "or deleted after the pose was solved. Nothing was baked; bake again to solve for the bones it has now"
        )
    if reduce_tolerance_deg is not None:
        interpolation = "LINEAR"  # the reduction's error is measured against straight lines between keys
    kinds = np.full(count, _enum_value(interpolation), dtype=np.int32)
    last_of_shot = np.array([start - 1 for start in pose.shot_starts if 0 < start < count], dtype=int)
    kinds[last_of_shot] = _enum_value("CONSTANT")  # a cut: no blend between two shots' keys, even between frames
    animation = obj.animation_data or obj.animation_data_create()
    if animation.action is None:
        animation.action = bpy.data.actions.new(f"{obj.name} Mocap")
    action = animation.action
    channels: list[tuple[str, str, np.ndarray, float | None]] = []
    for index, bone in enumerate(pose.bones):
        pose_bone = obj.pose.bones[bone]
        if pose_bone.rotation_mode != "QUATERNION":
            pose_bone.rotation_mode = "QUATERNION"
        tolerance = None if reduce_tolerance_deg is None else math.radians(reduce_tolerance_deg) / 2.0
        channels.append((bone, "rotation_quaternion", pose.rotations[:, index], tolerance))
    tolerance = None if reduce_tolerance_deg is None else math.radians(reduce_tolerance_deg) * root_scale
    channels.append((pose.root_bone, "location", pose.root_location, tolerance))

    fcurves = keys = 0
    groups = None
    span = (float(frames[0]), float(frames[-1]))
    written = set()
    for bone, prop, values, tolerance in channels:
        keep = reduce_keys(values, tolerance) if tolerance is not None else np.ones(count, dtype=bool)
        keep[last_of_shot] = True
        keep[last_of_shot + 1] = True
        data_path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'
        written.add(data_path)
        for component in range(values.shape[1]):
            fcurve = compat.fcurve_ensure(action, obj, data_path, component)
            if fcurve.group is None:
                groups = groups if groups is not None else compat.action_channels(action, obj).groups
                fcurve.group = groups.get(bone) or groups.new(bone)
            keys += _write_channel(fcurve, span, frames[keep], values[keep, component], kinds[keep])
            fcurves += 1
    slot = compat.action_slot_identifier(obj)
    _clear_stale_channels(obj, action, slot, written, span)
    return BakeReport(action.name, slot, fcurves, keys, int(frames[0]), int(frames[-1]), tuple(pose.bones))
