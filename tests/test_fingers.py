"""Finger maps and the finger solve's anatomy in plain numpy (real rigs: tests/blender/test_hands_face.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_retarget import METARIG_BONES, _frame, _load_retarget, metarig

_load_retarget()
from vfx_retarget import fingers, frames  # noqa: E402
from vfx_retarget.bone_maps import BoneMap, detect_map  # noqa: E402
from vfx_retarget.finger_maps import detect_finger_map  # noqa: E402
from vfx_retarget.rig_data import RigData  # noqa: E402
from vfx_retarget.solver import PoseFrames, Retargeter  # noqa: E402


def flat_hand() -> np.ndarray:
    """A left hand lying flat, palm down (-Z), fingers along +X, the thumb towards -Y: 21 points in metres."""
    points = np.zeros((21, 3))
    for row, (finger, y) in enumerate(
        (("thumb", -0.03), ("index", -0.02), ("middle", 0.0), ("ring", 0.02), ("pinky", 0.04))
    ):
        for k, joint in enumerate(fingers.FINGER_JOINTS[finger]):
            points[joint] = (0.08 + 0.03 * k, y, 0.0)
        del row
    return points


def test_a_flat_hand_reads_no_curl_and_a_fist_reads_curls_on_every_joint() -> None:
    hand = flat_hand()
    np.testing.assert_allclose(fingers.curls_deg(hand, "L"), 0.0, atol=1e-6)
    curled = hand.copy()
    # Curl the index: 90 degrees at the knuckle, then 90 more at the middle joint (past a right angle).
    curled[6] = hand[5] + np.array([0.0, 0.0, -0.03])
    curled[7] = curled[6] + np.array([-0.03, 0.0, 0.0])
    curled[8] = curled[7] + np.array([-0.03, 0.0, 0.0])
    index = fingers.curls_deg(curled, "L")[1]
    np.testing.assert_allclose(index, [90.0, 90.0, 0.0], atol=1e-6)


def test_the_palm_side_follows_the_hand() -> None:
    right = flat_hand() * (-1.0, 1.0, 1.0)  # the mirror image: a right hand, palm still down
    right[6:9] = right[5] + np.array([(-0.02, 0, -0.02), (-0.03, 0, -0.04), (-0.04, 0, -0.06)])
    assert fingers.curls_deg(right, "R")[1, 0] > 30.0, "bent towards the palm reads as a curl"
    assert fingers.curls_deg(right, "L")[1, 0] < -30.0, "read as the other hand it bends backwards"


@pytest.mark.parametrize("angle", [-40.0, -5.0, 30.0, 110.0, 140.0])
def test_middle_joints_never_bend_backwards_or_past_their_limit(angle: float) -> None:
    parent = np.array([[1.0, 0.0, 0.0]])
    palm = np.array([[0.0, 0.0, -1.0]])
    radians = np.radians(angle)
    target = np.array([[np.cos(radians), 0.0, -np.sin(radians)]])
    low, high, _ = fingers.FINGER_LIMITS_DEG[1]
    limited = fingers.limit_joint(parent, target, palm, fingers.FINGER_LIMITS_DEG[1])
    curl = np.degrees(np.arctan2(-limited[0, 2], limited[0, 0]))
    assert curl == pytest.approx(np.clip(angle, low, high), abs=1e-6)


def test_knuckles_spread_within_their_limit() -> None:
    parent, palm = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, -1.0]])
    wide = np.array([[np.cos(np.radians(50)), np.sin(np.radians(50)), 0.0]])
    limited = fingers.limit_joint(parent, wide, palm, fingers.FINGER_LIMITS_DEG[0])
    assert np.degrees(np.arcsin(abs(limited[0, 1]))) == pytest.approx(fingers.FINGER_LIMITS_DEG[0][2])


def rig_with(names: list[tuple[str, str | None]]) -> RigData:
    rest = np.tile(np.eye(4), (len(names), 1, 1))
    for index in range(len(names)):
        rest[index, 0, 3] = 0.01 * index
    return RigData.from_bones("rig", [n for n, _ in names], [p for _, p in names], rest, np.full(len(names), 0.01))


def fingers_under(hand: str, name_of) -> list[tuple[str, str | None]]:
    """Five three-bone chains below ``hand``, named ``name_of(finger word, 1..3)``."""
    out: list[tuple[str, str | None]] = []
    for finger in ("Thumb", "Index", "Middle", "Ring", "Little"):
        parent = hand
        for k in (1, 2, 3):
            out.append((name_of(finger, k), parent))
            parent = out[-1][0]
    return out


def test_mixamo_and_generic_fingers_are_detected_under_the_mapped_hand() -> None:
    bones = [
        ("mixamorig:Hips", None),
        ("mixamorig:LeftHand", "mixamorig:Hips"),
        ("mixamorig:RightHand", "mixamorig:Hips"),
    ]
    mixamo = fingers_under("mixamorig:LeftHand", lambda f, k: f"mixamorig:LeftHand{f.replace('Little', 'Pinky')}{k}")
    bone_map = BoneMap("m", {"hips": "mixamorig:Hips", "hand.L": "mixamorig:LeftHand", "hand.R": "mixamorig:RightHand"})
    found = detect_finger_map(rig_with(bones + mixamo), bone_map)
    assert found.name == "Mixamo fingers" and found.sides() == ("L",), "no right fingers in this rig"
    assert found.bones["L"]["pinky"] == tuple(f"mixamorig:LeftHandPinky{k}" for k in (1, 2, 3))

    vrm = [("Hips", None), ("LeftHand", "Hips"), *fingers_under("LeftHand", lambda f, k: f"Left{f}{k}")]
    vrm += [("DEF-LeftIndex1", "LeftHand")]  # a deform copy: never a finger
    found = detect_finger_map(rig_with(vrm), BoneMap("g", {"hips": "Hips", "hand.L": "LeftHand"}))
    assert found.name == "generic fingers"
    assert found.bones["L"]["pinky"] == ("LeftLittle1", "LeftLittle2", "LeftLittle3")
    assert found.bones["L"]["index"] == ("LeftIndex1", "LeftIndex2", "LeftIndex3")


def fingered_rig() -> tuple[RigData, BoneMap]:
    """The metarig-like body with five three-bone fingers on its left hand (``LeftIndex1``...), and its body map."""
    bones = [bone for bone in METARIG_BONES if not bone[0].startswith("f_")]
    for k, (name, parent) in enumerate(fingers_under("hand.L", lambda f, j: f"Left{f}{j}")):
        head = (0.73 + 0.01 * (k % 3), 0.01 * (k // 3), 1.25)
        bones.append((name, parent, head, (head[0] + 0.01, head[1], head[2] - 0.01)))
    rig = RigData.from_bones(
        "fingered",
        [b[0] for b in bones],
        [b[1] for b in bones],
        [_frame(h, t, 0.0) for _, _, h, t in bones],
        [np.linalg.norm(np.subtract(t, h)) for _, _, h, t in bones],
    )
    return rig, BoneMap("body", {r: b for r, b in detect_map(metarig()).bones.items() if not b.startswith("f_")})


def test_fingers_keep_the_bodys_cuts_and_contacts_and_add_their_confidence() -> None:
    """The bake's pose with fingers keeps the body's cuts, foot contacts and confidence (the keys at a cut and
    the quality report need them); a finger's confidence is 0 where its hand was not seen."""
    rig, bone_map = fingered_rig()
    retargeter = Retargeter(rig, bone_map)
    count = 6
    rest = np.zeros((count, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    contacts = np.ones((count, 2), dtype=bool)
    confidence = np.full(rest.shape[:2], 0.75)
    body = PoseFrames(
        retargeter.bones,
        rest,
        retargeter.root_bone,
        np.zeros((count, 3)),
        np.ones(rest.shape[:2], bool),
        contacts,
        confidence,
        (3,),
    )
    hands = fingers.HandSolver(retargeter, detect_finger_map(rig, bone_map))
    unseen = np.full((count, 2, 21, 3), np.nan)
    solved = hands.solve_clip(body, unseen, np.zeros((count, 2), bool), (640.0, 480.0), 24.0)
    assert len(solved.bones) > len(body.bones), "the metarig's fingers were added"
    assert solved.shot_starts == (3,) and solved.contacts is contacts
    assert solved.confidence is not None and solved.confidence.shape == solved.measured.shape
    np.testing.assert_array_equal(solved.confidence[:, : len(body.bones)], confidence)
    assert not solved.confidence[:, len(body.bones) :].any(), "hands never seen: no confidence in the fingers"


def test_a_baked_finger_curl_peaks_on_its_frame_while_live_fingers_lag() -> None:
    """A bake smooths the fingers zero-phase, as the body: an index finger that curls and opens again, its curl
    peaking at frame 30, peaks there in the bake (within a frame); live, the causal One Euro filter peaks later."""
    rig, bone_map = fingered_rig()
    retargeter = Retargeter(rig, bone_map)  # the default smoothing
    hands = fingers.HandSolver(retargeter, detect_finger_map(rig, bone_map))
    count, fps, peak, size = 60, 24.0, 30, (640.0, 480.0)
    phase = np.clip((np.arange(count) - (peak - 12)) / 24, 0.0, 1.0)
    curl = np.radians(60.0) * 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))  # a raised-cosine bump
    flat = flat_hand()
    points = np.repeat(flat[None], count, axis=0)
    for frame, angle in enumerate(curl):  # the index finger turned about its knuckle towards the palm (-Z)
        for joint in (6, 7, 8):
            offset = flat[joint] - flat[5]
            points[frame, joint] = flat[5] + offset[0] * np.array([np.cos(angle), 0.0, -np.sin(angle)])
    landmarks = np.full((count, 2, 21, 3), np.nan)
    scale = np.array([size[0], size[1], size[0]])
    landmarks[:, fingers.HAND_SIDES["L"]] = frames.blender_to_mediapipe(points * 1000.0) / scale + (0.5, 0.5, 0.0)
    present = np.zeros((count, 2), bool)
    present[:, fingers.HAND_SIDES["L"]] = True
    rest = np.zeros((count, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    seen = np.ones(rest.shape[:2], bool)
    body = PoseFrames(retargeter.bones, rest, retargeter.root_bone, np.zeros((count, 3)), seen)
    baked = hands.solve_clip(body, landmarks, present, size, fps)
    knuckle = baked.bones.index("LeftIndex1")
    live_hands = fingers.LiveHands(hands)
    one = PoseFrames(retargeter.bones, rest[:1], retargeter.root_bone, np.zeros((1, 3)), seen[:1])
    live = np.array(
        [live_hands.push(one, landmarks[i], present[i], size, i / fps).rotations[0, knuckle] for i in range(count)]
    )

    def bent(quats: np.ndarray) -> np.ndarray:
        return 2.0 * np.arccos(np.clip(np.abs(quats[:, 0]), 0.0, 1.0))

    assert np.degrees(np.ptp(bent(baked.rotations[:, knuckle]))) > 30.0, "the knuckle follows the curl"
    assert abs(int(np.argmax(bent(baked.rotations[:, knuckle]))) - peak) <= 1, "the bake's curl peaks on its frame"
    assert int(np.argmax(bent(live))) >= peak + 2, "live, the fingers lag (One Euro)"
