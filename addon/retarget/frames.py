"""MediaPipe's world frame to Blender's, written once.

MediaPipe world landmarks: metres, origin between the hips, x to the image's right (the subject's left when
they face the camera), y down, z away from the camera. Blender: Z up; a character faces -Y and its left is +X.
For a camera in front of the subject, blender = (x, z, -y): a proper rotation (determinant +1), so handedness,
lengths and angles survive the conversion.
"""

from __future__ import annotations

import numpy as np

MEDIAPIPE_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation taking a MediaPipe world vector (column) to Blender: ``blender = MEDIAPIPE_TO_BLENDER @ mediapipe``."""

LANDMARK_NAMES = (
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
"""MediaPipe Pose's 33 landmarks in its output order (the daemon's ``models.skeleton`` holds the same list; the
add-on cannot import the daemon's packages). Left and right are the person's own."""

LANDMARK = {name: index for index, name in enumerate(LANDMARK_NAMES)}
"""Landmark name -> its index in the (33, ...) arrays."""


def mediapipe_to_blender(points: np.ndarray) -> np.ndarray:
    """MediaPipe world coordinates (..., 3) to Blender's: (x, y, z) -> (x, z, -y). Metres stay metres."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def blender_to_mediapipe(points: np.ndarray) -> np.ndarray:
    """The inverse of :func:`mediapipe_to_blender`: (x, y, z) -> (x, -z, y)."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)
