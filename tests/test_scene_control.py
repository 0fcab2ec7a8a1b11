"""The scene passes' maths without Blender: generation sizes, camera framing, projection, the OpenPose drawing in
numpy against the pose mode's OpenCV drawing, hidden joints and the depth pictures.

``addon/bridge/scene_control`` is imported without ``addon/__init__.py`` (which imports bpy), see
``support/scene_control.py``. What needs Blender (rendering, the EXR files it writes, evaluated bones) is
tested in ``tests/blender/test_scene_generate.py``.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from support.scene_control import load_scene_control

from models import skeleton
from models.vace.runner import QUALITY_PRESETS, WAN_VACE_1_3B, size_for_aspect
from models.vace.windows import plan_windows
from shared import openpose

load_scene_control()
body_joints = importlib.import_module("vfx_extension.addon.bridge.scene_control.body_joints")
depth = importlib.import_module("vfx_extension.addon.bridge.scene_control.depth")
framing = importlib.import_module("vfx_extension.addon.bridge.scene_control.framing")
projection = importlib.import_module("vfx_extension.addon.bridge.scene_control.projection")
skeleton_drawing = importlib.import_module("vfx_extension.addon.bridge.scene_control.skeleton_drawing")


# -- sizes and frames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("aspect", [16 / 9, 4 / 3, 1.0, 9 / 16, 2.39, 1.85, 720 / 528])
@pytest.mark.parametrize("quality", ["draft", "standard", "high"])
def test_the_generation_size_is_the_one_the_daemon_picks_for_the_same_aspect(aspect, quality):
    area = QUALITY_PRESETS[quality].area or WAN_VACE_1_3B.high_area
    assert framing.QUALITY_AREAS[quality] == area
    assert framing.generation_size(aspect, area) == size_for_aspect(aspect, area)


@pytest.mark.parametrize(
    "aspect, size, render_size, left, top",
    [
        (16 / 9, (848, 480), (853, 480), 2, 0),  # generation a little narrower: crop the sides
        (16 / 9, (64, 32), (64, 36), 0, 2),  # generation wider: crop top and bottom
        (1.0, (512, 512), (512, 512), 0, 0),  # same aspect: the whole frame
    ],
)
def test_the_camera_frame_covers_the_generation_size_and_its_centre_is_cropped(aspect, size, render_size, left, top):
    fit = framing.fit_camera(aspect, *size)
    assert (fit.width, fit.height, fit.render_size, fit.left, fit.top) == (*size, render_size, left, top)
    assert fit.cropped == (render_size != size)
    assert fit.render_size[0] >= size[0] and fit.render_size[1] >= size[1]
    assert fit.render_size[0] / fit.render_size[1] == pytest.approx(aspect, rel=0.02)


def test_a_size_that_is_not_a_multiple_of_16_is_refused():
    with pytest.raises(ValueError, match="multiples of 16"):
        framing.fit_camera(1.5, 100, 64)


@pytest.mark.parametrize("count", [1, 5, 9, 10, 17, 30, 81, 82, 200])
def test_frame_notes_say_what_the_models_frame_rules_do(count):
    notes = framing.frame_notes(count, 81)
    windows = plan_windows(count, 81, 9)
    padded = windows[-1].end > count
    assert any("4k+1" in note for note in notes) == padded
    assert any("overlapping windows" in note for note in notes) == (len(windows) > 1)


# -- projection ---------------------------------------------------------------------------------------------


def perspective(focal: float, width: int, height: int, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    """An OpenGL projection with a horizontal focal length ``focal`` (in half-widths), square pixels."""
    return np.array(
        [
            [focal, 0, 0, 0],
            [0, focal * width / height, 0, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )


def test_projection_puts_points_where_a_pinhole_camera_sees_them_in_the_cropped_frame():
    fit = framing.Framing(100, 50, (110, 50), 5, 0)
    view = np.eye(4)  # the camera at the origin looking down -Z, y up
    points = np.array([[0.0, 0.0, -4.0], [1.0, 0.5, -2.0], [0.0, 0.0, 3.0]])
    pixels, distance = projection.project_points(points, view, perspective(2.0, 110, 50), fit)
    np.testing.assert_allclose(pixels[0], [55 - 5, 25])
    # x: 1 / 2 * 2 = 1 half-width right of centre -> 110; y: 0.5 / 2 * 2 * 110 / 50 half-heights up.
    np.testing.assert_allclose(pixels[1], [110 - 5, 25 - 0.5 / 2 * 2 * 110 / 50 * 25])
    np.testing.assert_allclose(distance, [4.0, 2.0, -3.0])
    assert np.isnan(pixels[2]).all(), "behind the camera"


# -- drawing ------------------------------------------------------------------------------------------------


def random_skeletons(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        keypoints = rng.uniform(-10, 140, (18, 2))
        keypoints[rng.random(18) < 0.15] = np.nan
        yield keypoints


def test_both_drawings_read_the_one_shared_convention():
    assert skeleton.OPENPOSE_COLOURS is openpose.OPENPOSE_COLOURS
    assert skeleton.OPENPOSE18_LIMBS is openpose.OPENPOSE18_LIMBS
    # The add-on's copy of the package is imported under another name here, from the same file.
    add_on_convention = importlib.import_module("vfx_extension.shared.openpose")
    assert add_on_convention.__file__ == openpose.__file__
    assert skeleton_drawing.OPENPOSE_COLOURS is add_on_convention.OPENPOSE_COLOURS


def test_the_numpy_drawing_matches_the_pose_modes_opencv_drawing_but_for_a_few_rim_pixels():
    differing = drawn = 0
    for keypoints in random_skeletons(100):
        canvas = np.zeros((120, 128, 3), np.uint8)
        ours = skeleton_drawing.draw_openpose(canvas, keypoints)
        theirs = skeleton.draw_openpose(canvas, keypoints)
        mask = np.any(ours != theirs, axis=2)
        differing += int(mask.sum())
        drawn += int((np.any(theirs > 0, axis=2)).sum())
        # The joints are drawn last, as the same discs: their centres agree (a later joint may cover an earlier one).
        for index in np.flatnonzero(~np.isnan(keypoints).any(axis=1)):
            x, y = round(keypoints[index][0]), round(keypoints[index][1])
            if 0 <= x < 128 and 0 <= y < 120:
                assert tuple(ours[y, x]) == tuple(theirs[y, x]) in openpose.OPENPOSE_COLOURS
    assert drawn > 100_000
    assert differing <= 0.005 * drawn, (differing, drawn)


def test_the_drawing_blends_limbs_over_the_canvas_like_the_pose_mode():
    keypoints = np.full((18, 2), np.nan)
    keypoints[1], keypoints[2] = (20, 20), (60, 20)  # neck to right shoulder: limb 0, red
    canvas = np.full((40, 80, 3), 100, np.uint8)
    ours = skeleton_drawing.draw_openpose(canvas, keypoints)
    np.testing.assert_array_equal(ours[20, 40], skeleton.draw_openpose(canvas, keypoints)[20, 40])
    assert tuple(ours[20, 40]) == (193, 40, 40)  # 0.4 * 100 + 0.6 * (255, 0, 0)
    assert tuple(ours[0, 0]) == (100, 100, 100)


# -- joints -------------------------------------------------------------------------------------------------


def test_hidden_joints_are_those_behind_the_surface_by_more_than_the_margin():
    pixels = np.array([[1.5, 1.5], [2.2, 0.5], [3.9, 2.1], [-1.0, 1.0], [np.nan, np.nan]])
    distance = np.array([5.2, 5.4, 9.0, 50.0, 1.0])
    z = np.full((3, 4), 5.0)
    shown, hidden = body_joints.hide_occluded(pixels, distance, z, margin=0.3)
    assert hidden.tolist() == [False, True, True, False, False]
    assert np.isnan(shown[1:3]).all() and np.array_equal(shown[0], pixels[0]) and np.array_equal(shown[3], pixels[3])
    _shown, none_hidden = body_joints.hide_occluded(pixels, distance, None, margin=0.3)
    assert not none_hidden.any()


def test_the_neck_is_the_midpoint_of_the_shoulders_in_the_picture_as_the_pose_mode_draws_it():
    pixels = np.full((18, 2), np.nan)
    right, left = (
        openpose.OPENPOSE18_KEYPOINTS.index("right_shoulder"),
        openpose.OPENPOSE18_KEYPOINTS.index("left_shoulder"),
    )
    pixels[right], pixels[left] = (10, 20), (30, 24)
    np.testing.assert_array_equal(body_joints.add_neck(pixels)[openpose.NECK], (20, 22))
    pixels[left] = np.nan
    assert np.isnan(body_joints.add_neck(pixels)[openpose.NECK]).all()


def test_the_face_sits_on_the_head_facing_the_way_the_character_faces():
    # A head bone at rest pointing up (+Z) in an armature facing -Y: local Y is world Z.
    rest = np.eye(4)
    rest[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    forward, left = body_joints.face_axes_at_rest(rest)
    turned = np.eye(4)
    turned[:3, :3] = rest[:3, :3]
    axes = body_joints.head_axes(turned, forward, left)
    np.testing.assert_allclose(axes[0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(axes[1], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(axes[2], [1, 0, 0], atol=1e-12)
    joints = {role: np.zeros(3) for role in body_joints.REQUIRED_ROLES}
    joints["head"] = np.array([0.0, 0.0, 1.6])
    points = body_joints.keypoints_world(body_joints.PosedBody(joints, axes, 0.2))
    nose = points[openpose.OPENPOSE18_KEYPOINTS.index("nose")]
    left_ear = points[openpose.OPENPOSE18_KEYPOINTS.index("left_ear")]
    assert nose[1] < -0.05 and nose[2] > 1.6, "in front of and above the head bone's base"
    assert left_ear[0] > 0.05, "the character's left is +X"


# -- depth --------------------------------------------------------------------------------------------------


def test_depth_pictures_are_inverse_depth_on_one_scale_for_the_shot_near_white_background_black():
    frames = [np.array([[2.0, 4.0], [8.0, 1e10]]), np.array([[4.0, 4.0], [1e10, 1e10]])]
    nearest, farthest = depth.shot_range(frames)
    assert (nearest, farthest) == (2.0, 8.0)
    first, second = (depth.depth_picture(z, nearest, farthest)[..., 0] for z in frames)
    assert first[0, 0] == 255 and first[1, 0] == 0 and first[1, 1] == 0
    assert first[0, 1] == second[0, 0] == second[0, 1] == round((1 / 4 - 1 / 8) / (1 / 2 - 1 / 8) * 255)
    with pytest.raises(ValueError, match="sees no surface"):
        depth.shot_range([np.full((2, 2), 1e10)])


# -- the motion mode takes a scene pass as it is -----------------------------------------------------------


def test_the_motion_mode_uses_a_scene_pass_unchanged_with_control_as_is(tmp_path):
    from test_vace import PROMPT, StageLog

    from daemon.devices import resolve_device
    from models.runner import InvalidInput
    from models.vace.motion import VaceMotionRunner

    runner = VaceMotionRunner()
    runner.models_dir = tmp_path  # no depth model needed
    params = runner.validate({"prompt": PROMPT, "control": "as_is"})
    frames = [np.full((16, 32, 3), value, np.uint8) for value in (0, 90, 255)]
    ctx, notes = StageLog(resolve_device("cpu")), []
    control = runner.control_frames(frames, params, ctx, notes)
    assert all(c is f for c, f in zip(control, frames, strict=True))
    assert notes == ["control=as_is: the driving frames are the control video, unchanged"]
    with pytest.raises(InvalidInput, match="leave it out with control=as_is") as err:
        runner.validate({"prompt": PROMPT, "control": "as_is", "flow_scale_px": 4.0})
    assert err.value.field == "flow_scale_px"
