"""Body skeleton renders in the OpenPose colour convention, for pose control videos.

The convention (keypoints, limbs, colours, stroke sizes) lives in :mod:`shared.openpose`, which the add-on's
scene pose pass draws from too, so both draw the same skeleton for the same points.

MediaPipe gives 33 landmarks; :func:`mediapipe_to_openpose18` picks the 17 that COCO shares with it and
adds the neck as the midpoint of the shoulders.

Hands and face follow the DWPose whole-body convention (what VACE's pose annotator draws): each hand's 20 bones as
2 px lines, bone ``i`` in the saturated hue ``i / 20`` of the circle, then its 21 joints as blue dots of radius 4;
the face as the 68 iBUG points in white dots of radius 3, taken from MediaPipe's 478-point mesh
(:data:`FACE68_FROM_MEDIAPIPE`). OpenCV is imported by the drawing functions only, so the pose runner can import
this module without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from shared.openpose import (
    JOINT_RADIUS_PX,
    LIMB_OPACITY,
    NECK,
    OPENPOSE18_KEYPOINTS,
    OPENPOSE18_LIMBS,
    OPENPOSE_COLOURS,
    STICK_WIDTH_PX,
    hue_colour,
)
from shared.png import IndexedImage
from shared.pose_data import LANDMARK_NAMES as MEDIAPIPE_POSE_LANDMARKS

_SHOULDERS = (
    MEDIAPIPE_POSE_LANDMARKS.index("left_shoulder"),
    MEDIAPIPE_POSE_LANDMARKS.index("right_shoulder"),
)
_FROM_MEDIAPIPE = {
    index: MEDIAPIPE_POSE_LANDMARKS.index(keypoint)
    for index, keypoint in enumerate(OPENPOSE18_KEYPOINTS)
    if keypoint != "neck"
}


def mediapipe_to_openpose18(landmarks_xy: np.ndarray, visibility: np.ndarray, threshold: float) -> np.ndarray:
    """The 18 OpenPose keypoints from MediaPipe's 33 landmarks.

    ``landmarks_xy`` is (33, 2) in any unit (the result is in the same unit, pixels for drawing);
    ``visibility`` is (33,) in 0..1. A keypoint whose landmark has visibility below ``threshold`` is NaN;
    the neck is the midpoint of the shoulders and is NaN unless both shoulders pass. Returns (18, 2) float32.
    """
    landmarks_xy = np.asarray(landmarks_xy, dtype=np.float32)
    visibility = np.asarray(visibility, dtype=np.float32)
    count = len(MEDIAPIPE_POSE_LANDMARKS)
    if landmarks_xy.shape != (count, 2) or visibility.shape != (count,):
        raise ValueError(
            f"expected landmarks of shape (33, 2) and visibility of shape (33,), "
            f"got {landmarks_xy.shape} and {visibility.shape}"
        )
    keypoints = np.full((len(OPENPOSE18_KEYPOINTS), 2), np.nan, dtype=np.float32)
    for index, source in _FROM_MEDIAPIPE.items():
        if visibility[source] >= threshold:
            keypoints[index] = landmarks_xy[source]
    left, right = _SHOULDERS
    if min(visibility[left], visibility[right]) >= threshold:
        keypoints[NECK] = (landmarks_xy[left] + landmarks_xy[right]) / 2
    return keypoints


def draw_openpose(canvas_rgb: np.ndarray, keypoints18: np.ndarray) -> np.ndarray:
    """Draw one body onto a copy of ``canvas_rgb`` (H, W, 3) uint8 and return the copy.

    ``keypoints18`` is (18, 2) in pixels, x right and y down, NaN for a keypoint not to draw; a limb is
    drawn only when both its ends are present. Points off the canvas are clipped by the drawing.
    """
    import cv2

    limbs, joints = _body_shapes(cv2, keypoints18)
    result = canvas_rgb.copy()
    if limbs:
        # The limbs are filled and blended within their bounding box only: outside it the blend would give the
        # canvas back unchanged, and at 1080p the whole frame costs milliseconds the box does not.
        corners = np.concatenate([outline for _, outline in limbs])
        height, width = canvas_rgb.shape[:2]
        x0, y0 = np.maximum(corners.min(axis=0), 0)
        x1, y1 = np.minimum(corners.max(axis=0) + 1, (width, height))
        if x0 < x1 and y0 < y1:
            box = result[y0:y1, x0:x1]
            filled = box.copy()
            for limb, outline in limbs:
                cv2.fillConvexPoly(filled, outline - (x0, y0), OPENPOSE_COLOURS[limb])
            cv2.addWeighted(box, 1.0 - LIMB_OPACITY, filled, LIMB_OPACITY, 0.0, dst=box)
    for index, centre in joints:
        cv2.circle(result, centre, JOINT_RADIUS_PX, OPENPOSE_COLOURS[index], thickness=-1)
    return result


def _body_shapes(
    cv2: Any, keypoints18: np.ndarray
) -> tuple[list[tuple[int, np.ndarray]], list[tuple[int, tuple[int, int]]]]:
    """What one body's drawing is made of: (limb number, outline polygon) for each limb with both ends present,
    in drawing order (limb ``i`` takes colour ``i``), and (keypoint number, centre pixel) for each joint."""
    keypoints = np.asarray(keypoints18, dtype=np.float64)
    if keypoints.shape != (len(OPENPOSE18_KEYPOINTS), 2):
        raise ValueError(f"expected keypoints of shape (18, 2), got {keypoints.shape}")
    present = ~np.isnan(keypoints).any(axis=1)
    # 17 limbs take the first 17 of the 18 colours.
    limbs = [
        (limb, _limb_outline(cv2, keypoints[start], keypoints[end]))
        for limb, (start, end) in enumerate(OPENPOSE18_LIMBS)
        if present[start] and present[end]
    ]
    joints = [
        (int(index), (round(keypoints[index][0]), round(keypoints[index][1]))) for index in np.flatnonzero(present)
    ]
    return limbs, joints


def _limb_outline(cv2: Any, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The polygon (N, 2) int32 pixels of the limb from ``start`` to ``end``: an ellipse ``STICK_WIDTH_PX`` thick."""
    centre = (start + end) / 2
    dx, dy = end - start
    outline = cv2.ellipse2Poly(
        (round(centre[0]), round(centre[1])),
        (round(np.hypot(dx, dy) / 2), STICK_WIDTH_PX),
        round(np.degrees(np.arctan2(dy, dx))),
        0,
        360,
        1,
    )
    return np.asarray(outline, dtype=np.int32)


HAND_BONES = (
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
)
"""MediaPipe's (and OpenPose's) 21 hand points joined into 20 bones, in drawing (and colour) order: thumb, index,
middle, ring, pinky, each from the wrist out."""

HAND_BONE_COLOURS = tuple(hue_colour(360.0 * i / len(HAND_BONES)) for i in range(len(HAND_BONES)))
HAND_LINE_WIDTH_PX = 2
HAND_JOINT_RADIUS_PX = 4
HAND_JOINT_COLOUR = (0, 0, 255)
FACE_POINT_RADIUS_PX = 3
FACE_POINT_COLOUR = (255, 255, 255)

FACE68_FROM_MEDIAPIPE = (
    # jaw, from the person's right ear (image left) round the chin to the left ear
    *(127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356),
    # right brow outer to inner, left brow inner to outer
    *(70, 63, 105, 66, 107, 336, 296, 334, 293, 300),
    # nose bridge top to tip, then the nostrils' base from right to left
    *(168, 197, 5, 4, 98, 97, 2, 326, 327),
    # right eye from its outer corner, clockwise on the image; then the left eye from its inner corner
    *(33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380),
    # the lips' outer line from the right corner, then their inner line
    *(61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178),
)
"""For each of the 68 iBUG face points (DWPose's face), the MediaPipe face-mesh point at the same place."""


def draw_hands(canvas_rgb: np.ndarray, hands_xy: np.ndarray) -> np.ndarray:
    """Draw hands onto a copy of ``canvas_rgb`` (H, W, 3) uint8 and return the copy.

    ``hands_xy`` is (H, 21, 2) in pixels (any number of hands, MediaPipe's point order); a hand with a NaN point
    is not drawn (MediaPipe finds a hand whole or not at all).
    """
    out = canvas_rgb.copy()
    _stroke_hands(out, hands_xy, HAND_BONE_COLOURS, HAND_JOINT_COLOUR)
    return out


def draw_face_points(canvas_rgb: np.ndarray, face_xy: np.ndarray) -> np.ndarray:
    """Draw the 68 face points of a MediaPipe face mesh ``face_xy`` (478, 2) in pixels onto a copy of
    ``canvas_rgb`` and return the copy; a face with NaN points (not found) is not drawn."""
    out = canvas_rgb.copy()
    _stroke_face(out, face_xy, FACE_POINT_COLOUR)
    return out


def _stroke_hands(
    canvas: np.ndarray, hands_xy: np.ndarray, bone_colours: Sequence[Sequence[int]], joint_colour: Sequence[int]
) -> None:
    """Draw the drawable hands of ``hands_xy`` into ``canvas``, in place: bone ``i`` in ``bone_colours[i]``, then
    the joints in ``joint_colour`` (RGB colours on an RGB canvas, one-value tuples on a palette canvas)."""
    import cv2

    for points in _hand_points(hands_xy):
        for colour, (start, end) in zip(bone_colours, HAND_BONES, strict=True):
            cv2.line(canvas, tuple(points[start]), tuple(points[end]), colour, HAND_LINE_WIDTH_PX)
        for x, y in points:
            cv2.circle(canvas, (int(x), int(y)), HAND_JOINT_RADIUS_PX, joint_colour, thickness=-1)


def _stroke_face(canvas: np.ndarray, face_xy: np.ndarray, colour: Sequence[int]) -> None:
    """Draw the 68 face points of ``face_xy`` into ``canvas`` in ``colour``, in place (none when it has NaN)."""
    import cv2

    for x, y in _face_points(face_xy):
        cv2.circle(canvas, (int(x), int(y)), FACE_POINT_RADIUS_PX, colour, thickness=-1)


def _hand_points(hands_xy: np.ndarray) -> list[np.ndarray]:
    """Each drawable hand of ``hands_xy`` (H, 21, 2) as (21, 2) int32 pixels; hands with a NaN point left out."""
    hands = np.asarray(hands_xy, dtype=np.float64).reshape(-1, len(HAND_BONES) + 1, 2)
    return [np.round(hand).astype(np.int32) for hand in hands if not np.isnan(hand).any()]


def _face_points(face_xy: np.ndarray) -> np.ndarray:
    """The 68 face points of a face mesh (478, 2) as (68, 2) int32 pixels; none (0, 2) when the face has NaN."""
    points = np.asarray(face_xy, dtype=np.float64)[list(FACE68_FROM_MEDIAPIPE)]
    if np.isnan(points).any():
        return np.zeros((0, 2), dtype=np.int32)
    return np.round(points).astype(np.int32)


# -- skeletons on black as palette images -------------------------------------------------------------------------
# On black, one body with its hands and face takes a fixed set of colours: its limbs are each one colour blended
# over black, everything else is opaque. Drawn as palette indices, a frame is a third of the bytes to draw and to
# encode (shared.png.encode_indexed) and decodes to exactly the RGB drawing.

_LIMB_INDEX = 1
_JOINT_INDEX = _LIMB_INDEX + len(OPENPOSE18_LIMBS)
_HAND_BONE_INDEX = _JOINT_INDEX + len(OPENPOSE18_KEYPOINTS)
_HAND_JOINT_INDEX = _HAND_BONE_INDEX + len(HAND_BONES)
_FACE_POINT_INDEX = _HAND_JOINT_INDEX + 1


@cache
def skeleton_palette() -> np.ndarray:
    """The palette of :func:`draw_on_black` (colours, 3) uint8 RGB: black; each limb's colour blended over black
    the way :func:`draw_openpose` blends it; the joints', hand bones', hand joints' and face points' colours."""
    import cv2

    limb_colours = np.array(OPENPOSE_COLOURS[: len(OPENPOSE18_LIMBS)], dtype=np.uint8)[:, None, :]
    blended = cv2.addWeighted(np.zeros_like(limb_colours), 1.0 - LIMB_OPACITY, limb_colours, LIMB_OPACITY, 0.0)
    palette = np.array(
        [(0, 0, 0), *blended[:, 0], *OPENPOSE_COLOURS, *HAND_BONE_COLOURS, HAND_JOINT_COLOUR, FACE_POINT_COLOUR],
        dtype=np.uint8,
    )
    palette.flags.writeable = False
    return palette


def draw_on_black(
    height: int,
    width: int,
    keypoints18: np.ndarray | None,
    hands_xy: np.ndarray | None = None,
    face_xy: np.ndarray | None = None,
) -> IndexedImage:
    """One body (``keypoints18`` as :func:`draw_openpose`; None for no body), then its hands (as
    :func:`draw_hands`) and face points (as :func:`draw_face_points`) on a black ``height`` x ``width`` canvas, as
    a palette image whose RGB is exactly what those functions draw on ``np.zeros``. For one body only: a second
    body's limbs blend over the first's drawing, which this palette cannot hold."""
    import cv2

    indices = np.zeros((height, width), dtype=np.uint8)
    if keypoints18 is not None:
        limbs, joints = _body_shapes(cv2, keypoints18)
        # Over black, the limbs filled one over the other and then blended are each one palette colour.
        for limb, outline in limbs:
            cv2.fillConvexPoly(indices, outline, (_LIMB_INDEX + limb,))
        for index, centre in joints:
            cv2.circle(indices, centre, JOINT_RADIUS_PX, (_JOINT_INDEX + index,), thickness=-1)
    if hands_xy is not None:
        bones = [(_HAND_BONE_INDEX + bone,) for bone in range(len(HAND_BONES))]
        _stroke_hands(indices, hands_xy, bones, (_HAND_JOINT_INDEX,))
    if face_xy is not None:
        _stroke_face(indices, face_xy, (_FACE_POINT_INDEX,))
    return IndexedImage(indices, skeleton_palette())
