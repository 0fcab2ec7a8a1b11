"""Hands onto finger bones: MediaPipe's 21 hand landmarks to wrist and finger rotations, aware of the rig's rest.

How:

1. The hand's frame: from the wrist to the middle knuckle (along the hand), from the index to the pinky knuckle
   (across it) and their cross product (the palm's normal). The same frame read off the rig at rest (the hand
   bone's head, the fingers' first bones' heads) says how the rig's hand sits. The hand bone's orientation is the
   turn that takes the rig's rest frame onto the person's: better than the body tracker's two knuckle points, and
   it holds the twist of the forearm's end.
2. Fingers are solved in the hand's own frame, so they do not depend on the arm: each bone's direction (joint to
   next joint) is read relative to the person's hand frame and carried onto the rig's rest hand frame.
3. Anatomy: each joint's direction is split into a curl (towards the palm side of the bone before it) and a
   spread (sideways). The knuckles curl and spread; the middle and end joints curl, with a little sideways
   play for bend planes that the rig or the tracker tilt. The thumb curls about its own axis, across the palm
   towards the little finger, and its base (a saddle joint) moves freely. The curl direction is carried along
   each finger joint by joint, so it stays right when a finger curls past a right angle. Curls are limited
   (:data:`FINGER_LIMITS_DEG`, :data:`THUMB_LIMITS_DEG`) so that no finger bends backwards further than a hand
   can, whatever the tracker says.
4. The rig's bones are aimed parent first (the smallest turn from the bone's carried rest direction), so a rig
   whose fingers rest curled or rolled works like one with straight fingers; twist stays at rest.
5. A hand not found in a frame: its bones are interpolated across gaps up to ``max_gap_frames`` and held across
   longer ones (a hand never found stays at rest, and the body's solve keeps the hand bone); then smoothing, as
   for the body: zero-phase over a clip (:mod:`.offline_filter`, no lag), the One Euro filter live.

Hand landmarks come as MediaPipe's image landmarks (x, y normalised to the frame, z relative depth at the scale
of x); they are put in pixels (x * width, y * height, z * width), which keeps directions true. All of it is numpy
on whatever thread calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import rotations as rot
from .filters import OneEuroFilter, make_continuous
from .finger_maps import FINGERS, FingerMap
from .frames import mediapipe_to_blender
from .offline_filter import zero_phase
from .solver import PoseFrames, Retargeter, per_shot, shot_bounds

WRIST = 0
FINGER_JOINTS = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
"""MediaPipe's hand landmarks along each finger: bone ``k`` runs from joint ``k`` to joint ``k + 1``."""
FINGER_LIMITS_DEG = ((-20.0, 100.0, 30.0), (-5.0, 115.0, 20.0), (-5.0, 95.0, 20.0))
"""Index to little finger, per bone from the knuckle out: (least curl, most curl, most spread either way) in
degrees, relative to the bone before (for the knuckle, the line from the wrist to it). Negative curl bends back."""
THUMB_LIMITS_DEG = ((-180.0, 180.0, 90.0), (-10.0, 80.0, 20.0), (-15.0, 90.0, 20.0))
"""The thumb's base moves freely (limits that limit nothing); its middle and end joints curl about the thumb's own
axis."""
LIMITS_DEG = np.array([THUMB_LIMITS_DEG if finger == "thumb" else FINGER_LIMITS_DEG for finger in FINGERS])
"""(5, 3 joints, 3) the limits of every finger's joints, in :data:`FINGERS` order."""
JOINTS = np.array([FINGER_JOINTS[finger] for finger in FINGERS])
"""(5, 4) each finger's landmarks, in :data:`FINGERS` order."""
HAND_SIDES = {"L": 0, "R": 1}
"""The index of each side in the pose job's ``hand_landmarks`` (the person's left hand first)."""
PALM_SIDE = {"L": -1.0, "R": 1.0}
"""Which way the palm faces along the hand frame's normal (wrist-to-middle x index-to-pinky) for each hand."""


def hand_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames (..., 3, 3), valid (...)) from hand points (..., 21, 3): columns along the hand (wrist to middle
    knuckle), across it (index to pinky knuckle, made perpendicular) and the palm's normal (their cross product)."""
    along, along_length = rot.normalize(points[..., 9, :] - points[..., WRIST, :])
    across = points[..., 17, :] - points[..., 5, :]
    across = across - rot.dot(across, along)[..., None] * along
    across, across_length = rot.normalize(across)
    normal = rot.cross(along, across)
    valid = (along_length > 1e-9) & (across_length > 1e-9)
    return np.stack([along, across, normal], axis=-1), valid


def limit_joint(
    parent: np.ndarray,
    target: np.ndarray,
    palm: np.ndarray,
    limits: tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray],
) -> np.ndarray:
    """``target`` unit directions (N, 3) with their curl and spread relative to ``parent`` (N, 3) limited.

    The curl turns towards ``palm`` (unit, perpendicular to ``parent``: the way the joint curls), the spread
    sideways: target = cos(spread) (cos(curl) parent + sin(curl) palm) + sin(spread) side. ``limits`` (least
    curl, most curl, most spread) in degrees, each a number or an array that broadcasts with the directions'
    leading axes.
    """
    curl_min, curl_max, spread_max = (np.radians(np.asarray(limit, dtype=np.float64)) for limit in limits)
    side = rot.cross(parent, palm)
    spread = np.arcsin(np.clip(rot.dot(target, side), -1.0, 1.0))
    curl = np.arctan2(rot.dot(target, palm), rot.dot(target, parent))
    spread = np.clip(spread, -spread_max, spread_max)
    curl = np.clip(curl, curl_min, curl_max)
    in_plane = np.cos(curl)[..., None] * parent + np.sin(curl)[..., None] * palm
    return np.cos(spread)[..., None] * in_plane + np.sin(spread)[..., None] * side


def curls_deg(points: np.ndarray, side: str) -> np.ndarray:
    """(..., 5, 3) each finger's curl at its three joints, in degrees, from hand points (..., 21, 3) in any
    frame: what :func:`limit_joint` limits (the thumb's base, which moves freely, reads 0)."""
    frame, _ = hand_frame(points)
    out = np.zeros((*points.shape[:-2], len(FINGERS), 3))
    for f, finger in enumerate(FINGERS):
        joints = FINGER_JOINTS[finger]
        parent = rot.normalize(points[..., joints[0], :] - points[..., WRIST, :])[0]
        towards = _curl_direction(finger, side, frame, parent)
        for k in range(3):
            target = rot.normalize(points[..., joints[k + 1], :] - points[..., joints[k], :])[0]
            if finger != "thumb" or k > 0:
                out[..., f, k] = np.degrees(np.arctan2(rot.dot(target, towards), rot.dot(target, parent)))
            towards = _carry(towards, parent, target)
            parent = target
    return out


def _curl_start(finger: str, side: str, frame: np.ndarray) -> np.ndarray:
    """Where a finger's first joint curls to, from a hand ``frame`` (..., 3, 3): the palm side; for the thumb,
    across the palm towards the little finger."""
    return frame[..., 1] if finger == "thumb" else PALM_SIDE[side] * frame[..., 2]


def _curl_direction(finger: str, side: str, frame: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """The way a finger's first joint curls, perpendicular to ``parent`` (the line from the wrist to it)."""
    towards = _curl_start(finger, side, frame)
    towards = towards - rot.dot(towards, parent)[..., None] * parent
    return rot.normalize(towards)[0]


def _carry(towards: np.ndarray, parent: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The curl direction of the next joint: ``towards`` turned as the bone turned from ``parent`` to ``target``,
    kept perpendicular to ``target``."""
    turned = (rot.rotation_between(parent, target) @ towards[..., None])[..., 0]
    turned = turned - rot.dot(turned, target)[..., None] * target
    return rot.normalize(turned)[0]


@dataclass
class _Hand:
    side: str
    slot: int
    """The hand bone's slot in the body solve."""
    rest_frame: np.ndarray
    """(3, 3) the hand frame of the rig at rest (armature space)."""
    hand_rest: np.ndarray
    """(3, 3) the hand bone's rest rotation."""
    bones: tuple[str, ...]
    """The 15 finger bones, in :data:`FINGERS` order, each finger from the knuckle out."""
    parent_rest: np.ndarray
    """(5, 3, 3) rest rotation of each finger's first bone's parent (armature space); identity for a root bone."""
    rest_local: np.ndarray
    """(5, 3, 3, 3) each finger bone's rest rotation relative to its parent's rest rotation."""
    curl_start: np.ndarray
    """(5, 3) where each finger's first joint curls to, in the rig's rest hand frame (before it is made
    perpendicular to the finger): the palm side; for the thumb, across the palm towards the little finger."""


class HandSolver:
    """Wrist and finger rotations for one rig, its body solve (``retargeter``) and its ``finger_map``.

    Only sides whose hand bone the body map drives and whose five fingers the finger map names are solved.
    """

    def __init__(self, retargeter: Retargeter, finger_map: FingerMap) -> None:
        self.retargeter = retargeter
        self.finger_map = finger_map
        rig = retargeter.rig
        self.hands: list[_Hand] = []
        for side in finger_map.sides():
            hand_bone = retargeter.bone_map.bones.get(f"hand.{side}")
            chains = finger_map.bones[side]
            if hand_bone not in retargeter.bones or set(chains) != set(FINGERS):
                continue
            rest_points = np.zeros((21, 3))
            rest_points[WRIST] = rig.head(hand_bone)
            parents, locals_ = [], []
            for finger in FINGERS:
                chain = chains[finger]
                joints = FINGER_JOINTS[finger]
                for k, bone in enumerate(chain):
                    rest_points[joints[k]] = rig.head(bone)
                rest_points[joints[3]] = rig.tail(chain[2])
                parent_index = rig.parents[rig.index(chain[0])]
                parent_rest = rig.rotation(rig.bones[parent_index]) if parent_index >= 0 else np.eye(3)
                rests = [parent_rest, *(rig.rotation(bone) for bone in chain)]
                parents.append(parent_rest)
                locals_.append([rests[k].T @ rests[k + 1] for k in range(3)])
            frame, valid = hand_frame(rest_points)
            if not valid:
                continue
            starts = np.array([_curl_start(finger, side, frame) for finger in FINGERS])
            bones = tuple(bone for finger in FINGERS for bone in chains[finger])
            slot = retargeter.bones.index(hand_bone)
            hand = _Hand(
                side, slot, frame, rig.rotation(hand_bone), bones, np.array(parents), np.array(locals_), starts
            )
            self.hands.append(hand)
        self.bones = tuple(bone for hand in self.hands for bone in hand.bones)

    def to_armature(self, hand_landmarks: np.ndarray, image_size: tuple[float, float]) -> np.ndarray:
        """Image hand landmarks (..., 21, 3) to points in the armature's axes, in pixels."""
        width, height = image_size
        scale = np.array([width, height, width], dtype=np.float64)
        return (
            mediapipe_to_blender(np.asarray(hand_landmarks, dtype=np.float64) * scale) @ self.retargeter.to_armature.T
        )

    def measure(
        self,
        body_rotations: np.ndarray,
        hand_landmarks: np.ndarray,
        hand_present: np.ndarray,
        size: tuple[float, float],
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per solved hand (in :attr:`hands` order): (seen (N,), wrist local quaternions (N, 4), finger local
        quaternions (N, 15, 4)) of frames whose body pose is ``body_rotations`` (N, B, 4); unfiltered, and
        meaningless where not seen."""
        count = body_rotations.shape[0]
        world, _heads = self.retargeter.forward_kinematics(body_rotations, np.zeros((count, 3)))
        out = []
        for hand in self.hands:
            index = HAND_SIDES[hand.side]
            points = self.to_armature(hand_landmarks[:, index], size)
            frame, valid = hand_frame(points)
            valid &= np.asarray(hand_present[:, index], dtype=bool) & np.all(np.isfinite(points), axis=(-1, -2))
            frame = np.where(valid[:, None, None], frame, np.eye(3))
            points = np.where(valid[:, None, None], points, 0.0)

            # 1. The wrist: the rig's rest hand frame turned onto the person's.
            target = frame @ hand.rest_frame.T @ hand.hand_rest
            slot = self.retargeter.slots[hand.slot]
            carried = world[:, slot.parent] @ slot.rest_local if slot.parent >= 0 else slot.rest_local
            wrist = rot.quat_from_matrix(np.swapaxes(carried, -1, -2) @ target)

            # 2. The fingers, in the rig's rest hand frame.
            to_rest = hand.rest_frame @ np.swapaxes(frame, -1, -2)
            turns = self._fingers(hand, points, to_rest)
            out.append((valid, wrist, rot.quat_from_matrix(turns.reshape(count, -1, 3, 3))))
        return out

    def solve_clip(
        self,
        body: PoseFrames,
        hand_landmarks: np.ndarray,
        hand_present: np.ndarray,
        image_size: tuple[float, float],
        fps: float,
    ) -> PoseFrames:
        """``body`` (from the retargeter's :meth:`~Retargeter.solve_clip`) with the hands' wrists from the hand
        landmarks and the finger bones added: ``hand_landmarks`` (N, 2, 21, 3) and ``hand_present`` (N, 2) as
        the pose mode writes them, of frames ``image_size`` (width, height) pixels, at ``fps``. As for the body,
        nothing crosses a cut (``body.shot_starts``): gaps are filled and smoothing runs within each shot."""
        count = len(body)
        shots = shot_bounds(list(body.shot_starts), count)
        rotations = body.rotations.copy()
        gap = self.retargeter.options.max_gap_frames
        smoothing = self.retargeter.options.smoothing
        fingers, measured = [], []
        for hand, (valid, wrist, quats) in zip(
            self.hands, self.measure(body.rotations, hand_landmarks, hand_present, image_size), strict=True
        ):
            wrist = make_continuous(np.where(valid[:, None], wrist, rotations[:, hand.slot]))
            quats = per_shot(shots, _fill, make_continuous(quats), valid, gap)
            if smoothing is not None and count:
                wrist = rot.normalize(zero_phase(wrist, fps, smoothing, body.shot_starts))[0]
                quats = rot.normalize(zero_phase(quats, fps, smoothing, body.shot_starts))[0]
            rotations[:, hand.slot] = np.where(valid[:, None], wrist, rotations[:, hand.slot])
            fingers.append(quats)
            measured.append(np.repeat(valid[:, None], quats.shape[1], axis=1))
        return self._with_fingers(body, rotations, fingers, measured)

    def _with_fingers(
        self, body: PoseFrames, rotations: np.ndarray, fingers: list[np.ndarray], measured: list[np.ndarray]
    ) -> PoseFrames:
        """``body`` (its root, contacts and cuts kept) with ``rotations`` and the finger bones; a finger's
        confidence is 1 where its hand was seen, 0 where it was held."""
        if not fingers:
            return replace(body, rotations=rotations)
        confidence = body.confidence
        if confidence is not None:
            confidence = np.concatenate([confidence, *(seen.astype(confidence.dtype) for seen in measured)], axis=1)
        return replace(
            body,
            bones=(*body.bones, *self.bones),
            rotations=np.concatenate([rotations, *fingers], axis=1),
            measured=np.concatenate([body.measured, *measured], axis=1),
            confidence=confidence,
        )

    def live(self) -> LiveHands:
        return LiveHands(self)

    def _fingers(self, hand: _Hand, points: np.ndarray, to_rest: np.ndarray) -> np.ndarray:
        """(N, 5, 3, 3, 3) local rotations of every finger's three bones, all fingers at once."""
        count = points.shape[0]

        def rest_directions(start: np.ndarray, end: np.ndarray) -> np.ndarray:
            vector = np.einsum("nij,nfj->nfi", to_rest, points[:, end] - points[:, start])
            return rot.normalize(vector)[0]

        parent_direction = rest_directions(np.full(len(FINGERS), WRIST), JOINTS[:, 0])
        towards = np.broadcast_to(hand.curl_start, parent_direction.shape)
        towards = rot.normalize(towards - rot.dot(towards, parent_direction)[..., None] * parent_direction)[0]
        posed_parent = np.broadcast_to(hand.parent_rest, (count, len(FINGERS), 3, 3))
        turns = []
        for k in range(3):
            direction = rest_directions(JOINTS[:, k], JOINTS[:, k + 1])
            limits = LIMITS_DEG[:, k]
            direction = limit_joint(parent_direction, direction, towards, (limits[:, 0], limits[:, 1], limits[:, 2]))
            towards = _carry(towards, parent_direction, direction)
            carried = posed_parent @ hand.rest_local[:, k]
            aimed = rot.rotation_between(carried[..., 1], direction) @ carried
            turns.append(np.swapaxes(carried, -1, -2) @ aimed)
            parent_direction, posed_parent = direction, aimed
        return np.stack(turns, axis=2)


class LiveHands:
    """Hands one frame at a time, for live pose: a hand not seen keeps its last good wrist and fingers (rest
    before it is first seen); the One Euro filter keeps its state between frames. Not thread-safe."""

    def __init__(self, solver: HandSolver) -> None:
        self.solver = solver
        smoothing = solver.retargeter.options.smoothing
        self._filters = [
            (OneEuroFilter(smoothing), OneEuroFilter(smoothing)) if smoothing else None for _ in solver.hands
        ]
        self._last: list[tuple[np.ndarray | None, np.ndarray]] = [
            (None, np.tile([1.0, 0.0, 0.0, 0.0], (len(hand.bones), 1))) for hand in solver.hands
        ]

    def push(
        self,
        body: PoseFrames,
        hand_landmarks: np.ndarray,
        hand_present: np.ndarray,
        size: tuple[float, float],
        time_s: float,
    ) -> PoseFrames:
        """``body`` (one frame, from :meth:`LiveRetargeter.push`) with the wrists and fingers of one frame's
        ``hand_landmarks`` (2, 21, 3) and ``hand_present`` (2,)."""
        rotations = body.rotations.copy()
        fingers, measured = [], []
        measures = self.solver.measure(body.rotations, hand_landmarks[None], np.asarray(hand_present)[None], size)
        for k, (hand, (valid, wrist, quats)) in enumerate(zip(self.solver.hands, measures, strict=True)):
            if valid[0]:
                last_wrist, last_fingers = self._last[k]
                wrist = make_continuous(wrist, last_wrist)[0]
                quats = make_continuous(quats, last_fingers)[0]
                filters = self._filters[k]
                if filters is not None:
                    wrist_filter, finger_filter = filters
                    wrist = rot.normalize(wrist_filter(wrist, time_s))[0]
                    quats = rot.normalize(finger_filter(quats, time_s))[0]
                self._last[k] = (wrist, quats)
            held_wrist, held_fingers = self._last[k]
            if held_wrist is not None:
                rotations[0, hand.slot] = held_wrist
            fingers.append(held_fingers[None].copy())
            measured.append(np.repeat(valid[:, None], held_fingers.shape[0], axis=1))
        return self.solver._with_fingers(body, rotations, fingers, measured)


def _fill(quats: np.ndarray, valid: np.ndarray, max_gap: int) -> np.ndarray:
    """(N, K, 4) quaternions with the frames not ``valid`` filled: slerped across gaps up to ``max_gap`` frames,
    else the nearest earlier good value (the first good one before any); rest (identity) if none is good."""
    if valid.all():
        return quats
    out = quats.copy()
    if not valid.any():
        out[:] = (1.0, 0.0, 0.0, 0.0)
        return out
    count = len(valid)
    index = np.arange(count)
    before = np.maximum.accumulate(np.where(valid, index, -1))
    after = np.minimum.accumulate(np.where(valid, index, count)[::-1])[::-1]
    for frame in np.flatnonzero(~valid):
        start, end = before[frame], after[frame]
        if start >= 0 and end < count and end - start - 1 <= max_gap:
            out[frame] = rot.slerp(quats[start], quats[end], np.full(quats.shape[1], (frame - start) / (end - start)))
        else:
            out[frame] = quats[start if start >= 0 else end]
    return out
