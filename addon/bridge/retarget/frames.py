"""MediaPipe's world frame to Blender's, written once.

MediaPipe world landmarks: metres, origin between the hips, x to the image's right (the subject's left when
they face the camera), y down, z away from the camera. Blender: Z up; a character faces -Y and its left is +X.
For a camera in front of the subject, blender = (x, z, -y): a proper rotation (determinant +1), so handedness,
lengths and angles survive the conversion.
"""

from __future__ import annotations

import numpy as np

from ....shared.pose_data import LANDMARK, LANDMARK_NAMES

__all__ = ["LANDMARK", "LANDMARK_NAMES", "blender_to_mediapipe", "mediapipe_to_blender"]

MEDIAPIPE_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation taking a MediaPipe world vector (column) to Blender: ``blender = MEDIAPIPE_TO_BLENDER @ mediapipe``."""


def mediapipe_to_blender(points: np.ndarray) -> np.ndarray:
    """MediaPipe world coordinates (..., 3) to Blender's: (x, y, z) -> (x, z, -y). Metres stay metres."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def blender_to_mediapipe(points: np.ndarray) -> np.ndarray:
    """The inverse of :func:`mediapipe_to_blender`: (x, y, z) -> (x, -z, y)."""
    points = np.asarray(points, dtype=np.float64)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)
