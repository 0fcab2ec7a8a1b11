"""Solved poses into an Action, written in bulk. Main thread only.

Each channel (one quaternion component of one bone, one root location axis) is written with one
``keyframe_points.add(n)`` and one ``foreach_set("co", ...)``, interpolation with one ``foreach_set`` too, never
one ``keyframe_insert`` per key. Baking again over the same frames replaces those keys (keys outside the baked
range are kept), so a second bake never duplicates. Optional key reduction keeps only the keys that linear
interpolation cannot reproduce within a tolerance (Ramer-Douglas-Peucker per bone, its channels together).

Actions: F-curves are found or made through :func:`compat.fcurve_ensure` (the slotted-action switch of 4.4+
lives there); grouping them per bone needs the channel bag's groups on 4.4+ and the action's before, which
:func:`_channel_groups` switches on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from . import compat
from .retarget.solver import PoseFrames

INTERPOLATIONS = ("BEZIER", "LINEAR")


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


def _channel_groups(action: bpy.types.Action, obj: bpy.types.Object) -> bpy.types.bpy_prop_collection:
    """Where the action's F-curve groups live for ``obj``: its slot's channel bag (4.4+), or the action."""
    if compat.HAS_SLOTTED_ACTIONS:
        from bpy_extras import anim_utils

        return anim_utils.action_get_channelbag_for_slot(action, obj.animation_data.action_slot).groups
    return action.groups


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


def _write_channel(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray, interpolation: int) -> int:
    """Replace the keys of ``fcurve`` from ``frames[0]`` to ``frames[-1]`` with (frames, values); keep the others.
    Returns the number of keys written."""
    points = fcurve.keyframe_points
    old_count = len(points)
    old_co = np.zeros(old_count * 2, dtype=np.float32)
    old_interpolation = np.zeros(old_count, dtype=np.int32)
    if old_count:
        points.foreach_get("co", old_co)
        points.foreach_get("interpolation", old_interpolation)
    old_co = old_co.reshape(-1, 2)
    outside = (old_co[:, 0] < frames[0] - 0.5) | (old_co[:, 0] > frames[-1] + 0.5)
    co = np.concatenate([old_co[outside], np.stack([frames, values], axis=1).astype(np.float32)])
    kinds = np.concatenate([old_interpolation[outside], np.full(len(frames), interpolation, dtype=np.int32)])
    order = np.argsort(co[:, 0], kind="stable")
    points.clear()
    points.add(len(co))
    points.foreach_set("co", co[order].ravel())
    points.foreach_set("interpolation", kinds[order])
    fcurve.update()
    return len(frames)


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
    linear. Sets the driven bones to quaternion rotation.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    count = len(pose)
    if count == 0:
        raise ValueError("nothing to bake: the pose has no frames")
    frames = np.asarray(frames, dtype=np.float64)
    if frames.shape != (count,) or np.any(np.diff(frames) <= 0):
        raise ValueError(f"frames must be {count} increasing timeline frames, got shape {frames.shape}")
    if reduce_tolerance_deg is not None:
        interpolation = "LINEAR"  # the reduction's error is measured against straight lines between keys
    kind = _enum_value(interpolation)
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
    for bone, prop, values, tolerance in channels:
        keep = reduce_keys(values, tolerance) if tolerance is not None else np.ones(count, dtype=bool)
        data_path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'
        for component in range(values.shape[1]):
            fcurve = compat.fcurve_ensure(action, obj, data_path, component)
            if fcurve.group is None:
                groups = groups if groups is not None else _channel_groups(action, obj)
                fcurve.group = groups.get(bone) or groups.new(bone)
            keys += _write_channel(fcurve, frames[keep], values[keep, component], kind)
            fcurves += 1
    slot = animation.action_slot.identifier if compat.HAS_SLOTTED_ACTIONS and animation.action_slot else ""
    return BakeReport(action.name, slot, fcurves, keys, int(frames[0]), int(frames[-1]), tuple(pose.bones))
