"""Armatures to plain data and solved poses back onto them. Main thread only: it touches Blender data.

:func:`read_rig` describes an armature's rest pose for the solver (which then runs on any thread);
:func:`apply_pose` writes one solved frame into the pose bones (the live loop calls it from its timer);
:func:`apply_switches` sets the custom properties a bone map asks for (e.g. a Rigify rig's FK switches).
"""

from __future__ import annotations

import bpy
import numpy as np

from ..bridge.retarget.bone_maps import BoneMap
from ..bridge.retarget.rig_data import RigData
from ..bridge.retarget.solver import PoseFrames
from ..common.errors import UserError


class ArmatureError(UserError):
    """The object cannot be driven; the message says what to change."""


def require_armature(obj: bpy.types.Object | None) -> bpy.types.Object:
    """``obj`` if it is an armature object, else ArmatureError."""
    if obj is None:
        raise ArmatureError("No armature chosen: pick one under Pose to Armature (or make one the active object)")
    if obj.type != "ARMATURE":
        raise ArmatureError(f"'{obj.name}' is a {obj.type.lower()} object, not an armature")
    return obj


def read_rig(obj: bpy.types.Object) -> RigData:
    """The armature's rest pose: bone names, parents, armature-space rest matrices and lengths."""
    bones = require_armature(obj).data.bones
    if not len(bones):
        raise ArmatureError(f"Armature '{obj.name}' has no bones")
    rest = np.array([np.array(bone.matrix_local) for bone in bones], dtype=np.float64)
    return RigData.from_bones(
        obj.name,
        [bone.name for bone in bones],
        [bone.parent.name if bone.parent else None for bone in bones],
        rest,
        [bone.length for bone in bones],
    )


def apply_switches(obj: bpy.types.Object, bone_map: BoneMap) -> None:
    """Set the map's switches (``pose.bones[bone][prop] = value``) on the bones the armature has."""
    for switch in bone_map.switches:
        pose_bone = obj.pose.bones.get(switch.bone)
        if pose_bone is not None:
            pose_bone[switch.prop] = switch.value


def apply_pose(obj: bpy.types.Object, pose: PoseFrames, index: int = -1) -> None:
    """Pose the armature with frame ``index`` of ``pose``: quaternion rotations of the driven bones, location of
    the root. Switches the driven bones to quaternion rotation."""
    bones = obj.pose.bones
    for name, quat in zip(pose.bones, pose.rotations[index], strict=True):
        pose_bone = bones[name]
        if pose_bone.rotation_mode != "QUATERNION":
            pose_bone.rotation_mode = "QUATERNION"
        pose_bone.rotation_quaternion = quat
    bones[pose.root_bone].location = pose.root_location[index]


def clear_pose(obj: bpy.types.Object, bone_names: list[str] | tuple[str, ...]) -> None:
    """Put ``bone_names`` back at rest (identity rotation, no location)."""
    for name in bone_names:
        pose_bone = obj.pose.bones.get(name)
        if pose_bone is not None:
            pose_bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
            pose_bone.location = (0.0, 0.0, 0.0)
