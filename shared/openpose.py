"""The OpenPose body convention: keypoints, limbs, colours and stroke sizes, in one place for both sides.

Video models trained on OpenPose/DWPose control images (VACE, ControlNet) expect the 18-keypoint COCO body
drawn the OpenPose way: limbs as filled ellipses ``STICK_WIDTH_PX`` wide, blended at ``LIMB_OPACITY`` over the
canvas, then joints as solid circles of ``JOINT_RADIUS_PX``. Colour number ``i`` is the fully saturated hue
``i * 20`` degrees (red, orange, yellow, ..., magenta-red); limb ``i`` and keypoint ``i`` both take colour ``i``.
A skeleton drawn in other colours or widths reads as a different pose to those models, so these constants are
the convention, not a taste.

The pose mode draws it from MediaPipe landmarks (``models/skeleton.py``, with OpenCV); the add-on draws it from a
Blender scene's armatures (``addon/scene_control/skeleton_drawing.py``, numpy only). Both read this table.
Pure Python: no numpy, no OpenCV.
"""

from __future__ import annotations

OPENPOSE18_KEYPOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
"""The OpenPose COCO body, in its keypoint order. Left and right are the person's own."""

NECK = OPENPOSE18_KEYPOINTS.index("neck")

OPENPOSE18_LIMBS = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)
"""Keypoint pairs joined by a limb, in drawing (and colour) order: shoulders, arms, legs, then the head."""

STICK_WIDTH_PX = 4
"""Half the thickness of a limb ellipse, in pixels, whatever the image size (as OpenPose draws it)."""

JOINT_RADIUS_PX = 4
LIMB_OPACITY = 0.6


def hue_colour(degrees: float) -> tuple[int, int, int]:
    """The RGB colour of fully saturated, full-value hue ``degrees`` (0 red, 120 green, 240 blue)."""
    sector, offset = divmod(degrees % 360.0, 60.0)
    rising = round(255 * offset / 60.0)
    falling = 255 - rising
    return (
        (255, rising, 0),
        (falling, 255, 0),
        (0, 255, rising),
        (0, falling, 255),
        (rising, 0, 255),
        (255, 0, falling),
    )[int(sector)]


OPENPOSE_COLOURS = tuple(hue_colour(20.0 * i) for i in range(len(OPENPOSE18_KEYPOINTS)))
"""RGB colour of keypoint ``i`` and of limb ``i``."""
