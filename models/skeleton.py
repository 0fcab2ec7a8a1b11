"""Body skeleton renders in the OpenPose colour convention, for pose control videos.

The convention (keypoints, limbs, colours, stroke sizes) lives in :mod:`shared.openpose`, which the add-on's
scene pose pass draws from too, so both draw the same skeleton for the same points.

MediaPipe gives 33 landmarks; :func:`mediapipe_to_openpose18` picks the 17 that COCO shares with it and
adds the neck as the midpoint of the shoulders. OpenCV is imported by :func:`draw_openpose` only, so the
pose runner can import this module without it.
"""

from __future__ import annotations

import numpy as np

from shared.openpose import (
    JOINT_RADIUS_PX,
    LIMB_OPACITY,
    NECK,
    OPENPOSE18_KEYPOINTS,
    OPENPOSE18_LIMBS,
    OPENPOSE_COLOURS,
    STICK_WIDTH_PX,
)

MEDIAPIPE_POSE_LANDMARKS = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
"""MediaPipe Pose's 33 landmarks, in the order of its output. Left and right are the person's own."""

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

    keypoints = np.asarray(keypoints18, dtype=np.float64)
    if keypoints.shape != (len(OPENPOSE18_KEYPOINTS), 2):
        raise ValueError(f"expected keypoints of shape (18, 2), got {keypoints.shape}")
    present = ~np.isnan(keypoints).any(axis=1)

    limbs = canvas_rgb.copy()
    # 17 limbs take the first 17 of the 18 colours.
    for colour, (start, end) in zip(OPENPOSE_COLOURS, OPENPOSE18_LIMBS, strict=False):
        if not (present[start] and present[end]):
            continue
        centre = (keypoints[start] + keypoints[end]) / 2
        dx, dy = keypoints[end] - keypoints[start]
        outline = cv2.ellipse2Poly(
            (round(centre[0]), round(centre[1])),
            (round(np.hypot(dx, dy) / 2), STICK_WIDTH_PX),
            round(np.degrees(np.arctan2(dy, dx))),
            0,
            360,
            1,
        )
        cv2.fillConvexPoly(limbs, np.asarray(outline, dtype=np.int32), colour)
    # Where no limb was drawn, ``limbs`` equals the canvas, so the blend leaves those pixels unchanged.
    result = cv2.addWeighted(canvas_rgb, 1.0 - LIMB_OPACITY, limbs, LIMB_OPACITY, 0.0)

    for index in np.flatnonzero(present):
        x, y = keypoints[index]
        cv2.circle(result, (round(x), round(y)), JOINT_RADIUS_PX, OPENPOSE_COLOURS[index], thickness=-1)
    return result
