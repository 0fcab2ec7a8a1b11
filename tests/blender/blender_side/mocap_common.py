"""Helpers for the pose-to-armature scenarios: rigs (a Rigify metarig, a Mixamo-named FBX-like rig), poses with
known rotations, landmarks derived from what Blender evaluates, pose job folders, and reading actions back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector
from support.mixamo_tpose import MIXAMO_JOINTS

LIMBS = ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")
SIDES = {"L": "left", "R": "right"}


def add_metarig() -> bpy.types.Object:
    """Rigify's human metarig, as a user adds it."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.object


def add_mixamo_rig(prefix: str = "mixamorig:") -> bpy.types.Object:
    """A Mixamo-named rig as an FBX import leaves it: Y-up bones in centimetres under an object turned 90 degrees
    about X and scaled 0.01, bone tails pointing anywhere (not at the child) with arbitrary rolls."""
    rng = np.random.default_rng(12)
    data = bpy.data.armatures.new("Mixamo")
    obj = bpy.data.objects.new("Mixamo", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    joints = list(MIXAMO_JOINTS)
    joints += [
        (n.replace("Left", "Right"), p.replace("Left", "Right") if p and p.startswith("Left") else p, (-h[0], *h[1:]))
        for n, p, h in MIXAMO_JOINTS
        if n.startswith("Left")
    ]
    for name, parent, (x, y, z) in joints:
        bone = data.edit_bones.new(prefix + name)
        bone.head = (x, z, -y)  # Z-up centimetres to the FBX's Y-up armature space
        direction = rng.normal(size=3)
        bone.tail = bone.head + Vector((6.0 * direction / np.linalg.norm(direction)).tolist())
        bone.roll = float(rng.uniform(-math.pi, math.pi))
        if parent:
            bone.parent = data.edit_bones[prefix + parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    obj.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()
    return obj


def hinge_axis(obj: bpy.types.Object, upper: str, lower: str, end: str, fold: np.ndarray) -> np.ndarray:
    """The elbow or knee hinge in ``lower``'s local axes: the rest bend's plane normal, or (straight rest limb)
    the normal of the plane the joint folds in (``fold``: armature-space direction the lower part folds to)."""
    bones = obj.data.bones
    a, b, c = (np.array(bones[n].head_local) for n in (upper, lower, end))
    u, v = (b - a) / np.linalg.norm(b - a), (c - b) / np.linalg.norm(c - b)
    normal = np.cross(u, v)
    if np.linalg.norm(normal) < 0.05:
        normal = np.cross(u, fold)
    normal /= np.linalg.norm(normal)
    rest = np.array(bones[lower].matrix_local.to_3x3())
    return rest.T @ normal


def random_rotation(rng: np.random.Generator, max_degrees: float) -> Matrix:
    axis = rng.normal(size=3)
    return Matrix.Rotation(math.radians(rng.uniform(-max_degrees, max_degrees)), 3, axis / np.linalg.norm(axis))


def set_rotation(obj: bpy.types.Object, bone: str, matrix: Matrix) -> None:
    pose_bone = obj.pose.bones[bone]
    pose_bone.rotation_mode = "QUATERNION"
    pose_bone.rotation_quaternion = matrix.to_quaternion()


def pose_randomly(obj: bpy.types.Object, bone_map: Any, rng: np.random.Generator, hinges: dict[str, Any]) -> None:
    """Known rotations: any swing and twist for the hips, upper arms, hands, thighs, feet and head; elbows and knees
    bend 30 to 100 degrees about their hinge (all a hinge does); a straight spine."""
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
        pose_bone.location = (0, 0, 0)
    bones = bone_map.bones
    set_rotation(obj, bones["hips"], random_rotation(rng, 30))
    set_rotation(obj, bones["head"], random_rotation(rng, 20))
    for side in SIDES:
        set_rotation(obj, bones[f"upper_arm.{side}"], random_rotation(rng, 60))
        set_rotation(obj, bones[f"hand.{side}"], random_rotation(rng, 35))
        set_rotation(obj, bones[f"thigh.{side}"], random_rotation(rng, 35))
        set_rotation(obj, bones[f"foot.{side}"], random_rotation(rng, 20))
        for role in (f"forearm.{side}", f"shin.{side}"):
            angle = math.radians(rng.uniform(30, 100))
            set_rotation(obj, bones[role], Matrix.Rotation(angle, 3, hinges[role]))


def landmarks(obj: bpy.types.Object, bone_map: Any, rest_points: dict[str, np.ndarray], scale: float) -> np.ndarray:
    """(33, 3) MediaPipe world landmarks of the evaluated pose, seen by a camera in front: joints at posed bone
    heads, the knuckles, heel, toe tip and face at their rest points carried by their bone, all through the
    object's world matrix, hip-centred, in metres divided by ``scale`` (a person of another size)."""
    from bl_ext.user_default.vfx_motion_capture.addon.bridge.retarget import frames

    bones = bone_map.bones
    carried_by = {"index": "hand", "pinky": "hand", "heel": "foot", "foot_index": "foot"}
    joints = {"shoulder": "upper_arm", "elbow": "forearm", "wrist": "hand", "hip": "thigh", "knee": "shin"}
    joints["ankle"] = "foot"
    world = obj.matrix_world
    out = np.zeros((33, 3))

    def carried(bone: str, rest_point: np.ndarray) -> np.ndarray:
        pose_bone = obj.pose.bones[bone]
        local = pose_bone.bone.matrix_local.inverted() @ Matrix.Translation(rest_point.tolist())
        return np.array(world @ (pose_bone.matrix @ local).to_translation())

    for side, word in SIDES.items():
        for joint, role in joints.items():
            out[frames.LANDMARK[f"{word}_{joint}"]] = np.array(world @ obj.pose.bones[bones[f"{role}.{side}"]].head)
        for name, role in carried_by.items():
            out[frames.LANDMARK[f"{word}_{name}"]] = carried(bones[f"{role}.{side}"], rest_points[f"{word}_{name}"])
        for name in ("ear", "eye"):
            out[frames.LANDMARK[f"{word}_{name}"]] = carried(bones["head"], rest_points[f"{word}_{name}"])
    out[frames.LANDMARK["nose"]] = carried(bones["head"], rest_points["nose"])
    hips = (out[frames.LANDMARK["left_hip"]] + out[frames.LANDMARK["right_hip"]]) / 2
    return frames.blender_to_mediapipe((out - hips) / scale)


def rotations(obj: bpy.types.Object, names: list[str]) -> np.ndarray:
    """(len(names), 3, 3) how each pose bone is turned from its rest orientation, in armature space (evaluated
    posed rotation @ rest rotation^-1): comparable between rigs whose bones have different rolls."""
    out = []
    for name in names:
        pose_bone = obj.pose.bones[name]
        posed = np.array(pose_bone.matrix.to_3x3())
        rest = np.array(pose_bone.bone.matrix_local.to_3x3())
        posed, rest = posed / np.linalg.norm(posed, axis=0), rest / np.linalg.norm(rest, axis=0)
        out.append(posed @ rest.T)
    return np.array(out)


def angle_degrees(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    relative = np.swapaxes(first, -1, -2) @ second
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def write_pose_job(
    folder: Path, world: np.ndarray, width: int = 640, height: int = 480, image: np.ndarray | None = None
) -> Path:
    """A pose job's published outputs (arrays and summary) as the daemon writes them; every landmark seen;
    ``image`` landmarks (N, 33, 3) normalised, or all at the frame's centre."""
    count = world.shape[0]
    (folder / "arrays").mkdir(parents=True)
    arrays = {
        "world_landmarks": world.astype(np.float32),
        "image_landmarks": (np.full((count, 33, 3), 0.5) if image is None else image).astype(np.float32),
        "visibility": np.ones((count, 33), dtype=np.float32),
        "present": np.ones(count, dtype=bool),
    }
    for name, array in arrays.items():
        np.save(folder / "arrays" / f"{name}.npy", array)
    summary = {"frame_count": count, "frames_with_person": count, "fps": 24.0, "width": width, "height": height}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def add_succeeded_job(scene: Any, job_id: str, output_dir: Path, frame_start: int) -> Any:
    """A succeeded pose job in the scene's list, as if the daemon had run it on a strip starting at
    ``frame_start``."""
    job = scene.vfx_mocap.jobs.add()
    job.name, job.mode, job.state = job_id, "pose", "succeeded"
    job.output_dir = str(output_dir)
    job.source_frame_start = frame_start
    return job


def wait_for_bake(addon: ModuleType, harness: ModuleType, count_before: int, timeout: float = 60.0) -> Any:
    """Run the add-on's timers (the bpy module fires none) until a new bake finished; return it."""

    def done() -> bool:
        addon.pose.mocap_tasks.tick()
        return len(addon.pose.mocap_tasks.finished) > count_before

    harness.pump_until(addon, done, "the bake", timeout=timeout)
    finished = addon.pose.mocap_tasks.finished[-1]
    assert finished.report is not None, finished.error
    return finished


def fcurves(obj: bpy.types.Object) -> Any:
    """The F-curves of the armature's action for its slot (the action's own before slotted actions)."""
    from bpy_extras import anim_utils

    animation = obj.animation_data
    if hasattr(animation, "action_slot"):
        return anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot).fcurves
    return animation.action.fcurves


def action_channels(obj: bpy.types.Object) -> dict[tuple[str, int], np.ndarray]:
    """Every F-curve of the armature's action: (data path, index) -> keys (K, 2) frame, value."""
    out = {}
    for fcurve in fcurves(obj):
        co = np.zeros(len(fcurve.keyframe_points) * 2, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        out[(fcurve.data_path, fcurve.array_index)] = co.reshape(-1, 2)
    return out


def bone_of(data_path: str) -> str:
    return data_path.split('"')[1]


class LayoutProbe:
    """Stands in for ``UILayout`` to run panels' ``draw`` without a window: every property and operator a panel
    names must exist (a typo in a draw function otherwise only shows as a console error when it is drawn)."""

    def __init__(self, seen: dict[str, list[str]]) -> None:
        self.seen = seen
        self.enabled = True
        self.scale_y = 1.0
        self.use_property_split = False

    def _child(self, *_args: Any, **_kwargs: Any) -> LayoutProbe:
        return LayoutProbe(self.seen)

    row = column = box = split = _child

    def label(self, text: str = "", **_kwargs: Any) -> None:
        self.seen["labels"].append(text)

    def prop(self, data: Any, name: str, **_kwargs: Any) -> None:
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.seen["props"].append(name)

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **_kwargs: Any) -> None:
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        assert search_name in search_data.bl_rna.properties, f"no collection {search_name!r} to search"
        self.seen["props"].append(name)

    def operator(self, idname: str, **_kwargs: Any) -> Any:
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        self.seen["operators"].append(idname)
        return type("OperatorProperties", (), {})()


def draw_panels(suffixes: tuple[str, ...] = ("_posetoarmature", "_livepose")) -> dict[str, list[str]]:
    """Run the ``draw`` of the add-on's panels whose id ends with one of ``suffixes``; what they showed."""
    seen: dict[str, list[str]] = {"panels": [], "labels": [], "props": [], "operators": []}
    for name in sorted(dir(bpy.types)):
        if name.startswith("VFXMOCAP_PT_") and name.endswith(suffixes):
            panel = getattr(bpy.types, name)
            panel.draw(type("PanelProbe", (), {"layout": LayoutProbe(seen)})(), bpy.context)
            seen["panels"].append(name)
    return seen
