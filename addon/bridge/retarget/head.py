"""The head bone's rotation from the face mesh: finer than the body tracker's ears, eyes and nose.

The face's frame is read off its mesh: across from the right to the left outer eye corner, up from the chin to the
forehead (made perpendicular), and out of the face (their cross product). A face looking straight at the camera is
the rig's head at rest (its axes lined up with the armature's left, up and front, as the body solve assumes), so
the head bone's orientation is the turn from that rest frame onto the face's. Frames without a face keep the body
solve's head. The face landmarks are image landmarks put in pixels (x * width, y * height, z * width), as the hands'
are. All of it is numpy on whatever thread calls it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import rotations as rot
from .filters import OneEuroFilter, make_continuous
from .frames import mediapipe_to_blender
from .offline_filter import zero_phase
from .solver import PoseFrames, Retargeter

EYE_OUTER_RIGHT, EYE_OUTER_LEFT, CHIN, FOREHEAD = 33, 263, 152, 10


def face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, 3, 3): columns across, up and out of the face; valid (N,)) from face points (N, 478, 3)."""
    across, across_length = rot.normalize(points[:, EYE_OUTER_LEFT] - points[:, EYE_OUTER_RIGHT])
    up = points[:, FOREHEAD] - points[:, CHIN]
    up, up_length = rot.normalize(up - rot.dot(up, across)[..., None] * across)
    valid = (across_length > 1e-9) & (up_length > 1e-9) & np.all(np.isfinite(points), axis=(1, 2))
    return np.stack([across, up, rot.cross(across, up)], axis=-1), valid


class HeadFromFace:
    """Head rotations for one rig and its body solve; does nothing when the map drives no head."""

    def __init__(self, retargeter: Retargeter) -> None:
        self.retargeter = retargeter
        head = retargeter.bone_map.bones.get("head")
        self.slot = retargeter.bones.index(head) if head in retargeter.bones else -1
        axes = retargeter.to_armature
        left, up = axes[:, 0], axes[:, 2]
        self.rest_frame = np.stack([left, up, np.cross(left, up)], axis=1)
        self.head_rest = retargeter.rig.rotation(head) if head is not None and self.slot >= 0 else np.eye(3)

    def measure(
        self,
        body_rotations: np.ndarray,
        face_landmarks: np.ndarray,
        face_present: np.ndarray,
        size: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """(valid (N,), the head's local quaternions (N, 4), unfiltered) for frames posed ``body_rotations``."""
        width, height = size
        points = np.asarray(face_landmarks, dtype=np.float64) * np.array([width, height, width])
        points = mediapipe_to_blender(points) @ self.retargeter.to_armature.T
        frame, valid = face_axes(points)
        valid &= np.asarray(face_present, dtype=bool)
        frame = np.where(valid[:, None, None], frame, np.eye(3))
        target = frame @ self.rest_frame.T @ self.head_rest
        count = body_rotations.shape[0]
        world, _heads = self.retargeter.forward_kinematics(body_rotations, np.zeros((count, 3)))
        slot = self.retargeter.slots[self.slot]
        carried = world[:, slot.parent] @ slot.rest_local if slot.parent >= 0 else slot.rest_local
        return valid, rot.quat_from_matrix(np.swapaxes(carried, -1, -2) @ target)

    def solve_clip(
        self,
        body: PoseFrames,
        face_landmarks: np.ndarray,
        face_present: np.ndarray,
        size: tuple[float, float],
        fps: float,
    ) -> PoseFrames:
        """``body`` with the head bone turned as the face is, where a face was found (``face_landmarks``
        (N, 478, 3) and ``face_present`` (N,) as the pose mode writes them)."""
        if self.slot < 0 or len(body) == 0:
            return body
        valid, quats = self.measure(body.rotations, face_landmarks, face_present, size)
        rotations = body.rotations.copy()
        head = make_continuous(np.where(valid[:, None], quats, rotations[:, self.slot]))
        smoothing = self.retargeter.options.smoothing
        if smoothing is not None:  # zero-phase within each shot (``body.shot_starts``), as the body's
            head = rot.normalize(zero_phase(head, fps, smoothing, body.shot_starts))[0]
        rotations[:, self.slot] = head
        measured = body.measured.copy()
        measured[:, self.slot] |= valid
        return replace(body, rotations=rotations, measured=measured)

    def live(self) -> LiveHead:
        return LiveHead(self)


class LiveHead:
    """The head from the face one frame at a time: a frame without a face keeps the body solve's head. Not
    thread-safe."""

    def __init__(self, solver: HeadFromFace) -> None:
        self.solver = solver
        smoothing = solver.retargeter.options.smoothing
        self._filter = OneEuroFilter(smoothing) if smoothing else None
        self._last: np.ndarray | None = None

    def push(
        self, body: PoseFrames, face_landmarks: np.ndarray, present: bool, size: tuple[float, float], time_s: float
    ) -> PoseFrames:
        """``body`` (one frame) with the head from one frame's ``face_landmarks`` (478, 3)."""
        solver = self.solver
        if solver.slot < 0:
            return body
        valid, quats = solver.measure(body.rotations, face_landmarks[None], np.array([present]), size)
        if not valid[0]:
            return body
        head = make_continuous(quats, self._last)[0]
        if self._filter is not None:
            head = rot.normalize(self._filter(head, time_s))[0]
        self._last = head
        rotations = body.rotations.copy()
        rotations[0, solver.slot] = head
        return replace(body, rotations=rotations)
