"""Hands and face with the body in the pose mode (MediaPipe Holistic on real footage), and their drawing.

Megamind.avi frames 20..44 show Roxanne facing the camera, a glass in her right hand (on the image's left) and
her left hand out of the picture.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import mediapipe
import numpy as np
import pytest
from PIL import Image
from test_pose_runner import read_rgb, run_pose

from models import hands_face
from models.frame_writer import encode_png
from models.hands_face import FACE_POINTS, HAND_LANDMARKS, HAND_POINTS, PartsRecorder
from models.media import VideoFile
from models.pose import SKELETON_MIN_VISIBILITY, PoseRunner
from models.runner import RunResult
from models.skeleton import (
    FACE68_FROM_MEDIAPIPE,
    HAND_BONE_COLOURS,
    HAND_BONES,
    HAND_JOINT_COLOUR,
    MEDIAPIPE_POSE_LANDMARKS,
    draw_face_points,
    draw_hands,
    draw_on_black,
    draw_openpose,
    mediapipe_to_openpose18,
    skeleton_palette,
)

FIRST, END = 20, 45
FRAMES = END - FIRST
LEFT, RIGHT = 0, 1
POSE = {name: index for index, name in enumerate(MEDIAPIPE_POSE_LANDMARKS)}


@pytest.fixture(scope="module")
def runner() -> Iterator[PoseRunner]:
    pose = PoseRunner()
    pose.load("cpu")
    yield pose
    pose.unload()


@pytest.fixture(scope="module")
def whole(runner: PoseRunner, sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    folder = tmp_path_factory.mktemp("whole")
    result, _ = run_pose(runner, VideoFile(sample_video, FIRST, END), folder, hands=True, face=True)
    return result, folder


def test_parts_are_off_by_default_and_the_body_keeps_its_pose_graph(runner: PoseRunner) -> None:
    defaults = runner.validate({})
    assert (defaults["hands"], defaults["face"]) == (False, False)
    body = runner._new_tracker(defaults)
    holistic = runner._new_tracker({**defaults, "face": True})
    try:
        assert isinstance(body, mediapipe.solutions.pose.Pose)
        assert isinstance(holistic, mediapipe.solutions.holistic.Holistic)
    finally:
        body.close()
        holistic.close()
    assert [p.name for p in PoseRunner.live_params][-3:] == ["hands", "face", "face_shapes"]
    assert defaults["face_shapes"] == "auto"


def test_the_arrays_follow_the_documented_layout(whole: tuple[RunResult, Path]) -> None:
    result, _ = whole
    shapes = {name: (array.shape, array.dtype) for name, array in result.arrays.items()}
    assert shapes["hand_landmarks"] == ((FRAMES, 2, HAND_POINTS, 3), np.float32)
    assert shapes["hand_present"] == ((FRAMES, 2), np.bool_)
    assert shapes["face_landmarks"] == ((FRAMES, FACE_POINTS, 3), np.float32)
    assert shapes["face_present"] == ((FRAMES,), np.bool_)
    assert (result.summary["hands"], result.summary["face"]) == (True, True)
    assert len(HAND_LANDMARKS) == HAND_POINTS == 21 and FACE_POINTS == 478


def test_only_the_right_hand_is_found_and_it_sits_at_the_bodys_right_wrist(whole: tuple[RunResult, Path]) -> None:
    arrays = whole[0].arrays
    found = arrays["hand_present"]
    # Measured: the right hand in 22 of 25 frames, the left (out of the picture) in none.
    assert found[:, RIGHT].mean() >= 0.8 and not found[:, LEFT].any()
    hands = arrays["hand_landmarks"]
    assert np.isnan(hands[~found]).all() and not np.isnan(hands[found]).any()
    wrist = hands[found[:, RIGHT], RIGHT, 0, :2]
    body = arrays["image_landmarks"][found[:, RIGHT]]
    to_right = np.linalg.norm(wrist - body[:, POSE["right_wrist"], :2], axis=1)
    to_left = np.linalg.norm(wrist - body[:, POSE["left_wrist"], :2], axis=1)
    # Measured: 0.013..0.035 of the frame's width in the first 11 frames, up to 0.11 once the glass hides the wrist
    # from the body model; the other wrist is 0.29..0.38 away.
    assert np.median(to_right) < 0.05 and to_right.max() < 0.15 and (to_left > 2.5 * to_right).all()


def test_the_face_mesh_has_irises_and_lies_on_the_bodys_face(whole: tuple[RunResult, Path]) -> None:
    arrays = whole[0].arrays
    assert arrays["face_present"].all()
    face = arrays["face_landmarks"]
    assert not np.isnan(face).any()
    body = arrays["image_landmarks"]
    nose_tip = face[:, 1, :2]
    # Measured up to 0.042 of the frame's width apart (the two models place a cartoon nose differently).
    assert np.linalg.norm(nose_tip - body[:, POSE["nose"], :2], axis=1).max() < 0.06
    # The person's left iris (points 473..477, centre 473) is at the body's left eye, the right (468..472) at its right.
    for centre, eye, other in ((473, "left_eye", "right_eye"), (468, "right_eye", "left_eye")):
        near = np.linalg.norm(face[:, centre, :2] - body[:, POSE[eye], :2], axis=1)
        far = np.linalg.norm(face[:, centre, :2] - body[:, POSE[other], :2], axis=1)
        assert (near < far / 2).all(), eye


def test_skeleton_renders_add_white_face_points_and_blue_hand_joints(
    whole: tuple[RunResult, Path], runner: PoseRunner, sample_video: Path, tmp_path: Path
) -> None:
    result, folder = whole
    frame = int(np.flatnonzero(result.arrays["hand_present"][:, RIGHT])[0])
    drawn = read_rgb(folder / "frames" / f"{frame:06d}.png")
    colours = {tuple(pixel) for pixel in drawn.reshape(-1, 3)}
    assert {(255, 255, 255), HAND_JOINT_COLOUR, (255, 0, 0)} <= colours, "face, hand joints, the body's nose"
    body_only, _ = run_pose(runner, VideoFile(sample_video, FIRST + frame, FIRST + frame + 1), tmp_path)
    assert "image_landmarks" in body_only.arrays
    assert not {"hand_landmarks", "hand_present", "face_landmarks", "face_present"} & body_only.arrays.keys()
    plain = read_rgb(tmp_path / "frames" / "000000.png")
    plain_colours = {tuple(pixel) for pixel in plain.reshape(-1, 3)}
    assert (255, 255, 255) not in plain_colours and HAND_JOINT_COLOUR not in plain_colours


def test_every_render_is_a_palette_png_of_the_body_hands_and_face_the_job_found(whole: tuple[RunResult, Path]) -> None:
    """End to end: each written frame is what the RGB drawing functions draw on black from the job's own arrays."""
    result, folder = whole
    arrays = result.arrays
    height, width = result.summary["height"], result.summary["width"]
    scale = np.array([width, height], np.float32)
    for frame in range(FRAMES):
        png = (folder / "frames" / f"{frame:06d}.png").read_bytes()
        assert png[25] == 3, f"frame {frame}: colour type 3, a palette image"
        expected = np.zeros((height, width, 3), np.uint8)
        if arrays["present"][frame]:
            body = arrays["image_landmarks"][frame, :, :2] * scale
            keypoints = mediapipe_to_openpose18(body, arrays["visibility"][frame], SKELETON_MIN_VISIBILITY)
            expected = draw_openpose(expected, keypoints)
        expected = draw_hands(expected, arrays["hand_landmarks"][frame, ..., :2] * scale)
        expected = draw_face_points(expected, arrays["face_landmarks"][frame, :, :2] * scale)
        np.testing.assert_array_equal(read_rgb(folder / "frames" / f"{frame:06d}.png"), expected, f"frame {frame}")


def test_live_pose_carries_the_parts_it_was_asked_for(runner: PoseRunner, sample_video: Path) -> None:
    params = runner.validate({"hands": True, "face": True})
    live = runner.start_live(params, {})
    try:
        frames = list(VideoFile(sample_video, FIRST, FIRST + 3).frames())
        result = live.process(frames[0], 0.0)
        assert result.arrays["face_landmarks"].shape == (FACE_POINTS, 3)
        assert result.arrays["hand_landmarks"].shape == (2, HAND_POINTS, 3)
        assert bool(result.arrays["face_present"]) and result.data["present"]
        live.update({**params, "hands": False, "face": False})
        assert set(live.process(frames[1], 0.04).arrays) == {"image_landmarks", "world_landmarks", "visibility"}
    finally:
        live.close()


# Drawing in the DWPose whole-body convention


def test_hand_bones_take_twenty_hues_and_the_joints_are_blue() -> None:
    assert len(HAND_BONES) == 20 and HAND_BONE_COLOURS[0] == (255, 0, 0)
    assert HAND_BONE_COLOURS[5] == (127, 255, 0) and HAND_BONE_COLOURS[10] == (0, 255, 255)
    hand = np.stack([np.full(21, 20.0), np.linspace(10, 390, 21)], axis=1)  # a vertical hand, 19 px between points
    canvas = np.zeros((400, 100, 3), np.uint8)
    drawn = draw_hands(canvas, hand[None])
    assert not canvas.any(), "the canvas is not changed"
    assert tuple(drawn[10, 20]) == HAND_JOINT_COLOUR
    # On a straight hand the wrist's bones overlap the others; the last bone (pinky tip) lies on no other.
    assert tuple(drawn[380, 20]) == HAND_BONE_COLOURS[19] == (255, 0, 77), "bone 19 joins points 19 and 20"
    assert tuple(drawn[380, 23]) == (0, 0, 0), "bones are 2 px wide"
    assert not draw_hands(canvas, np.full((1, 21, 2), np.nan)).any(), "a hand not found draws nothing"


def test_the_face_is_drawn_as_68_white_points() -> None:
    assert len(FACE68_FROM_MEDIAPIPE) == len(set(FACE68_FROM_MEDIAPIPE)) == 68
    face = np.full((478, 2), np.nan)
    spots = {index: (10.0 + 20 * (k % 10), 10.0 + 20 * (k // 10)) for k, index in enumerate(FACE68_FROM_MEDIAPIPE)}
    for index, xy in spots.items():
        face[index] = xy
    drawn = draw_face_points(np.zeros((160, 210, 3), np.uint8), face)
    white = np.all(drawn == 255, axis=2)
    labels = cv2.connectedComponents(white.astype(np.uint8))[0] - 1
    assert labels == 68
    assert not drawn[white == 0].any(), "only white points"


def test_skeletons_on_black_as_palette_pngs_decode_to_exactly_the_rgb_drawing() -> None:
    """The pose mode writes skeletons on black as palette PNGs; every decoder must see the RGB drawing's pixels."""
    rng = np.random.default_rng(11)
    height, width = 150, 200
    for trial in range(150):
        keypoints = rng.uniform(-60, 260, (18, 2))  # some limbs run off the canvas, on every side
        keypoints[rng.random(18) < 0.2] = np.nan
        hands = rng.uniform(-20, 220, (2, 21, 2))
        hands[trial % 2, 3] = np.nan  # one hand not found in half the trials
        face = rng.uniform(-10, 210, (478, 2))
        body = None if trial % 10 == 0 else keypoints
        expected = np.zeros((height, width, 3), np.uint8)
        if body is not None:
            expected = draw_openpose(expected, body)
        expected = draw_face_points(draw_hands(expected, hands), face)

        drawn = draw_on_black(height, width, body, hands, face)
        np.testing.assert_array_equal(drawn.rgb(), expected)
        png = encode_png(drawn)
        assert png[25] == 3, "colour type 3: a palette image"
        np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], expected)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), expected)
    # The palette holds the limbs blended over black at 60 %: the neck-to-nose limb (colour 12, blue) is 153 blue.
    assert tuple(skeleton_palette()[1 + 12]) == (0, 0, 153)


def test_the_recorder_returns_empty_arrays_of_the_right_shape_for_no_frames() -> None:
    arrays = PartsRecorder(True, True).arrays()
    assert {name: a.shape for name, a in arrays.items()} == {
        "hand_landmarks": (0, 2, 21, 3),
        "hand_present": (0, 2),
        "face_landmarks": (0, 478, 3),
        "face_present": (0,),
    }


def test_hands_and_face_follow_the_main_person_only(runner: PoseRunner, vtest_video: Path, tmp_path: Path) -> None:
    """vtest.avi frames 440..529: MediaPipe's whole-frame tracker changes pedestrian, so the clip has several
    tracks, one the main. The parts are Holistic's own in the main person's frames and absent in every other frame,
    including one where Holistic found a hand on a person another track follows."""
    clip = VideoFile(vtest_video, frame_start=440, frame_end=530)
    result, _ = run_pose(runner, clip, tmp_path, hands=True, face=True, render_skeleton=False)
    arrays = result.arrays
    assert len(result.summary["tracks"]) >= 2, "the tracker changed person"
    params = runner.validate({"hands": True, "face": True})
    graph = hands_face.new_holistic(mediapipe.solutions, params)  # no cut in the clip: one graph, as the run's
    recorder = PartsRecorder(True, True)
    try:
        for frame in clip.frames():
            recorder.add(graph.process(np.ascontiguousarray(frame)))
    finally:
        graph.close()
    raw = recorder.arrays()
    main = arrays["present"]
    others = arrays["track_present"].any(axis=0) & ~main
    assert (raw["hand_present"].any(axis=1) & others).any(), "premise: a part found on someone else"
    for name in ("hand_landmarks", "hand_present", "face_landmarks", "face_present"):
        np.testing.assert_array_equal(arrays[name][main], raw[name][main], err_msg=name)
    assert not arrays["hand_present"][~main].any() and not arrays["face_present"][~main].any()
    assert np.isnan(arrays["hand_landmarks"][~main]).all() and np.isnan(arrays["face_landmarks"][~main]).all()


def test_the_recorder_refuses_a_frame_mask_of_another_length() -> None:
    """The parts must line up with the body's frames: a mask that does not is a bug, not something to guess at."""
    with pytest.raises(ValueError, match="hand_landmarks has 0 frames, only has 1"):
        PartsRecorder(True, False).arrays(only=np.array([True]))
