"""The head bone from the face mesh, in plain numpy, on the metarig-like rig of test_retarget (the real footage and
real Blender run it in tests/blender/test_hands_face.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_retarget import _load_retarget, metarig, random_rotation

_load_retarget()
from vfx_retarget import bone_maps, frames  # noqa: E402
from vfx_retarget import rotations as rot  # noqa: E402
from vfx_retarget.head import HeadFromFace  # noqa: E402
from vfx_retarget.solver import PoseFrames, Retargeter, SolveOptions  # noqa: E402

SIZE = (640.0, 480.0)
PIXELS_PER_METRE = 1000.0


def face_points(turn: np.ndarray) -> np.ndarray:
    """(478, 3) image landmarks of a face looking at the camera, turned by ``turn`` (Blender axes) about its centre:
    only the eye corners, chin and forehead are placed; the others sit at the centre."""
    points = np.zeros((478, 3))
    points[33], points[263] = (-0.045, -0.08, 0.0), (0.045, -0.08, 0.0)
    points[152], points[10] = (0.0, -0.09, -0.11), (0.0, -0.09, 0.08)
    mp = frames.blender_to_mediapipe(points @ turn.T) * PIXELS_PER_METRE
    return mp / np.array([SIZE[0], SIZE[1], SIZE[0]]) + np.array([0.5, 0.5, 0.0])


def test_the_head_turns_as_the_face_turns_and_stays_without_a_face() -> None:
    rig = metarig()
    retargeter = Retargeter(rig, bone_maps.detect_map(rig), SolveOptions(smoothing=None))  # random turns: no motion
    count = 6
    rest = np.zeros((count, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    body = PoseFrames(retargeter.bones, rest, retargeter.root_bone, np.zeros((count, 3)), np.ones(rest.shape[:2], bool))
    turns = random_rotation(np.random.default_rng(3), 40, size=(count,))
    turns[0] = np.eye(3)
    present = np.ones(count, dtype=bool)
    present[4] = False
    head = HeadFromFace(retargeter)
    solved = head.solve_clip(body, np.array([face_points(t) for t in turns]), present, SIZE, 24.0)
    world, _ = retargeter.forward_kinematics(solved.rotations, np.zeros((count, 3)))
    head_rest = rig.rotation(retargeter.bone_map.bones["head"])
    turned = world[:, head.slot] @ head_rest.T
    seen = np.flatnonzero(present)
    assert np.degrees(rot.rotation_angle(turned[seen], turns[seen])).max() < 0.01
    np.testing.assert_allclose(solved.rotations[4, head.slot], [1, 0, 0, 0], atol=1e-12), "no face: the body's head"
    others = [i for i in range(len(retargeter.bones)) if i != head.slot]
    np.testing.assert_array_equal(solved.rotations[:, others], rest[:, others])


def test_a_map_without_a_head_leaves_the_pose_alone() -> None:
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    headless = bone_maps.BoneMap(bone_map.name, {r: b for r, b in bone_map.bones.items() if r != "head"})
    retargeter = Retargeter(rig, headless)
    rest = np.zeros((1, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    body = PoseFrames(
        retargeter.bones, rest, retargeter.root_bone, np.zeros((1, 3)), np.ones((1, len(retargeter.bones)), bool)
    )
    assert HeadFromFace(retargeter).solve_clip(body, face_points(np.eye(3))[None], np.ones(1, bool), SIZE, 24.0) is body


@pytest.mark.parametrize("degrees", [30.0, -30.0])
def test_turning_the_face_to_its_left_turns_the_head_to_the_rigs_left(degrees: float) -> None:
    rig = metarig()
    retargeter = Retargeter(rig, bone_maps.detect_map(rig))
    rest = np.zeros((1, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    body = PoseFrames(
        retargeter.bones, rest, retargeter.root_bone, np.zeros((1, 3)), np.ones((1, len(retargeter.bones)), bool)
    )
    yaw = rot.axis_angle_matrix(np.array([0.0, 0.0, 1.0]), np.radians(degrees))
    head = HeadFromFace(retargeter)
    solved = head.solve_clip(body, face_points(yaw)[None], np.ones(1, bool), SIZE, 24.0)
    world, _ = retargeter.forward_kinematics(solved.rotations, np.zeros((1, 3)))
    forward = (world[0, head.slot] @ rig.rotation(retargeter.bone_map.bones["head"]).T) @ np.array([0.0, -1.0, 0.0])
    assert forward[0] == pytest.approx(np.sin(np.radians(degrees))), "a turn about +Z takes the front (-Y) to +X"


def test_the_head_keeps_the_bodys_cuts_contacts_and_confidence_and_is_not_smoothed_across_a_cut() -> None:
    """A bake's pose carries its cuts, foot contacts and per-bone confidence to the keys and the quality report;
    the head from the face keeps them, and its smoothing starts afresh at the cut: the first frame of the new shot
    is that shot's own head, not blended with the last shot's."""
    rig = metarig()
    retargeter = Retargeter(rig, bone_maps.detect_map(rig))  # the default smoothing
    count, cut = 10, 5
    rest = np.zeros((count, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    contacts = np.zeros((count, 2), dtype=bool)
    contacts[:, 0] = True
    confidence = np.full(rest.shape[:2], 0.5)
    body = PoseFrames(
        retargeter.bones,
        rest,
        retargeter.root_bone,
        np.zeros((count, 3)),
        np.ones(rest.shape[:2], bool),
        contacts,
        confidence,
        (cut,),
    )
    yaw = rot.axis_angle_matrix(np.array([0.0, 0.0, 1.0]), np.radians(40.0))
    turns = np.array([np.eye(3)] * cut + [yaw] * (count - cut))
    head = HeadFromFace(retargeter)
    solved = head.solve_clip(body, np.array([face_points(t) for t in turns]), np.ones(count, bool), SIZE, 24.0)
    assert solved.shot_starts == (cut,) and solved.contacts is contacts and solved.confidence is confidence
    world, _ = retargeter.forward_kinematics(solved.rotations, np.zeros((count, 3)))
    turned = world[:, head.slot] @ rig.rotation(retargeter.bone_map.bones["head"]).T
    assert np.degrees(rot.rotation_angle(turned[cut], yaw)) < 0.01, "the new shot's first head is its own"


def bump(count: int, start: int, width: int) -> np.ndarray:
    """(count,) a raised-cosine bump from 0 up to 1 and back over ``width`` frames from ``start``: its peak at
    ``start + width // 2``."""
    phase = np.clip((np.arange(count) - start) / width, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))


def test_a_baked_head_turn_peaks_on_its_frame_while_the_live_head_lags() -> None:
    """A bake smooths the head from the face zero-phase, as the body: a yaw that peaks at frame 30 peaks there in
    the bake (within a frame), where the live head's causal One Euro filter peaks frames later."""
    rig = metarig()
    retargeter = Retargeter(rig, bone_maps.detect_map(rig))  # the default smoothing
    count, fps, peak = 60, 24.0, 30
    yaw = np.radians(40.0) * bump(count, peak - 12, 24)
    turns = [rot.axis_angle_matrix(np.array([0.0, 0.0, 1.0]), angle) for angle in yaw]
    faces = np.array([face_points(t) for t in turns])
    rest = np.zeros((count, len(retargeter.bones), 4))
    rest[..., 0] = 1.0
    body = PoseFrames(retargeter.bones, rest, retargeter.root_bone, np.zeros((count, 3)), np.ones(rest.shape[:2], bool))
    head = HeadFromFace(retargeter)
    baked = head.solve_clip(body, faces, np.ones(count, bool), SIZE, fps).rotations[:, head.slot]
    live_head = head.live()
    one = PoseFrames(
        retargeter.bones, rest[:1], retargeter.root_bone, np.zeros((1, 3)), np.ones(rest.shape[1:2], bool)[None]
    )
    live = np.array([live_head.push(one, faces[i], True, SIZE, i / fps).rotations[0, head.slot] for i in range(count)])

    def turned(quats: np.ndarray) -> np.ndarray:
        return 2.0 * np.arccos(np.clip(np.abs(quats[:, 0]), 0.0, 1.0))

    assert abs(int(np.argmax(turned(baked))) - peak) <= 1, "the bake's head turn peaks on the face's frame"
    assert int(np.argmax(turned(live))) >= peak + 2, "live, the head lags (One Euro)"
