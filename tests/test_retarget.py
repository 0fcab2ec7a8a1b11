"""The retargeting maths in plain Python: frames, rotations, filters, bone maps and the solver on synthetic rigs.

The rigs here are built from numbers (the Rigify metarig's own joint positions, and a Mixamo-named T-pose rig
with arbitrary bone rolls and tails that do not point at their children). Poses are made with an independent
forward-kinematics model of Blender's pose convention (posed = parent posed @ parent rest^-1 @ rest @ basis),
turned into MediaPipe landmarks, solved, and the solved rotations posed through the same model.
``addon/bridge/retarget`` is loaded as a package of its own: it must not need ``bpy``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.mixamo_tpose import MIXAMO_JOINTS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_retarget():
    """``addon/bridge/retarget`` imported without ``addon/__init__.py`` (which imports bpy), as ``vfx_retarget``."""
    from support.addon_modules import load_addon_package

    return load_addon_package("bridge.retarget", "vfx_retarget")


_load_retarget()
from vfx_retarget import bone_maps, filters, frames, rotations  # noqa: E402
from vfx_retarget import solver as solve  # noqa: E402
from vfx_retarget.rig_data import RigData, RigError  # noqa: E402

RNG_SEED = 7
LIMB_ROLES = [f"{limb}.{side}" for side in "LR" for limb in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")]


# -- synthetic rigs -------------------------------------------------------------------------------------------


def _frame(head, tail, roll):
    """A bone's rest matrix: Y from head to tail, X and Z turned by ``roll`` (radians) about Y."""
    head, tail = np.asarray(head, float), np.asarray(tail, float)
    y = (tail - head) / np.linalg.norm(tail - head)
    x = rotations.any_perpendicular(y)
    z = np.cross(x, y)
    x, z = np.cos(roll) * x + np.sin(roll) * z, -np.sin(roll) * x + np.cos(roll) * z
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = x, y, z, head
    return matrix


def _mirror(bones):
    out = []
    for name, parent, head, tail in bones:
        out.append((name, parent, head, tail))
        if name.endswith(".L"):
            right_parent = parent[:-2] + ".R" if parent.endswith(".L") else parent
            out.append((name[:-2] + ".R", right_parent, (-head[0], *head[1:]), (-tail[0], *tail[1:])))
    return out


METARIG_BONES = _mirror(
    [
        ("spine", None, (0, 0.055, 1.01), (0, 0.017, 1.157)),
        ("spine.001", "spine", (0, 0.017, 1.157), (0, 0.0, 1.293)),
        ("spine.002", "spine.001", (0, 0.0, 1.293), (0, 0.006, 1.466)),
        ("spine.003", "spine.002", (0, 0.006, 1.466), (0, 0.011, 1.658)),
        ("spine.004", "spine.003", (0, 0.011, 1.658), (0, -0.013, 1.72)),
        ("spine.005", "spine.004", (0, -0.013, 1.72), (0, -0.025, 1.781)),
        ("spine.006", "spine.005", (0, -0.025, 1.781), (0, -0.025, 1.98)),
        ("shoulder.L", "spine.003", (0.018, -0.068, 1.605), (0.169, 0.021, 1.605)),
        ("upper_arm.L", "shoulder.L", (0.195, 0.027, 1.585), (0.442, 0.089, 1.449)),
        ("forearm.L", "upper_arm.L", (0.442, 0.089, 1.449), (0.659, 0.049, 1.306)),
        ("hand.L", "forearm.L", (0.659, 0.049, 1.306), (0.723, 0.041, 1.258)),
        ("f_index.01.L", "hand.L", (0.746, 0.005, 1.248), (0.772, 0.001, 1.211)),
        ("f_pinky.01.L", "hand.L", (0.753, 0.076, 1.243), (0.759, 0.076, 1.216)),
        ("thigh.L", "spine", (0.098, 0.012, 1.072), (0.098, -0.029, 0.537)),
        ("shin.L", "thigh.L", (0.098, -0.029, 0.537), (0.098, 0.016, 0.085)),
        ("foot.L", "shin.L", (0.098, 0.016, 0.085), (0.098, -0.093, 0.017)),
        ("toe.L", "foot.L", (0.098, -0.093, 0.017), (0.098, -0.161, 0.017)),
        ("heel.02.L", "foot.L", (0.06, 0.046, 0.0), (0.14, 0.046, 0.0)),
    ]
)


def metarig() -> RigData:
    rng = np.random.default_rng(1)
    rest = [_frame(h, t, rng.uniform(-np.pi, np.pi)) for _, _, h, t in METARIG_BONES]
    lengths = [np.linalg.norm(np.subtract(t, h)) for _, _, h, t in METARIG_BONES]
    return RigData.from_bones("metarig", [b[0] for b in METARIG_BONES], [b[1] for b in METARIG_BONES], rest, lengths)


UNREAL_LIMBS = [  # the Unreal mannequin's arms and legs (left side), centimetres, an A-pose; each leg in a plane
    ("upperarm_l", "clavicle_l", (17, 0, 146)),
    ("upperarm_twist_01_l", "upperarm_l", (25, 1, 138)),
    ("lowerarm_l", "upperarm_l", (33, 3, 129)),
    ("lowerarm_twist_01_l", "lowerarm_l", (41, 1, 120)),
    ("hand_l", "lowerarm_l", (50, -1, 111)),
    ("thigh_l", "pelvis", (9, 1, 92)),
    ("thigh_twist_01_l", "thigh_l", (9, 1, 72)),
    ("calf_l", "thigh_l", (9, 2, 50)),
    ("foot_l", "calf_l", (9, 4, 9)),
    ("ball_l", "foot_l", (9, -10, 2)),
    ("ik_foot_root", "root", (0, 0, 0)),
    ("ik_foot_l", "ik_foot_root", (9, 4, 9)),
    ("ik_hand_root", "root", (0, 0, 0)),
    ("ik_hand_l", "ik_hand_root", (50, -1, 111)),
]
UE4_BONES = [  # UE4's mannequin: three spine bones, the clavicles on the last
    ("root", None, (0, 0, 0)),
    ("pelvis", "root", (0, 1, 97)),
    ("spine_01", "pelvis", (0, 1, 108)),
    ("spine_02", "spine_01", (0, 0, 124)),
    ("spine_03", "spine_02", (0, -1, 139)),
    ("neck_01", "spine_03", (0, -2, 155)),
    ("head", "neck_01", (0, -3, 164)),
    ("clavicle_l", "spine_03", (3, -2, 150)),
    ("index_01_l", "hand_l", (56, -4, 104)),
    ("pinky_01_l", "hand_l", (55, 2, 104)),
    *UNREAL_LIMBS,
]
UE5_BONES = [  # UE5's mannequin: five spine bones, two neck bones, finger metacarpals
    ("root", None, (0, 0, 0)),
    ("pelvis", "root", (0, 1, 97)),
    ("spine_01", "pelvis", (0, 1, 105)),
    ("spine_02", "spine_01", (0, 1, 112)),
    ("spine_03", "spine_02", (0, 0, 120)),
    ("spine_04", "spine_03", (0, 0, 130)),
    ("spine_05", "spine_04", (0, -1, 140)),
    ("neck_01", "spine_05", (0, -2, 152)),
    ("neck_02", "neck_01", (0, -2, 157)),
    ("head", "neck_02", (0, -3, 164)),
    ("clavicle_l", "spine_05", (3, -2, 150)),
    ("index_metacarpal_l", "hand_l", (52, -3, 108)),
    ("index_01_l", "index_metacarpal_l", (56, -4, 104)),
    ("pinky_metacarpal_l", "hand_l", (52, 1, 108)),
    ("pinky_01_l", "pinky_metacarpal_l", (55, 2, 104)),
    *UNREAL_LIMBS,
]


def fbx_like_rig(name, joints, mirrored, prefix="", seed=2) -> RigData:
    """Both sides of ``joints`` (``mirrored(bone)``: the right-side name of a left bone, else None); every
    bone's tail points somewhere arbitrary (not at its child), with an arbitrary roll, as FBX imports leave them."""
    rng = np.random.default_rng(seed)
    bones = []
    for bone, parent, head in joints:
        bones.append((bone, parent, head))
        if mirrored(bone):
            right_parent = mirrored(parent) or parent
            bones.append((mirrored(bone), right_parent, (-head[0], head[1], head[2])))
    names, parents, rest, lengths = [], [], [], []
    for bone, parent, head in bones:
        direction = rng.normal(size=3)
        tail = np.add(head, 8.0 * direction / np.linalg.norm(direction))
        names.append(prefix + bone)
        parents.append(prefix + parent if parent else None)
        rest.append(_frame(head, tail, rng.uniform(-np.pi, np.pi)))
        lengths.append(8.0)
    return RigData.from_bones(name, names, parents, np.array(rest), lengths)


def mixamo_rig(prefix="mixamorig:") -> RigData:
    """Mixamo names, both sides."""
    return fbx_like_rig(
        "mixamo", MIXAMO_JOINTS, lambda b: b.replace("Left", "Right") if b.startswith("Left") else None, prefix
    )


def ue4_rig() -> RigData:
    return fbx_like_rig("ue4", UE4_BONES, lambda b: b[:-2] + "_r" if b.endswith("_l") else None, seed=3)


def ue5_rig() -> RigData:
    return fbx_like_rig("ue5", UE5_BONES, lambda b: b[:-2] + "_r" if b.endswith("_l") else None, seed=4)


RIGS = [metarig, mixamo_rig, ue4_rig, ue5_rig]
RIG_IDS = ["metarig", "mixamo", "ue4", "ue5"]


def random_rotation(rng, max_degrees, size=()):
    axis = rotations.normalize(rng.normal(size=(*size, 3)))[0]
    angle = np.radians(rng.uniform(-max_degrees, max_degrees, size=size))
    return rotations.axis_angle_matrix(axis, angle)


class Poser:
    """Forward kinematics of a rig with every bone's basis rotation (and the root's location) given."""

    def __init__(self, rig: RigData, bone_map) -> None:
        self.rig, self.bone_map = rig, bone_map
        self.inverse_rest = np.linalg.inv(rig.rest)

    def pose(self, basis: dict[str, np.ndarray], root_location=(0.0, 0.0, 0.0)) -> np.ndarray:
        """(B, 4, 4) posed armature-space matrices; ``basis`` maps bone -> (3, 3) rotation (missing: identity)."""
        posed = np.zeros_like(self.rig.rest)
        for i, bone in enumerate(self.rig.bones):
            local = np.eye(4)
            local[:3, :3] = basis.get(bone, np.eye(3))
            if self.rig.parents[i] < 0:
                local[:3, 3] = root_location
                posed[i] = self.rig.rest[i] @ local
            else:
                p = self.rig.parents[i]
                posed[i] = posed[p] @ self.inverse_rest[p] @ self.rig.rest[i] @ local
        return posed

    def attached(self, posed, bone, rest_point):
        i = self.rig.index(bone)
        return (posed[i] @ self.inverse_rest[i] @ np.append(rest_point, 1.0))[:3]

    def landmarks(self, posed, retargeter: solve.Retargeter, scale=1.0, to_world=None) -> np.ndarray:
        """(33, 3) MediaPipe world landmarks (metres, hip-centred) of the posed rig; rig units / ``scale``;
        ``to_world`` turns armature axes into the world's (the armature object's rotation)."""
        bones = self.bone_map.bones
        rest_points = retargeter.rest_points
        where = {}
        for side, word in solve.SIDE_WORDS.items():
            where[f"{word}_shoulder"] = (bones[f"upper_arm.{side}"], None)
            where[f"{word}_elbow"] = (bones[f"forearm.{side}"], None)
            where[f"{word}_wrist"] = (bones[f"hand.{side}"], None)
            where[f"{word}_hip"] = (bones[f"thigh.{side}"], None)
            where[f"{word}_knee"] = (bones[f"shin.{side}"], None)
            where[f"{word}_ankle"] = (bones[f"foot.{side}"], None)
            for name in ("index", "pinky", "heel", "foot_index"):
                anchor_bone = bones[f"hand.{side}"] if name in ("index", "pinky") else bones[f"foot.{side}"]
                where[f"{word}_{name}"] = (anchor_bone, rest_points[f"{word}_{name}"])
            for name in ("ear", "eye"):
                where[f"{word}_{name}"] = (bones["head"], rest_points[f"{word}_{name}"])
        where["nose"] = (bones["head"], rest_points["nose"])
        points = np.zeros((33, 3))
        for name, (bone, rest_point) in where.items():
            i = self.rig.index(bone)
            point = posed[i, :3, 3] if rest_point is None else self.attached(posed, bone, rest_point)
            points[frames.LANDMARK[name]] = point
        hips = (points[frames.LANDMARK["left_hip"]] + points[frames.LANDMARK["right_hip"]]) / 2
        to_world = np.eye(3) if to_world is None else to_world
        return frames.blender_to_mediapipe((points - hips) @ to_world.T / scale)


def random_pose(rig: RigData, bone_map, retargeter, rng, spine_bend=12.0) -> dict[str, np.ndarray]:
    """Plausible basis rotations: any swing and twist for the upper arms, hands, thighs, feet, torso and head;
    elbows and knees bend about their hinge only (that is all a hinge does). Spine bones and the chest turn up
    to ``spine_bend`` degrees each."""
    bones = bone_map.bones
    basis = {bones["hips"]: random_rotation(rng, 35)}
    for bone in (*bone_map.chains["spine"], bones["chest"]):
        basis[bone] = random_rotation(rng, spine_bend)
    for bone in (*bone_map.chains["neck"], bones["head"]):
        basis[bone] = random_rotation(rng, 12)
    for side in "LR":
        basis[bones[f"upper_arm.{side}"]] = random_rotation(rng, 70)
        basis[bones[f"hand.{side}"]] = random_rotation(rng, 40)
        basis[bones[f"thigh.{side}"]] = random_rotation(rng, 40)
        basis[bones[f"foot.{side}"]] = random_rotation(rng, 25)
        for limb, hinge_role in (("forearm", f"forearm.{side}"), ("shin", f"shin.{side}")):
            step = next(s for s in retargeter.steps if retargeter.slots[s.slot].bone == bones[hinge_role])
            bend = np.radians(rng.uniform(30, 110 if limb == "forearm" else 90))
            basis[bones[hinge_role]] = rotations.axis_angle_matrix(step.cue_rest, np.array(bend))
    return basis


def solve_random_poses(
    rig, bone_map, count=40, noise_m=0.0, scale=1.0, seed=RNG_SEED, smoothing=None, to_world=None, spine_bend=12.0
):
    """(truth posed (N, B, 4, 4), solved posed (N, B, 4, 4), PoseFrames, retargeter)."""
    rng = np.random.default_rng(seed)
    retargeter = solve.Retargeter(rig, bone_map, solve.SolveOptions(smoothing=smoothing))
    poser = Poser(rig, bone_map)
    truths, landmarks = [], []
    for _ in range(count):
        posed = poser.pose(random_pose(rig, bone_map, retargeter, rng, spine_bend))
        truths.append(posed)
        noise = rng.normal(scale=noise_m, size=(33, 3))
        landmarks.append(poser.landmarks(posed, retargeter, scale, to_world) + noise)
    result = retargeter.solve_clip(np.array(landmarks), np.ones((count, 33)), np.ones(count, bool), fps=24.0)
    solved = []
    for frame in range(count):
        basis = {bone: rotations.matrix_from_quat(result.rotations[frame, i]) for i, bone in enumerate(result.bones)}
        solved.append(poser.pose(basis, result.root_location[frame]))
    return np.array(truths), np.array(solved), result, retargeter


def errors_degrees(rig, bone_map, truth, solved, roles):
    indices = [rig.index(bone_map.bones[role]) for role in roles]
    return np.degrees(rotations.rotation_angle(truth[:, indices, :3, :3], solved[:, indices, :3, :3]))


# -- frames ---------------------------------------------------------------------------------------------------


def test_mediapipe_world_maps_to_blender_with_the_person_facing_minus_y():
    # A person facing the camera: nose towards the camera (-z), left shoulder on the image's right (+x), head up
    # (-y in MediaPipe, whose y points down).
    nose, left_shoulder, head_top = frames.mediapipe_to_blender(np.array([[0, 0, -0.1], [0.2, 0, 0], [0, -0.5, 0]]))
    np.testing.assert_allclose(nose, [0, -0.1, 0], atol=1e-12)  # in front of the character: -Y
    np.testing.assert_allclose(left_shoulder, [0.2, 0, 0], atol=1e-12)  # the character's left: +X
    np.testing.assert_allclose(head_top, [0, 0, 0.5], atol=1e-12)  # up: +Z
    assert np.linalg.det(frames.MEDIAPIPE_TO_BLENDER) == pytest.approx(1.0)
    points = np.random.default_rng(0).normal(size=(5, 33, 3))
    np.testing.assert_allclose(frames.mediapipe_to_blender(points), points @ frames.MEDIAPIPE_TO_BLENDER.T)
    np.testing.assert_allclose(frames.blender_to_mediapipe(frames.mediapipe_to_blender(points)), points)


def test_landmark_names_match_the_daemons_pose_runner():
    from models.skeleton import MEDIAPIPE_POSE_LANDMARKS

    assert frames.LANDMARK_NAMES == MEDIAPIPE_POSE_LANDMARKS


# -- rotations ------------------------------------------------------------------------------------------------


def test_quaternions_and_matrices_round_trip_including_half_turns():
    rng = np.random.default_rng(3)
    matrices = random_rotation(rng, 180, size=(500,))
    matrices[0] = rotations.axis_angle_matrix(np.array([0.0, 1.0, 0.0]), np.array(np.pi))
    quats = rotations.quat_from_matrix(matrices)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0)
    np.testing.assert_allclose(rotations.matrix_from_quat(quats), matrices, atol=1e-9)
    # Blender's convention: a quarter turn about Z is (cos 45, 0, 0, sin 45) and takes X to Y.
    quarter = rotations.quat_from_matrix(rotations.axis_angle_matrix(np.array([0, 0, 1.0]), np.array(np.pi / 2)))
    np.testing.assert_allclose(quarter, [np.sqrt(0.5), 0, 0, np.sqrt(0.5)], atol=1e-12)
    composed = rotations.quat_multiply(quats[1], quats[2])
    np.testing.assert_allclose(rotations.matrix_from_quat(composed), matrices[1] @ matrices[2], atol=1e-9)


def test_swing_is_the_smallest_rotation_and_handles_opposite_vectors():
    rng = np.random.default_rng(4)
    a, b = rotations.normalize(rng.normal(size=(200, 3)))[0], rotations.normalize(rng.normal(size=(200, 3)))[0]
    b[0] = -a[0]
    swing = rotations.rotation_between(a, b)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", swing, a), b, atol=1e-9)
    angles = rotations.rotation_angle(np.broadcast_to(np.eye(3), swing.shape), swing)
    np.testing.assert_allclose(angles, np.arccos(np.clip(np.sum(a * b, axis=1), -1, 1)), atol=1e-7)


def test_slerp_and_fractional_rotation():
    rng = np.random.default_rng(5)
    q0, q1 = rotations.quat_from_matrix(random_rotation(rng, 180, size=(2,)))
    np.testing.assert_allclose(rotations.slerp(q0, q1, 0.0), q0, atol=1e-12)
    assert abs(np.dot(rotations.slerp(q0, -q1, 1.0), q1)) == pytest.approx(1.0)
    half = rotations.fractional_rotation(q1, 0.5)
    np.testing.assert_allclose(rotations.quat_multiply(half, half), q1 * np.sign(q1[0]), atol=1e-9)


# -- filters --------------------------------------------------------------------------------------------------


def test_one_euro_removes_jitter_when_still_and_keeps_up_when_fast():
    rng = np.random.default_rng(6)
    times = np.arange(240) / 30.0
    still = 1.0 + rng.normal(scale=0.01, size=(240, 1))
    params = filters.OneEuroParams(min_cutoff=1.0, beta=0.3)
    smoothed = filters.one_euro(still, times, params)
    assert smoothed[0, 0] == still[0, 0], "the first sample passes unchanged"
    assert np.std(smoothed[60:]) < 0.5 * np.std(still[60:])
    ramp = np.stack([times * 5.0], axis=1)  # 5 units per second
    slow_filter = filters.one_euro(ramp, times, filters.OneEuroParams(min_cutoff=1.0, beta=0.0))
    fast_filter = filters.one_euro(ramp, times, filters.OneEuroParams(min_cutoff=1.0, beta=1.0))
    lag_slow, lag_fast = (ramp - slow_filter)[-1, 0], (ramp - fast_filter)[-1, 0]
    assert 0 < lag_fast < 0.3 * lag_slow, "beta opens the cutoff with speed: less lag"


def test_one_euro_parameters_are_checked():
    with pytest.raises(ValueError, match="min_cutoff"):
        filters.OneEuroParams(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        filters.OneEuroParams(beta=-1.0)


def test_quaternion_signs_are_made_continuous():
    rng = np.random.default_rng(8)
    quats = rotations.quat_from_matrix(random_rotation(rng, 20, size=(50, 3)))
    flipped = quats * np.where(rng.random((50, 3, 1)) < 0.5, -1.0, 1.0)
    continuous = filters.make_continuous(flipped)
    assert np.all(np.sum(continuous[1:] * continuous[:-1], axis=-1) >= 0)
    np.testing.assert_allclose(np.abs(np.sum(continuous * quats, axis=-1)), 1.0)


# -- rig data and bone maps -------------------------------------------------------------------------------------


def test_rig_data_sorts_parents_first_and_rejects_unknown_parents():
    rig = RigData.from_bones("r", ["child", "root"], ["root", None], np.stack([np.eye(4)] * 2), [1.0, 1.0])
    assert rig.bones == ("root", "child") and rig.parents == (-1, 0)
    with pytest.raises(RigError, match="'ghost' of 'child'"):
        RigData.from_bones("r", ["child"], ["ghost"], np.eye(4)[None], [1.0])


def test_detection_picks_the_map_of_each_rig_family():
    assert bone_maps.detect_map(metarig()).name == "Rigify metarig"
    detected = bone_maps.detect_map(mixamo_rig("mixamorig1:"))
    assert detected.name == "Mixamo"
    assert detected.bones["forearm.L"] == "mixamorig1:LeftForeArm"
    assert detected.chains["spine"] == ("mixamorig1:Spine", "mixamorig1:Spine1")
    generated_names = [
        "root", "torso", "chest", "neck", "head",
        *(f"{b}_fk.{s}" for s in "LR" for b in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")),
    ]  # fmt: skip
    generated = RigData.from_bones(
        "rig", generated_names, [None] * len(generated_names), np.stack([np.eye(4)] * 17), np.ones(17)
    )
    found = bone_maps.detect_map(generated)
    assert found.name.startswith("Rigify generated") and found.bones["upper_arm.R"] == "upper_arm_fk.R"
    assert bone_maps.Switch("upper_arm_parent.L", "IK_FK", 1.0) not in found.switches, "switches on absent bones go"


def test_generic_humanoid_names_are_recognised_with_their_spine_chain():
    names = [
        ("Hips", None), ("Spine", "Hips"), ("Chest", "Spine"), ("UpperChest", "Chest"), ("Neck", "UpperChest"),
        ("Head", "Neck"),
        *((f"{s}UpperArm", "UpperChest") for s in ("Left", "Right")),
        *((f"{s}LowerArm", f"{s}UpperArm") for s in ("Left", "Right")),
        *((f"{s}Hand", f"{s}LowerArm") for s in ("Left", "Right")),
        *((f"{s}UpperLeg", "Hips") for s in ("Left", "Right")),
        *((f"{s}LowerLeg", f"{s}UpperLeg") for s in ("Left", "Right")),
        *((f"{s}Foot", f"{s}LowerLeg") for s in ("Left", "Right")),
    ]  # fmt: skip
    rig = RigData.from_bones(
        "vrm", [n for n, _ in names], [p for _, p in names], np.stack([np.eye(4)] * len(names)), np.ones(len(names))
    )
    found = bone_maps.detect_map(rig)
    assert found.name == "Generic humanoid"
    assert found.bones["forearm.L"] == "LeftLowerArm"
    assert found.bones["thigh.R"] == "RightUpperLeg" and found.bones["shin.R"] == "RightLowerLeg"
    # The chest is the bone the arms hang from: "Chest" is below it and joins the spine chain.
    assert found.bones["chest"] == "UpperChest"
    assert found.chains["spine"] == ("Spine", "Chest") and found.chains["neck"] == ("Neck",)


@pytest.mark.parametrize(
    ("rig_factory", "chest", "spine", "neck"),
    [
        (ue4_rig, "spine_03", ("spine_01", "spine_02"), ("neck_01",)),
        (ue5_rig, "spine_05", ("spine_01", "spine_02", "spine_03", "spine_04"), ("neck_01", "neck_02")),
    ],
    ids=["ue4", "ue5"],
)
def test_unreal_mannequin_names_take_as_chest_the_bone_both_arms_hang_from(rig_factory, chest, spine, neck):
    found = bone_maps.detect_map(rig_factory())
    assert found.name == "Generic humanoid"
    assert (found.bones["hips"], found.bones["chest"], found.bones["head"]) == ("pelvis", chest, "head")
    assert found.chains == {"spine": spine, "neck": neck}
    assert found.bones["upper_arm.L"] == "upperarm_l" and found.bones["forearm.R"] == "lowerarm_r"
    assert found.bones["shin.L"] == "calf_l" and found.bones["toe.R"] == "ball_r"
    assert found.anchors["index.L"] == ("index_01_l", "head") and found.anchors["pinky.R"] == ("pinky_01_r", "head")


def test_a_map_driving_a_bone_between_a_driven_bone_and_its_parent_is_refused():
    """UE4 names read first-match-wins: spine_02 as the chest, spine_03 in the neck chain. The arms hang from
    spine_03, so posing them from spine_02 would ignore the neck chain's turn of spine_03."""
    rig = ue4_rig()
    detected = bone_maps.detect_map(rig)
    wrong = bone_maps.BoneMap(
        "first match",
        {**detected.bones, "chest": "spine_02"},
        {"spine": ("spine_01",), "neck": ("spine_03", "neck_01")},
        detected.anchors,
    )
    with pytest.raises(bone_maps.BoneMapError) as err:
        solve.Retargeter(rig, wrong)
    message = str(err.value)
    assert "'spine_03' (neck chain) is driven and lies between 'upperarm_l' (upper_arm.L) and 'spine_02'" in message
    assert "map 'spine_03' as the chest instead of 'spine_02'" in message
    # Nothing driven may sit above the root either: the root is posed in the armature's own frame.
    above_root = bone_maps.BoneMap("above the root", {**detected.bones, "hips": "spine_01", "thigh.L": "pelvis"})
    with pytest.raises(bone_maps.BoneMapError) as err:
        solve.Retargeter(rig, above_root)
    assert "'pelvis' (thigh.L) is driven and lies between 'spine_01' (hips) and the armature" in str(err.value)
    assert "leave 'pelvis' unmapped" in str(err.value)


def test_an_unknown_rig_is_refused_naming_what_is_missing():
    rig = RigData.from_bones("blob", ["Bone", "Bone.001"], [None, "Bone"], np.stack([np.eye(4)] * 2), [1.0, 1.0])
    with pytest.raises(bone_maps.BoneMapError, match=r"lacks .*chest") as err:
        bone_maps.detect_map(rig)
    assert "save the map as a preset" in str(err.value)


def test_presets_round_trip_and_bad_ones_name_the_field(tmp_path):
    original = bone_maps.mixamo("mixamorig:")
    path = bone_maps.save_preset(original, tmp_path / "presets" / "mine.json")
    assert bone_maps.load_preset(path) == original
    data = json.loads(path.read_text())
    data["anchors"]["heel.L"] = ["mixamorig:LeftFoot", "middle"]
    path.write_text(json.dumps(data))
    with pytest.raises(bone_maps.BoneMapError, match=r"heel\.L point 'middle'"):
        bone_maps.load_preset(path)
    data["bones"]["elbow.L"] = "x"
    path.write_text(json.dumps(data))
    with pytest.raises(bone_maps.BoneMapError, match=r"unknown roles \['elbow.L'\]"):
        bone_maps.load_preset(path)
    path.write_text("{not json")
    with pytest.raises(bone_maps.BoneMapError, match="not valid JSON"):
        bone_maps.load_preset(path)
    with pytest.raises(bone_maps.BoneMapError, match="more than one role"):
        bone_maps.BoneMap("x", {"hips": "a", "chest": "a"})


# -- the solver -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig_factory", RIGS, ids=RIG_IDS)
def test_exact_landmarks_give_back_the_limb_rotations(rig_factory):
    rig = rig_factory()
    bone_map = bone_maps.detect_map(rig)
    truth, solved, _, _ = solve_random_poses(rig, bone_map)
    limb = errors_degrees(rig, bone_map, truth, solved, LIMB_ROLES)
    assert limb.max() < 0.1, f"limb errors up to {limb.max():.3f} degrees"
    # MediaPipe has no landmark along the spine: the pelvis and chest tilt is read off the hips-to-shoulders line,
    # so it is exact when the spine is straight and off by about the spine's bend otherwise.
    straight_truth, straight_solved, _, _ = solve_random_poses(rig, bone_map, spine_bend=0.0)
    torso = errors_degrees(rig, bone_map, straight_truth, straight_solved, ["hips", "chest", "head"])
    assert torso.max() < 0.1, f"hips/chest/head errors up to {torso.max():.3f} degrees"
    bent = errors_degrees(rig, bone_map, truth, solved, ["hips", "chest"])
    assert bent.max() < 3 * 12.0


@pytest.mark.parametrize("rig_factory", RIGS, ids=RIG_IDS)
def test_noisy_landmarks_of_a_smaller_person_stay_within_five_degrees(rig_factory):
    rig = rig_factory()
    bone_map = bone_maps.detect_map(rig)
    units = 1.0 if rig_factory is metarig else 100.0  # the FBX-like rigs are in centimetres
    truth, solved, result, _ = solve_random_poses(rig, bone_map, count=60, noise_m=0.005, scale=0.85 * units)
    limb = errors_degrees(rig, bone_map, truth, solved, LIMB_ROLES)
    assert limb.mean() < 5.0, f"mean limb error {limb.mean():.2f} degrees"
    assert np.all(np.isfinite(result.rotations))


def test_solved_feet_rest_on_the_ground_and_never_below():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    _, solved, _, retargeter = solve_random_poses(rig, bone_map, count=30)
    poser = Poser(rig, bone_map)
    lowest = []
    for posed in solved:
        heights = [
            poser.attached(posed, bone_map.bones[f"foot.{side}"], retargeter.rest_points[f"{word}_{name}"])[2]
            for side, word in solve.SIDE_WORDS.items()
            for name in ("ankle", "heel", "foot_index")
        ]
        lowest.append(min(heights))
    np.testing.assert_allclose(lowest, 0.0, atol=1e-6)  # the metarig's heels touch z = 0 at rest


def test_root_moves_sideways_with_the_hips_in_the_image_scaled_to_the_rig():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map, solve.SolveOptions(smoothing=None))
    poser = Poser(rig, bone_map)
    person_size = 2.0  # the person is twice the rig's size: 1 person metre is 0.5 rig units
    world = poser.landmarks(poser.pose({}), retargeter, scale=1.0 / person_size)
    count, size = 10, (1000.0, 1000.0)
    image = np.zeros((count, 33, 3))
    torso_px = 200.0  # shoulders 200 px above the hips
    # the torso as the camera sees it: its length at right angles to the view (world x and y)
    torso_m = np.linalg.norm(world[11:13, :2].mean(0) - world[23:25, :2].mean(0))
    for frame in range(count):
        image[frame, :, 0] = (400.0 + 20.0 * frame) / size[0]  # 20 px to the right per frame
        image[frame, 11:13, 1] = 300.0 / size[1]
        image[frame, 23:25, 1] = (300.0 + torso_px) / size[1]
    result = retargeter.solve_clip(
        np.repeat(world[None], count, 0), np.ones((count, 33)), np.ones(count, bool), 24.0, image, size
    )
    _, heads = retargeter.forward_kinematics(result.rotations, result.root_location @ retargeter.slots[0].rest.T)
    hips_x = heads[:, 0, 0] - heads[0, 0, 0]
    expected = np.arange(count) * 20.0 * (torso_m / torso_px) / person_size
    np.testing.assert_allclose(hips_x, expected, rtol=1e-6, atol=1e-9)


def test_unseen_joints_are_interpolated_across_short_gaps_and_held_across_long_ones():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map, solve.SolveOptions(smoothing=None, max_gap_frames=6))
    poser = Poser(rig, bone_map)
    rng = np.random.default_rng(9)
    count = 60
    angles = np.radians(np.linspace(0, 90, count))
    upper_arm = bone_map.bones["upper_arm.L"]
    world = np.array(
        [
            poser.landmarks(poser.pose({upper_arm: rotations.axis_angle_matrix(np.array([1.0, 0, 0]), a)}), retargeter)
            for a in angles
        ]
    )
    visibility = np.ones((count, 33))
    elbow = frames.LANDMARK["left_elbow"]
    visibility[10:15, elbow] = 0.1  # a 5-frame gap: interpolated
    visibility[30:45, elbow] = 0.1  # a 15-frame gap: held
    world[10:15, elbow] = rng.normal(size=(5, 3))  # what MediaPipe guesses for an unseen joint: garbage
    world[30:45, elbow] = rng.normal(size=(15, 3))
    result = retargeter.solve_clip(world, visibility, np.ones(count, bool), 24.0)
    slot = result.bones.index(upper_arm)
    quats = result.rotations[:, slot]
    assert not result.measured[10:15, slot].any() and result.measured[15, slot]
    for frame in range(10, 15):
        fraction = (frame - 9) / 6
        expected = rotations.slerp(quats[9], quats[15], fraction)
        assert abs(np.dot(quats[frame], expected)) == pytest.approx(1.0, abs=1e-9)
    for frame in range(30, 45):
        assert abs(np.dot(quats[frame], quats[29])) == pytest.approx(1.0, abs=1e-9), "held, not garbage"


def test_frames_without_a_person_hold_and_leading_ones_take_the_first_sighting():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    _, _, _, retargeter = solve_random_poses(rig, bone_map, count=1)
    poser = Poser(rig, bone_map)
    rng = np.random.default_rng(10)
    poses = [poser.landmarks(poser.pose(random_pose(rig, bone_map, retargeter, rng)), retargeter) for _ in range(3)]
    world = np.full((12, 33, 3), np.nan)
    visibility = np.full((12, 33), np.nan)
    present = np.zeros(12, bool)
    for frame, pose in ((3, poses[0]), (4, poses[1]), (11, poses[2])):
        world[frame], visibility[frame], present[frame] = pose, 1.0, True
    result = solve.Retargeter(rig, bone_map, solve.SolveOptions(smoothing=None, max_gap_frames=3)).solve_clip(
        world, visibility, present, 24.0
    )
    assert np.all(np.isfinite(result.rotations)) and np.all(np.isfinite(result.root_location))
    dots = np.abs(np.sum(result.rotations * result.rotations[3], axis=-1))
    np.testing.assert_allclose(dots[:3], 1.0, atol=1e-9)  # before the first sighting: the first sighting
    dots = np.abs(np.sum(result.rotations * result.rotations[4], axis=-1))
    np.testing.assert_allclose(dots[5:11], 1.0, atol=1e-9)  # a 6-frame gap > 3: held
    assert not result.measured[5:11].any() and result.measured[[3, 4, 11]].all()


def test_a_bone_never_seen_stays_at_rest():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    _, _, _, retargeter = solve_random_poses(rig, bone_map, count=1)
    poser = Poser(rig, bone_map)
    world = np.repeat(poser.landmarks(poser.pose({}), retargeter)[None], 5, 0)
    visibility = np.ones((5, 33))
    for name in ("left_knee", "right_knee"):
        visibility[:, frames.LANDMARK[name]] = 0.0
    result = retargeter.solve_clip(world, visibility, np.ones(5, bool), 24.0)
    for role in ("thigh.L", "shin.R"):
        np.testing.assert_allclose(result.rotations[:, result.bones.index(bone_map.bones[role])], [[1, 0, 0, 0]] * 5)


def test_smoothed_clips_have_continuous_quaternion_signs():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    _, _, result, _ = solve_random_poses(rig, bone_map, count=50, smoothing=filters.OneEuroParams())
    dots = np.sum(result.rotations[1:] * result.rotations[:-1], axis=-1)
    assert np.all(dots >= 0.0)
    np.testing.assert_allclose(np.linalg.norm(result.rotations, axis=-1), 1.0)


def test_live_frames_solve_like_the_clip_and_hold_unseen_bones():
    rig = mixamo_rig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map, solve.SolveOptions(smoothing=None))
    poser = Poser(rig, bone_map)
    rng = np.random.default_rng(11)
    world = np.array(
        [poser.landmarks(poser.pose(random_pose(rig, bone_map, retargeter, rng)), retargeter) for _ in range(6)]
    )
    visibility = np.ones((6, 33))
    visibility[4, frames.LANDMARK["right_wrist"]] = 0.0
    clip = retargeter.solve_clip(world[:4], visibility[:4], np.ones(4, bool), 30.0)
    live = retargeter.live()
    pushed = [live.push(world[i], visibility[i], True, i / 30.0) for i in range(6)]
    for i in range(4):
        dots = np.abs(np.sum(pushed[i].rotations[0] * clip.rotations[i], axis=-1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-9)
        np.testing.assert_allclose(pushed[i].root_location[0], clip.root_location[i], atol=1e-9)
    forearm = retargeter.bones.index(bone_map.bones["forearm.R"])
    assert not pushed[4].measured[0, forearm]
    assert abs(np.dot(pushed[4].rotations[0, forearm], pushed[3].rotations[0, forearm])) == pytest.approx(1.0)
    assert pushed[5].measured[0, forearm]
    nobody = live.push(np.full((33, 3), np.nan), np.full(33, np.nan), False, 6 / 30.0)
    np.testing.assert_allclose(np.abs(np.sum(nobody.rotations * pushed[5].rotations, axis=-1)), 1.0, atol=1e-9)


def test_a_y_up_armature_is_driven_in_its_own_axes():
    """An FBX import can leave the armature Y-up: the rig's torso then points along +Y in armature space."""
    rig = metarig()
    turn = np.eye(4)
    turn[:3, :3] = rotations.axis_angle_matrix(np.array([1.0, 0, 0]), np.array(-np.pi / 2))  # Z up -> Y up
    y_up = RigData("y-up", rig.bones, rig.parents, turn @ rig.rest, rig.lengths)
    bone_map = bone_maps.detect_map(rig)
    y_truth, y_solved, _, retargeter = solve_random_poses(y_up, bone_map, count=10, to_world=turn[:3, :3].T)
    np.testing.assert_allclose(retargeter.to_armature, turn[:3, :3], atol=1e-12)
    assert errors_degrees(y_up, bone_map, y_truth, y_solved, LIMB_ROLES).max() < 0.1


def test_a_rig_without_legs_is_driven_from_the_waist_up():
    keep = {"spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.005", "spine.006"}
    keep |= {f"{bone}.{side}" for side in "LR" for bone in ("shoulder", "upper_arm", "forearm", "hand")}
    full = metarig()
    index = [full.index(bone) for bone in full.bones if bone in keep]
    rig = RigData.from_bones(
        "bust",
        [full.bones[i] for i in index],
        [full.bones[full.parents[i]] if full.parents[i] >= 0 else None for i in index],
        full.rest[index],
        full.lengths[index],
    )
    bone_map = bone_maps.BoneMap(
        "bust",
        {"hips": "spine", "chest": "spine.003", "head": "spine.006"}
        | {f"{limb}.{side}": f"{limb}.{side}" for side in "LR" for limb in ("upper_arm", "forearm", "hand")},
        {"spine": ("spine.001", "spine.002")},
    )
    # The hips' rest frame is read from the thighs: without them, the map cannot drive this rig.
    with pytest.raises(bone_maps.BoneMapError, match="map both thighs and upper arms"):
        solve.Retargeter(rig, bone_map)
    with_thighs = metarig()
    bone_map = bone_maps.BoneMap("no shins", {**bone_map.bones, "thigh.L": "thigh.L", "thigh.R": "thigh.R"})
    retargeter = solve.Retargeter(with_thighs, bone_map, solve.SolveOptions(smoothing=None))
    assert "shin.L" not in retargeter.bones and "upper_arm.L" in retargeter.bones
    full_map = bone_maps.detect_map(with_thighs)
    poser = Poser(with_thighs, full_map)
    lift = {full_map.bones["thigh.L"]: rotations.axis_angle_matrix(np.array([1.0, 0, 0]), np.array(1.2))}
    world = poser.landmarks(poser.pose(lift), solve.Retargeter(with_thighs, full_map))[None]
    result = retargeter.solve_clip(world, np.ones((1, 33)), np.ones(1, bool), 24.0)
    np.testing.assert_allclose(result.root_location, 0.0, atol=1e-9)  # no feet to stand on: rest height
    thigh = result.rotations[0, result.bones.index("thigh.L")]
    assert np.degrees(2 * np.arccos(abs(thigh[0]))) == pytest.approx(np.degrees(1.2), abs=0.1)
