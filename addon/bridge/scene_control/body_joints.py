"""An armature's posed bones, by bone-map role, to the 18 OpenPose keypoints in pixels.

The joints are where the mocap side's bone maps (``addon/retarget/bone_maps.py``) put MediaPipe's landmarks:
shoulder, elbow and wrist at the heads of ``upper_arm``, ``forearm`` and ``hand``; hip, knee and ankle at the
heads of ``thigh``, ``shin`` and ``foot``; ``.L`` is the character's left, OpenPose's ``left_*``. The neck is the
midpoint of the two shoulders in the picture, as the pose mode draws it. Rigs have no bones for the face, so nose,
eyes and ears are placed on the ``head`` bone by fixed proportions of its length (:data:`FACE_POINTS`), facing
the way the character faces at rest (armature -Y) turned with the head: close enough for a control skeleton,
not a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ....shared.openpose import NECK, OPENPOSE18_KEYPOINTS

BODY_ROLES = {
    "right_shoulder": "upper_arm.R",
    "right_elbow": "forearm.R",
    "right_wrist": "hand.R",
    "left_shoulder": "upper_arm.L",
    "left_elbow": "forearm.L",
    "left_wrist": "hand.L",
    "right_hip": "thigh.R",
    "right_knee": "shin.R",
    "right_ankle": "foot.R",
    "left_hip": "thigh.L",
    "left_knee": "shin.L",
    "left_ankle": "foot.L",
}
"""OpenPose keypoint -> the bone-map role at whose bone's head it sits."""
REQUIRED_ROLES = ("head", *BODY_ROLES.values())

FACE_POINTS = {
    "nose": (0.40, 0.45, 0.0),
    "right_eye": (0.50, 0.40, -0.14),
    "left_eye": (0.50, 0.40, 0.14),
    "right_ear": (0.40, 0.0, -0.36),
    "left_ear": (0.40, 0.0, 0.36),
}
"""Face keypoint -> (up, forward, left) offsets from the head bone's head, in head-bone lengths."""


@dataclass(frozen=True)
class PosedBody:
    """One armature in one frame, in world space (Blender units).

    ``joints``: role -> the head of the role's bone, (3,); ``head_axes``: the head bone's (up, forward, left)
    unit vectors; ``head_length``: its length.
    """

    joints: Mapping[str, np.ndarray]
    head_axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    head_length: float


def face_axes_at_rest(head_rest_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The character's forward (armature -Y) and left (armature +X) in the head bone's own frame, from its
    armature-space rest matrix (4, 4): turn them with the posed bone's world rotation to face where it faces."""
    rotation = np.asarray(head_rest_matrix, dtype=np.float64)[:3, :3]
    inverse = np.linalg.inv(rotation)
    return inverse @ np.array([0.0, -1.0, 0.0]), inverse @ np.array([1.0, 0.0, 0.0])


def head_axes(posed_world_matrix: np.ndarray, forward_local: np.ndarray, left_local: np.ndarray):
    """(up, forward, left) world unit vectors of a head bone posed at ``posed_world_matrix`` (4, 4)."""
    rotation = np.asarray(posed_world_matrix, dtype=np.float64)[:3, :3]
    vectors = (rotation[:, 1], rotation @ forward_local, rotation @ left_local)
    return tuple(v / np.linalg.norm(v) for v in vectors)


def keypoints_world(body: PosedBody) -> np.ndarray:
    """(18, 3) world positions of the OpenPose keypoints; the neck row is NaN (it is made in the picture)."""
    points = np.full((len(OPENPOSE18_KEYPOINTS), 3), np.nan)
    for keypoint, role in BODY_ROLES.items():
        points[OPENPOSE18_KEYPOINTS.index(keypoint)] = body.joints[role]
    up, forward, left = body.head_axes
    for keypoint, (u, f, side) in FACE_POINTS.items():
        offset = body.head_length * (u * up + f * forward + side * left)
        points[OPENPOSE18_KEYPOINTS.index(keypoint)] = body.joints["head"] + offset
    return points


def add_neck(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (18, 2) with the neck set to the shoulders' midpoint (NaN unless both are there)."""
    result = np.array(pixels, dtype=np.float64)
    right, left = OPENPOSE18_KEYPOINTS.index("right_shoulder"), OPENPOSE18_KEYPOINTS.index("left_shoulder")
    result[NECK] = (result[right] + result[left]) / 2
    return result


def hide_occluded(
    pixels: np.ndarray, depth: np.ndarray, z_pass: np.ndarray | None, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, hidden)``: keypoints whose depth is more than ``margin`` behind the Z pass at their pixel
    become NaN and are flagged in ``hidden`` (18,) bool. Keypoints outside the picture, behind the camera, or
    with no Z pass, are left as they are: nothing says they are hidden."""
    result = np.array(pixels, dtype=np.float64)
    hidden = np.zeros(len(result), dtype=bool)
    if z_pass is None:
        return result, hidden
    height, width = z_pass.shape
    for index, (x, y) in enumerate(result):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        column, row = int(np.floor(x)), int(np.floor(y))
        if 0 <= column < width and 0 <= row < height and depth[index] > z_pass[row, column] + margin:
            hidden[index] = True
            result[index] = np.nan
    return result, hidden
