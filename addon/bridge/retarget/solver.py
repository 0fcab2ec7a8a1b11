"""The solve: MediaPipe landmarks to pose-bone rotations and a root location, aware of the rig's rest pose.

How (see ``RETARGETING.md`` in the team guide):

1. Landmarks go from MediaPipe's world frame to Blender's (:mod:`.frames`), then to the armature's own axes
   (the quarter turns that line the rig's rest torso up with Z and its shoulders with X, so a Y-up FBX import
   works like a Z-up rig).
2. Directions, not positions: each driven bone aims along a landmark direction (its *primary*, e.g. shoulder
   to elbow). Where that landmark sits on the rig at rest comes from the rig itself (:func:`rest_landmarks`), so
   rolls, tails that do not point at the child, A- or T-poses and different proportions do not matter.
3. Parent first: with the parent's posed rotation known, the bone's rest frame is carried along and turned by
   the smallest rotation (the swing) that takes its rest primary onto the landmark direction.
4. Twist comes from a second cue where one exists: the elbow or knee plane for the upper arm, forearm, thigh
   and shin; the knuckles for the hand; the heel for the foot; the hips, shoulders and ears for the hips, chest
   and head. A cue that is unseen or degenerate (a straight arm) fades out and the twist stays at rest.
5. The spine and neck chains share the chest's (head's) rotation relative to the hips (chest) in equal steps.
6. Confidence: a bone whose landmarks were not seen (visibility below ``min_visibility``, or no person in the
   frame) gets no rotation from them: in a clip it is interpolated across gaps up to ``max_gap_frames`` and held
   across longer ones (frames before the first sighting take the first one), settling towards rest once unseen
   for 2 s (:mod:`.confidence`); live, it holds its last value. A bone never seen stays at rest.
7. Smoothing, on each bone's local quaternion (signs made continuous first) and on the root location: clips
   (bakes) with the zero-phase filter of :mod:`.offline_filter` (no lag), live frames with the One Euro filter.
8. Root: orientation is the hips bone's. Location, scaled by rig leg length / person leg length: in clips,
   where one static camera sees the hips in three axes (:mod:`.root_motion`: sideways and depth from the torso's
   size in the image), along the floor (:mod:`.feet`: fitted to the foot contacts), plus the height of a jump;
   then raised or lowered so that the lowest point of the feet rests on the rig's ground (its feet's height at
   rest) except in the air; then shifted so that a planted foot stays where it landed. Live: sideways only,
   feet on the ground.

All of it is numpy on whatever thread calls it.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import confidence, feet, root_motion
from . import rotations as rot
from .bone_maps import BoneMap, BoneMapError
from .filters import OneEuroFilter, OneEuroParams, make_continuous
from .frames import LANDMARK, mediapipe_to_blender
from .offline_filter import zero_phase
from .rig_data import RigData

SIDE_WORDS = {"L": "left", "R": "right"}
CUE_FADE = (0.10, 0.35)
"""A twist cue's strength (the sine of the angle it makes with the primary, or of the elbow/knee bend) below the
first value gives no twist, above the second full twist; smooth in between (about 6 to 20 degrees)."""
REST_HINGE_MIN_SIN = 0.05
"""A rest elbow or knee bent less than this (about 3 degrees) is treated as straight: its hinge is then taken
as anatomical (elbows fold forward, knees backward)."""
LEG_HISTORY = 90
"""Live: how many recent leg-length measurements the person's leg length is the median of."""


@dataclass(frozen=True)
class SolveOptions:
    min_visibility: float = 0.5
    """0..1: landmarks MediaPipe is less sure than this are treated as unseen."""
    max_gap_frames: int = 12
    """Clips: unseen stretches up to this many frames are interpolated; longer ones hold the last good value."""
    root_motion: bool = True
    """Move the root sideways with the person's hips in the image (needs image landmarks)."""
    keep_on_ground: bool = True
    """Raise or lower the root so that the lowest foot point rests on the rig's ground."""
    root_depth: bool = True
    """Clips: move the root towards and away from the camera too (depth from the person's size in the image)."""
    root_vertical: bool = True
    """Clips: lift the root when both feet leave the floor (jumps)."""
    lock_feet: bool = True
    """Clips: keep a planted foot in place (the root is shifted along the floor to hold it)."""
    fit_floor: bool = True
    """Clips: fit the floor to the foot contacts (a tilted camera, a slope); off: level with the camera."""
    smoothing: OneEuroParams | None = field(default_factory=OneEuroParams)
    """None: no smoothing. Clips use these settings zero-phase (:mod:`.offline_filter`), live frames causally."""


@dataclass(frozen=True)
class PoseFrames:
    """The solved pose of N frames.

    - ``rotations`` (N, B, 4): each driven bone's pose quaternion (``PoseBone.rotation_quaternion``, w x y z,
      relative to its rest pose and parent), signs continuous along the frames;
    - ``root_location`` (N, 3): the root bone's pose location (``PoseBone.location``: its rest axes, rig units);
    - ``measured`` (N, B): True where the bone's rotation came from landmarks seen in that frame;
    - ``contacts`` (N, 2): clips, the left and right foot planted (and locked); None live;
    - ``confidence`` (N, B): clips, how sure the solve is of each bone in each frame; None live.
    """

    bones: tuple[str, ...]
    rotations: np.ndarray
    root_bone: str
    root_location: np.ndarray
    measured: np.ndarray
    contacts: np.ndarray | None = None
    confidence: np.ndarray | None = None
    """(N, B) clips: each bone's confidence per frame (:mod:`.confidence`); None live."""
    shot_starts: tuple[int, ...] = ()
    """Clips: the frames that begin a shot after a cut."""

    def __len__(self) -> int:
        return int(self.rotations.shape[0])


# -- vector cues ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Direction:
    """mean(``to``) - mean(``start``): a direction between landmarks (or their midpoints)."""

    start: tuple[str, ...]
    to: tuple[str, ...]

    @property
    def landmarks(self) -> tuple[str, ...]:
        return self.start + self.to

    def evaluate(self, points: dict[str, np.ndarray]) -> np.ndarray:
        return _mean(points, self.to) - _mean(points, self.start)


def _mean(points: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    total = points[names[0]]
    for name in names[1:]:
        total = total + points[name]
    return total / len(names) if len(names) > 1 else total


def _all_seen(ok: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    seen = ok[names[0]]
    for name in names[1:]:
        seen = seen & ok[name]
    return seen


@dataclass(frozen=True)
class _Hinge:
    """The normal of the plane through a joint chain ``a`` - ``b`` - ``c`` (an elbow or knee): unit(b - a) x
    unit(c - b), whose length is the sine of the bend."""

    a: str
    b: str
    c: str

    @property
    def landmarks(self) -> tuple[str, ...]:
        return (self.a, self.b, self.c)

    def evaluate(self, points: dict[str, np.ndarray]) -> np.ndarray:
        upper = rot.normalize(points[self.b] - points[self.a])[0]
        lower = rot.normalize(points[self.c] - points[self.b])[0]
        return rot.cross(upper, lower)


_Vector = _Direction | _Hinge
_Fill = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""``fill(slot, rotations (N, 3, 3), valid (N,)) -> rotations``: the local rotations a bone gets in the frames it
was not seen in (``valid`` False)."""


@dataclass
class _Slot:
    """One driven bone: ``parent`` is the slot of the driven bone it hangs from (-1: the root)."""

    bone: str
    parent: int
    rest: np.ndarray
    """(3, 3) rest rotation, armature space."""
    rest_local: np.ndarray
    """(3, 3) rest rotation relative to the parent slot's rest rotation."""
    head: np.ndarray
    """(3,) rest head, armature space."""


@dataclass
class _Step:
    """Aim one bone (and share its rotation along a chain of intermediate slots before it)."""

    slot: int
    chain: tuple[int, ...]
    primary: _Vector
    primary_rest: np.ndarray
    """Unit primary vector at rest, in the bone's local axes."""
    cue: _Vector | None
    cue_rest: np.ndarray | None
    """Unit cue at rest, in the bone's local axes."""
    parent: int = -1
    """The slot the step (its chain's first link) hangs from; -1: the root."""
    carry_rest: np.ndarray = field(default_factory=lambda: np.eye(3))
    """(3, 3) the bone's rest rotation relative to ``parent``'s (through the chain's links at rest)."""


@dataclass
class _Level:
    """Steps whose parents are all solved by earlier levels: aimed together, as one batch."""

    steps: list[_Step]
    carry_rest: np.ndarray
    """(K, 3, 3) each step's ``carry_rest``."""
    primary_rest: np.ndarray
    """(K, 3)."""
    cue_rest: np.ndarray
    """(K, 3); zero where a step has no cue."""


def _smoothstep(values: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((values - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _nearest_axes(matrix: np.ndarray) -> np.ndarray:
    """The signed permutation matrix (a rotation by quarter turns) nearest to the rotation ``matrix``."""
    out = np.zeros((3, 3))
    used_rows: set[int] = set()
    for col in np.argsort(-np.max(np.abs(matrix), axis=0)):
        order = [row for row in np.argsort(-np.abs(matrix[:, col])) if row not in used_rows]
        row = order[0]
        out[row, col] = np.sign(matrix[row, col]) or 1.0
        used_rows.add(row)
    if np.linalg.det(out) < 0:  # a mirrored rig frame: keep a proper rotation by flipping the weakest axis
        col = int(np.argmin(np.max(np.abs(matrix), axis=0)))
        out[:, col] *= -1.0
    return out


def rest_landmarks(rig: RigData, bone_map: BoneMap) -> dict[str, np.ndarray]:
    """Where each landmark the solve uses sits on ``rig`` at rest (armature space, rig units).

    Joints are mapped bones' heads (an elbow is the forearm's head; without a forearm, the upper arm's tail);
    the knuckles, heel and toe tip come from the map's anchors, else from tails (the heel then lies under the
    ankle at the height of the toe tip). The face has no bones to read, so ears and eyes are placed on the head
    bone along the armature's axes: a neutral head looks straight ahead, eyes level with ears.
    """
    bones = bone_map.bones

    def at(role: str, point: str = "head") -> np.ndarray | None:
        bone = bones.get(role)
        return rig.point(bone, point) if bone is not None and bone in rig else None

    def anchor(name: str) -> np.ndarray | None:
        spec = bone_map.anchors.get(name)
        return rig.point(*spec) if spec is not None and spec[0] in rig else None

    def first(*candidates: np.ndarray | None) -> np.ndarray | None:
        return next((c for c in candidates if c is not None), None)

    points: dict[str, np.ndarray | None] = {}
    for side, word in SIDE_WORDS.items():
        points[f"{word}_shoulder"] = at(f"upper_arm.{side}")
        points[f"{word}_elbow"] = first(at(f"forearm.{side}"), at(f"upper_arm.{side}", "tail"))
        points[f"{word}_wrist"] = first(at(f"hand.{side}"), at(f"forearm.{side}", "tail"))
        hand_tip = at(f"hand.{side}", "tail")
        points[f"{word}_index"] = first(anchor(f"index.{side}"), hand_tip)
        points[f"{word}_pinky"] = first(anchor(f"pinky.{side}"), hand_tip)
        points[f"{word}_hip"] = at(f"thigh.{side}")
        points[f"{word}_knee"] = first(at(f"shin.{side}"), at(f"thigh.{side}", "tail"))
        points[f"{word}_ankle"] = first(at(f"foot.{side}"), at(f"shin.{side}", "tail"))
        points[f"{word}_foot_index"] = first(
            anchor(f"toe_tip.{side}"), at(f"toe.{side}", "tail"), at(f"foot.{side}", "tail")
        )
    known = {name: p for name, p in points.items() if p is not None}
    axes = _armature_axes(known)
    lateral, forward, up = axes[:, 0], -axes[:, 1], axes[:, 2]
    for side, word in SIDE_WORDS.items():
        heel = anchor(f"heel.{side}")
        ankle, toe = known.get(f"{word}_ankle"), known.get(f"{word}_foot_index")
        if heel is None and ankle is not None and toe is not None:
            heel = ankle - up * float(np.dot(up, ankle - toe))
        if heel is not None:
            known[f"{word}_heel"] = heel
    head = bones.get("head")
    if head is not None and head in rig and "left_shoulder" in known and "right_shoulder" in known:
        centre = rig.point(head, "mid")
        size = float(np.linalg.norm(known["left_shoulder"] - known["right_shoulder"]))
        for sign, word in ((1.0, "left"), (-1.0, "right")):
            known[f"{word}_ear"] = centre + sign * lateral * 0.2 * size
            known[f"{word}_eye"] = centre + forward * 0.25 * size + sign * lateral * 0.09 * size
        known["nose"] = centre + forward * 0.3 * size
    return known


def _rest_axes(points: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(up, lateral, forward) unit axes of the rig's rest torso: hips to shoulders, right to left, and the
    direction the character faces."""
    left_shoulder, right_shoulder = points.get("left_shoulder"), points.get("right_shoulder")
    left_hip, right_hip = points.get("left_hip"), points.get("right_hip")
    up = np.array([0.0, 0.0, 1.0])
    if left_shoulder is not None and right_shoulder is not None:
        lateral = left_shoulder - right_shoulder
        if left_hip is not None and right_hip is not None:
            up = rot.normalize(
                np.mean([left_shoulder, right_shoulder], axis=0) - np.mean([left_hip, right_hip], axis=0)
            )[0]
    elif left_hip is not None and right_hip is not None:
        lateral = left_hip - right_hip
    else:
        lateral = np.array([1.0, 0.0, 0.0])
    lateral = rot.normalize(lateral - np.dot(lateral, up) * up)[0]
    forward = np.cross(lateral, up)
    return up, lateral, forward


def _armature_axes(points: dict[str, np.ndarray]) -> np.ndarray:
    """The rotation (quarter turns) taking Blender's canonical person (Z up, left +X, facing -Y) onto the rig's
    rest torso: its columns are the armature axes nearest the rig's left, back and up."""
    up, lateral, forward = _rest_axes(points)
    return _nearest_axes(np.stack([lateral, -forward, up], axis=1))


class Retargeter:
    """Everything about one rig and map that does not change between frames; solves clips and live frames.

    Raises BoneMapError if ``bone_map`` names bones ``rig`` lacks, or drives a bone that lies between another
    driven bone and the one that bone is posed from (see :meth:`_check_hierarchy`).
    """

    def __init__(self, rig: RigData, bone_map: BoneMap, options: SolveOptions | None = None) -> None:
        missing = bone_map.missing_in(rig)
        if missing:
            raise BoneMapError(f"bone map '{bone_map.name}' names bones that rig '{rig.name}' lacks: {missing}")
        self.rig = rig
        self.bone_map = bone_map
        self.options = options or SolveOptions()
        self.rest_points = rest_landmarks(rig, bone_map)
        self.to_armature = _armature_axes(self.rest_points)
        self.up = self.to_armature[:, 2]
        """The armature axis pointing up: the ground is perpendicular to it."""
        self.slots: list[_Slot] = []
        self.steps: list[_Step] = []
        self._plan()
        self._check_hierarchy()
        self.levels = self._levels()
        self.bones = tuple(slot.bone for slot in self.slots)
        self.root_bone = self.slots[0].bone
        self.rig_leg_length = self._rest_leg_length()
        self._feet = self._foot_points()
        self.ground = min((float(np.dot(self.up, p)) for _, p in self._feet), default=0.0)

    # -- planning ------------------------------------------------------------------------------------------

    def _add_slot(self, bone: str, parent: int) -> int:
        rest = self.rig.rotation(bone)
        parent_rest = self.slots[parent].rest if parent >= 0 else np.eye(3)
        self.slots.append(_Slot(bone, parent, rest, parent_rest.T @ rest, self.rig.head(bone)))
        return len(self.slots) - 1

    def _add_step(
        self, role: str, parent: int, primary: _Vector, cue: _Vector | None, chain_role: str | None = None
    ) -> int:
        """Add the slots (chain first) and the step for ``role``; return its slot, or ``parent`` when the map
        lacks the role or the rig lacks the primary's rest positions (without the cue's, the twist stays at
        rest)."""
        bone = self.bone_map.bones.get(role)
        if bone is None or not set(primary.landmarks) <= set(self.rest_points):
            return parent
        if cue is not None and not set(cue.landmarks) <= set(self.rest_points):
            cue = None
        chain = []
        for link in self.bone_map.chains.get(chain_role, ()) if chain_role else ():
            parent = self._add_slot(link, parent)
            chain.append(parent)
        slot = self._add_slot(bone, parent)
        rest = self.slots[slot].rest
        primary_rest = rot.normalize(primary.evaluate(self.rest_points))[0]
        if np.linalg.norm(primary_rest) < 0.5:
            raise BoneMapError(f"the rest direction of '{bone}' ({role}) is undefined: its landmarks coincide")
        cue_rest = None
        if cue is not None:
            vector = cue.evaluate(self.rest_points)
            if isinstance(cue, _Hinge) and np.linalg.norm(vector) < REST_HINGE_MIN_SIN:
                vector = self._anatomical_hinge(cue)
            along = vector - np.dot(vector, primary_rest) * primary_rest
            if np.linalg.norm(along) > 1e-6:
                cue_rest = rest.T @ rot.normalize(vector)[0]
            else:
                cue = None
        first = chain[0] if chain else slot
        carry_rest = self.slots[first].rest_local
        for link_slot in (*chain[1:], slot) if chain else ():
            carry_rest = carry_rest @ self.slots[link_slot].rest_local
        step = _Step(slot, tuple(chain), primary, rest.T @ primary_rest, cue, cue_rest)
        step.parent, step.carry_rest = self.slots[first].parent, carry_rest
        self.steps.append(step)
        return slot

    def _check_hierarchy(self) -> None:
        """Each driven bone is posed from the driven bone it hangs from (its slot's parent) as if the bones in
        between stayed at rest. A driven bone in between would turn it a second time, in Blender but not in the
        solve: refuse such a map, naming both bones. (A bone that follows its parent through constraints, as a
        generated Rigify rig's controls do, has no such bone in its parent chain and passes.)"""
        driven = {slot.bone for slot in self.slots}
        roles = {bone: role for role, bone in self.bone_map.bones.items()}
        roles |= {bone: f"{chain} chain" for chain, links in self.bone_map.chains.items() for bone in links}
        for slot in self.slots:
            parent = self.slots[slot.parent].bone if slot.parent >= 0 else None
            above_parent = set(self.rig.ancestors(parent)) if parent is not None else set()
            for bone in self.rig.ancestors(slot.bone):
                if bone == parent:
                    break
                if bone in driven and bone not in above_parent:
                    if parent is None:
                        follows, fix = "the armature", f"leave '{bone}' unmapped"
                    else:
                        follows = f"'{parent}' ({roles[parent]})"
                        fix = f"map '{bone}' as the {roles[parent]} instead of '{parent}', or leave it unmapped"
                    raise BoneMapError(
                        f"bone map '{self.bone_map.name}' cannot drive rig '{self.rig.name}': '{bone}' "
                        f"({roles[bone]}) is driven and lies between '{slot.bone}' ({roles[slot.bone]}) and "
                        f"{follows}, the bone the solve poses it from, so '{slot.bone}' would also take the turn "
                        f"of '{bone}'. Fix the map: {fix} (the chest is the bone both upper arms hang from)"
                    )

    def _levels(self) -> list[_Level]:
        """The steps grouped by depth (the root's step first), so that a level only needs earlier ones."""
        depth: dict[int, int] = {-1: -1}
        for step in self.steps:
            depth[step.slot] = depth[step.parent] + 1
        levels = []
        for level in sorted({depth[step.slot] for step in self.steps}):
            steps = [step for step in self.steps if depth[step.slot] == level]
            cues = [step.cue_rest if step.cue_rest is not None else np.zeros(3) for step in steps]
            levels.append(
                _Level(
                    steps,
                    np.array([step.carry_rest for step in steps]),
                    np.array([step.primary_rest for step in steps]),
                    np.array(cues),
                )
            )
        return levels

    def _anatomical_hinge(self, hinge: _Hinge) -> np.ndarray:
        """The hinge normal of a straight rest limb: elbows fold the forearm forward, knees the shin backward."""
        forward = -self.to_armature[:, 1]
        limb = rot.normalize(self.rest_points[hinge.b] - self.rest_points[hinge.a])[0]
        fold = forward if "elbow" in hinge.b else -forward
        return rot.normalize(np.cross(limb, fold))[0]

    def _plan(self) -> None:
        hips = self._add_step(
            "hips",
            -1,
            _Direction(("right_hip",), ("left_hip",)),
            _Direction(("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")),
        )
        if hips == -1:
            raise BoneMapError(
                f"bone map '{self.bone_map.name}' cannot drive the hips of rig '{self.rig.name}': map both thighs "
                "and upper arms (the hips' rest frame is read from them)"
            )
        chest = self._add_step(
            "chest",
            hips,
            _Direction(("right_shoulder",), ("left_shoulder",)),
            _Direction(("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")),
            chain_role="spine",
        )
        self._add_step(
            "head",
            chest,
            _Direction(("left_ear", "right_ear"), ("left_eye", "right_eye")),
            _Direction(("right_ear",), ("left_ear",)),
            chain_role="neck",
        )
        for side, word in SIDE_WORDS.items():
            elbow = _Hinge(f"{word}_shoulder", f"{word}_elbow", f"{word}_wrist")
            parent = self._add_step(
                f"upper_arm.{side}", chest, _Direction((f"{word}_shoulder",), (f"{word}_elbow",)), elbow
            )
            parent = self._add_step(
                f"forearm.{side}", parent, _Direction((f"{word}_elbow",), (f"{word}_wrist",)), elbow
            )
            self._add_step(
                f"hand.{side}",
                parent,
                _Direction((f"{word}_wrist",), (f"{word}_index", f"{word}_pinky")),
                _Direction((f"{word}_pinky",), (f"{word}_index",)),
            )
            knee = _Hinge(f"{word}_hip", f"{word}_knee", f"{word}_ankle")
            parent = self._add_step(f"thigh.{side}", hips, _Direction((f"{word}_hip",), (f"{word}_knee",)), knee)
            parent = self._add_step(f"shin.{side}", parent, _Direction((f"{word}_knee",), (f"{word}_ankle",)), knee)
            self._add_step(
                f"foot.{side}",
                parent,
                _Direction((f"{word}_ankle",), (f"{word}_foot_index",)),
                _Direction((f"{word}_heel",), (f"{word}_ankle",)),
            )

    def _rest_leg_length(self) -> float:
        lengths = []
        for word in SIDE_WORDS.values():
            names = (f"{word}_hip", f"{word}_knee", f"{word}_ankle")
            if all(n in self.rest_points for n in names):
                hip, knee, ankle = (self.rest_points[n] for n in names)
                lengths.append(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))
        return float(np.mean(lengths)) if lengths else 0.0

    def _foot_points(self) -> list[tuple[int, np.ndarray]]:
        """(slot, rest position) of each foot's ankle, heel and toe tip, for keeping feet on the ground."""
        points = []
        for side, word in SIDE_WORDS.items():
            bone = self.bone_map.bones.get(f"foot.{side}")
            if bone is None or bone not in self.bones:
                continue
            slot = self.bones.index(bone)
            for name in (f"{word}_ankle", f"{word}_heel", f"{word}_foot_index"):
                if name in self.rest_points:
                    points.append((slot, self.rest_points[name]))
        return points

    # -- solving ---------------------------------------------------------------------------------------------

    def observe(self, world: np.ndarray, visibility: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(points (N, 33, 3) in armature axes, metres, hip-centred; seen (N, 33) bool) from MediaPipe arrays."""
        world = np.asarray(world, dtype=np.float64).reshape(-1, 33, 3)
        visibility = np.nan_to_num(np.asarray(visibility, dtype=np.float64).reshape(-1, 33), nan=0.0)
        present = np.asarray(present, dtype=bool).reshape(-1)
        points = mediapipe_to_blender(world) @ self.to_armature.T
        finite = np.all(np.isfinite(points), axis=-1)
        seen = finite & (visibility >= self.options.min_visibility) & present[:, None]
        return np.where(finite[..., None], points, 0.0), seen

    def _solve_rotations(
        self, points: np.ndarray, seen: np.ndarray, fill: _Fill
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(local rotations (N, B, 3, 3), world rotations (N, B, 3, 3), measured (N, B)), parent first: each level
        of steps is aimed as one batch."""
        count = points.shape[0]
        named = {name: points[:, index] for name, index in LANDMARK.items()}
        ok = {name: seen[:, index] for name, index in LANDMARK.items()}
        world = np.empty((count, len(self.slots), 3, 3))
        local = np.empty((count, len(self.slots), 3, 3))
        measured = np.zeros((count, len(self.slots)), dtype=bool)
        identity = np.broadcast_to(np.eye(3), (count, 3, 3))
        for level in self.levels:
            parents = np.stack([world[:, step.parent] if step.parent >= 0 else identity for step in level.steps])
            carry = parents @ level.carry_rest[:, None]
            targets, valid = self._aim(level, carry, named, ok)
            turns = np.swapaxes(carry, -1, -2) @ targets
            for k, step in enumerate(level.steps):
                turn = fill(step.slot, turns[k], valid[k])
                world[:, step.slot] = carry[k] @ turn
                measured[:, step.slot] = valid[k]
                if step.chain:
                    self._share_along_chain(step, parents[k], carry[k], turn, valid[k], world, local, measured)
                else:
                    local[:, step.slot] = turn
        return local, world, measured

    def _share_along_chain(
        self,
        step: _Step,
        parent_world: np.ndarray,
        carry: np.ndarray,
        turn: np.ndarray,
        valid: np.ndarray,
        world: np.ndarray,
        local: np.ndarray,
        measured: np.ndarray,
    ) -> None:
        """Spread a chain end's ``turn`` (relative to its rest, carried) over the chain: link k of n takes
        (k + 1) / (n + 1) of it, about the same axis."""
        links = (*step.chain, step.slot)
        quats = np.broadcast_to(rot.quat_from_matrix(turn), (len(links), *turn.shape[:-2], 4))
        fractions = np.arange(1, len(links) + 1) / len(links)
        shares = rot.matrix_from_quat(rot.fractional_rotation(quats, fractions[:, None]))
        carried = parent_world
        above = parent_world
        for k, link in enumerate(links):
            carried = carried @ self.slots[link].rest_local
            link_world = carry @ shares[k] @ np.swapaxes(carry, -1, -2) @ carried
            world[:, link] = link_world
            local[:, link] = np.swapaxes(above @ self.slots[link].rest_local, -1, -2) @ link_world
            measured[:, link] = valid
            above = link_world

    def _aim(
        self, level: _Level, carry: np.ndarray, named: dict[str, np.ndarray], ok: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(world rotations (K, N, 3, 3), valid (K, N)) aiming the level's bones; invalid frames keep ``carry``."""
        steps = level.steps
        direction, length = rot.normalize(np.stack([step.primary.evaluate(named) for step in steps]))
        valid = np.stack([_all_seen(ok, step.primary.landmarks) for step in steps]) & (length > 1e-6)
        carried = (carry @ level.primary_rest[:, None, :, None])[..., 0]
        target = rot.rotation_between(carried, direction) @ carry
        cues, cue_seen = [], []
        for step in steps:
            if step.cue is None or step.cue_rest is None:
                cues.append(np.zeros_like(direction[0]))
                cue_seen.append(np.zeros(direction.shape[1], dtype=bool))
                continue
            cue = step.cue.evaluate(named)
            cues.append(rot.normalize(cue)[0] if isinstance(step.cue, _Direction) else cue)
            cue_seen.append(_all_seen(ok, step.cue.landmarks))
        current = (target @ level.cue_rest[:, None, :, None])[..., 0]
        angle, strength = rot.signed_angle_about(current, np.stack(cues), direction)
        weight = _smoothstep(strength, *CUE_FADE) * np.stack(cue_seen)
        target = rot.axis_angle_matrix(direction, angle * weight) @ target
        if valid.all():
            return target, valid
        return np.where(valid[..., None, None], target, carry), valid

    def forward_kinematics(self, local: np.ndarray, root_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(world rotations (N, B, 3, 3), heads (N, B, 3)) of the driven bones posed with ``local`` quaternions,
        the root's head moved by ``root_offset`` (N, 3) (armature space)."""
        count = local.shape[0]
        world = np.zeros((count, len(self.slots), 3, 3))
        heads = np.zeros((count, len(self.slots), 3))
        turns = rot.matrix_from_quat(local)
        for index, slot in enumerate(self.slots):
            if slot.parent < 0:
                world[:, index] = slot.rest_local @ turns[:, index]
                heads[:, index] = slot.head + root_offset
                continue
            parent = self.slots[slot.parent]
            world[:, index] = world[:, slot.parent] @ slot.rest_local @ turns[:, index]
            offset = parent.rest.T @ (slot.head - parent.head)
            heads[:, index] = heads[:, slot.parent] + world[:, slot.parent] @ offset
        return world, heads

    def _ground_offsets(self, local: np.ndarray) -> np.ndarray:
        """(N,) how far to move the root along ``up`` so that the lowest foot point rests on the ground."""
        if not self._feet or not self.options.keep_on_ground:
            return np.zeros(local.shape[0])
        world, heads = self.forward_kinematics(local, np.zeros((local.shape[0], 3)))
        heights = []
        for slot, rest_point in self._feet:
            offset = self.slots[slot].rest.T @ (rest_point - self.slots[slot].head)
            heights.append((heads[:, slot] + world[:, slot] @ offset) @ self.up)
        return self.ground - np.min(heights, axis=0)

    def _horizontal(
        self, points: np.ndarray, seen: np.ndarray, image: np.ndarray | None, size: tuple[float, float] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hip centre in pixels (N, 2), metres per pixel (N,), valid (N,)) from the image landmarks."""
        count = points.shape[0]
        if image is None or size is None or not self.options.root_motion:
            return np.zeros((count, 2)), np.zeros(count), np.zeros(count, dtype=bool)
        pixels = np.asarray(image, dtype=np.float64).reshape(-1, 33, 3)[..., :2] * np.asarray(size, dtype=np.float64)
        hips = [LANDMARK["left_hip"], LANDMARK["right_hip"]]
        shoulders = [LANDMARK["left_shoulder"], LANDMARK["right_shoulder"]]
        valid = np.all(seen[:, hips + shoulders], axis=1)
        hip_px, shoulder_px = pixels[:, hips].mean(axis=1), pixels[:, shoulders].mean(axis=1)
        torso_px = np.linalg.norm(shoulder_px - hip_px, axis=-1)
        torso_m = np.linalg.norm(points[:, shoulders].mean(axis=1) - points[:, hips].mean(axis=1), axis=-1)
        valid &= np.isfinite(torso_px) & (torso_px > 1.0)
        metres_per_pixel = np.where(valid, torso_m / np.where(valid, torso_px, 1.0), 0.0)
        return np.nan_to_num(hip_px), metres_per_pixel, valid

    def person_leg_lengths(self, points: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """(N, 2) left and right hip-knee-ankle lengths in metres; NaN where a leg was not seen."""
        out = np.full((points.shape[0], 2), np.nan)
        for column, word in enumerate(SIDE_WORDS.values()):
            index = [LANDMARK[f"{word}_{joint}"] for joint in ("hip", "knee", "ankle")]
            length = np.linalg.norm(points[:, index[1]] - points[:, index[0]], axis=-1)
            length += np.linalg.norm(points[:, index[2]] - points[:, index[1]], axis=-1)
            out[:, column] = np.where(np.all(seen[:, index], axis=1), length, np.nan)
        return out

    def _scale(self, leg_lengths: np.ndarray) -> float:
        """Rig units per person metre: rig leg length / the person's (median of what was measured)."""
        measured = leg_lengths[np.isfinite(leg_lengths)]
        if not measured.size or self.rig_leg_length <= 0.0:
            return 1.0
        return self.rig_leg_length / float(np.median(measured))

    def _root_location(self, offset: np.ndarray) -> np.ndarray:
        """The root bone's pose location for armature-space head offsets (N, 3)."""
        return offset @ self.slots[0].rest

    # -- clips ---------------------------------------------------------------------------------------------

    def solve_clip(
        self,
        world: np.ndarray,
        visibility: np.ndarray,
        present: np.ndarray,
        fps: float,
        image: np.ndarray | None = None,
        image_size: tuple[float, float] | None = None,
        shot_starts: np.ndarray | list[int] | None = None,
    ) -> PoseFrames:
        """Solve a whole clip: ``world`` (N, 33, 3) MediaPipe world landmarks (metres), ``visibility`` (N, 33),
        ``present`` (N,), the clip's ``fps``, and optionally ``image`` (N, 33, 3) image landmarks (0..1) of frames
        ``image_size`` (width, height) pixels for the root's sideways motion.

        ``shot_starts``: frames that begin a shot (after a cut). Nothing crosses a cut: gaps are filled and
        smoothing runs within each shot, a shot's first pose is its own, and the root goes on from where it was
        (its sideways motion is measured from the shot's own first sighting)."""
        if not fps > 0:
            raise ValueError(f"fps must be above 0, got {fps}")
        points, seen = self.observe(world, visibility, present)
        count = points.shape[0]
        shots = shot_bounds(shot_starts, count)
        gap = self.options.max_gap_frames

        def settled(turns: np.ndarray, valid: np.ndarray, max_gap: int) -> np.ndarray:
            return _fill_rotations(turns, valid, max_gap, fps)

        local, _world, measured = self._solve_rotations(
            points, seen, lambda _slot, turns, valid: per_shot(shots, settled, turns, valid, gap)
        )
        local = make_continuous(rot.quat_from_matrix(local))
        if self.options.smoothing is not None and count:
            local = rot.normalize(zero_phase(local, fps, self.options.smoothing, shots[:-1]))[0]
        scale = self._scale(self.person_leg_lengths(points, seen))
        offset, contacts = self._clip_root(world, points, seen, local, fps, image, image_size, shots, scale)
        sureness = confidence.bone_confidence(visibility, present, self._bone_landmarks())
        return PoseFrames(
            self.bones,
            local,
            self.root_bone,
            self._root_location(offset),
            measured,
            contacts,
            sureness,
            tuple(shots[1:-1]),
        )

    def _bone_landmarks(self) -> list[list[int]]:
        """Per driven bone, the landmarks that aim it (a chain link: those of the bone at its end)."""
        out: list[list[int]] = [[] for _ in self.slots]
        for step in self.steps:
            indices = [LANDMARK[name] for name in step.primary.landmarks]
            for slot in (*step.chain, step.slot):
                out[slot] = indices
        return out

    def _clip_root(
        self,
        world: np.ndarray,
        points: np.ndarray,
        seen: np.ndarray,
        local: np.ndarray,
        fps: float,
        image: np.ndarray | None,
        image_size: tuple[float, float] | None,
        shots: list[int],
        scale: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(root head offsets (N, 3) armature space, rig units; foot contacts (N, 2)): where the camera sees the
        hips (:mod:`.root_motion`), along the floor and, for jumps, above it; the feet on the rig's ground; planted
        feet kept in place (:mod:`.feet`). Each shot on its own, the root going on from where it was."""
        count = points.shape[0]
        options = self.options
        offset = np.zeros((count, 3))
        vertical = np.zeros(count)
        contacts = np.zeros((count, 2), dtype=bool)
        wanted = options.root_motion or options.root_vertical or options.lock_feet
        if image is not None and image_size is not None and wanted and count:
            hips_camera, valid, torso_px = root_motion.hip_positions(world, image, seen, image_size)
            foot_seen = (
                np.stack([seen[:, feet.FOOT_LANDMARKS[side]].all(axis=1) for side in feet.SIDES], 1) & valid[:, None]
            )
            carried = np.zeros(3)
            for start, end in itertools.pairwise(shots):
                shot_valid = valid[start:end]
                if not shot_valid.any():
                    offset[start:end] = carried
                    continue
                track = np.stack(
                    [_fill_values(hips_camera[start:end, k], shot_valid, options.max_gap_frames) for k in range(3)], 1
                )
                track = root_motion.without_outliers(track)
                depth_seen = np.median(torso_px[start:end][shot_valid]) >= root_motion.MIN_DEPTH_TORSO_PX
                if not (options.root_depth and depth_seen):
                    track = root_motion.at_steady_depth(track)
                track = mediapipe_to_blender(track) @ self.to_armature.T
                body_feet = feet.foot_points(track[:, None] + points[start:end])  # raw: a smoothed hip would slide
                if options.smoothing is not None:
                    track = zero_phase(track, fps, options.smoothing)
                shot_contacts, floor = feet.find_contacts(
                    body_feet, foot_seen[start:end], self.up, fps, options.fit_floor
                )
                moved = track - track[int(np.argmax(shot_valid))]
                moved -= (moved @ floor.up)[:, None] * floor.up
                offset[start:end] = carried + (moved * scale if options.root_motion else 0.0)
                if options.root_vertical and shot_contacts.any():  # no contacts: no floor to jump from
                    lowest = np.min(body_feet @ floor.up, axis=(1, 2)) - floor.height
                    airborne = np.clip(lowest, 0.0, None)
                    airborne[shot_contacts.any(axis=1) | ~foot_seen[start:end].any(axis=1)] = 0.0
                    vertical[start:end] = airborne * scale
                if options.lock_feet:
                    contacts[start:end] = shot_contacts
                carried = offset[end - 1].copy()
        offset += (self._ground_offsets(local) + vertical)[:, None] * self.up
        if contacts.any():
            solved = self._solved_feet(local, offset)
            for start, end in itertools.pairwise(shots):
                offset[start:end] += feet.lock_shift(solved[start:end], contacts[start:end], self.up)
        return offset, contacts

    def _solved_feet(self, local: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """(N, 2, 3): the lowest of each foot's points (left, right) on the posed rig, armature space."""
        world, heads = self.forward_kinematics(local, offset)
        out = np.zeros((local.shape[0], 2, 3))
        for side_index, (side, word) in enumerate(SIDE_WORDS.items()):
            bone = self.bone_map.bones.get(f"foot.{side}")
            if bone is None or bone not in self.bones:
                continue
            slot = self.bones.index(bone)
            candidates = [
                heads[:, slot]
                + world[:, slot] @ (self.slots[slot].rest.T @ (self.rest_points[name] - self.slots[slot].head))
                for name in (f"{word}_ankle", f"{word}_heel", f"{word}_foot_index")
                if name in self.rest_points
            ]
            stacked = np.stack(candidates, axis=1)
            lowest = np.argmin(stacked @ self.up, axis=1)
            out[:, side_index] = stacked[np.arange(len(stacked)), lowest]
        return out

    def live(self) -> LiveRetargeter:
        return LiveRetargeter(self)


def shot_bounds(shot_starts: np.ndarray | list[int] | None, count: int) -> list[int]:
    """[0, the shot starts inside the clip..., count]: shot k spans frames bounds[k] to bounds[k + 1]."""
    inside = {int(s) for s in (shot_starts if shot_starts is not None else ()) if 0 < int(s) < count}
    return sorted({0, count, *inside})


def per_shot(
    shots: list[int], fill: Callable[..., np.ndarray], values: np.ndarray, valid: np.ndarray, gap: int
) -> np.ndarray:
    """``fill(values, valid, gap)`` run on each shot's frames on their own; a shot in which the value is never
    valid (a black frame, a shot without the person) holds what the whole clip gives there."""
    if len(shots) <= 2:
        return fill(values, valid, gap)
    whole = fill(values, valid, gap)
    parts = [
        fill(values[a:b], valid[a:b], gap) if valid[a:b].any() else whole[a:b] for a, b in itertools.pairwise(shots)
    ]
    return np.concatenate(parts)


def _gap_neighbours(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each frame, the index of the last valid frame at or before it (-1: none) and of the first at or after
    it (N: none)."""
    count = valid.shape[0]
    index = np.arange(count)
    before = np.maximum.accumulate(np.where(valid, index, -1)) if count else index
    after = np.minimum.accumulate(np.where(valid, index, count)[::-1])[::-1] if count else index
    return before, after


def _fill_rotations(turns: np.ndarray, valid: np.ndarray, max_gap: int, fps: float | None = None) -> np.ndarray:
    """Unseen frames: slerp across gaps of up to ``max_gap`` frames, else hold the nearest earlier good value (the
    first good one before any), settling towards rest after a while (:mod:`.confidence`; at ``fps`` frames per
    second, none without); identity if none is good."""
    if valid.all():
        return turns
    if not valid.any():
        return np.broadcast_to(np.eye(3), turns.shape).copy()
    quats = make_continuous(rot.quat_from_matrix(turns))
    before, after = _gap_neighbours(valid)
    count = quats.shape[0]
    out = quats.copy()
    missing = ~valid
    bounded = missing & (before >= 0) & (after < count)
    interpolate = bounded & (after - before - 1 <= max_gap)
    hold = missing & ~interpolate
    source = np.where(before >= 0, before, after)
    out[hold] = quats[source[hold]]
    if fps is not None and hold.any():
        out[hold] = confidence.settle(out[hold], np.abs(np.arange(count) - source)[hold], fps)
    if interpolate.any():
        frames = np.flatnonzero(interpolate)
        fraction = (frames - before[frames]) / (after[frames] - before[frames])
        out[frames] = rot.slerp(quats[before[frames]], quats[after[frames]], fraction)
    return rot.matrix_from_quat(out)


def _fill_values(values: np.ndarray, valid: np.ndarray, max_gap: int) -> np.ndarray:
    """:func:`_fill_rotations` for a scalar series, with linear interpolation; zeros if none is good."""
    if not valid.any():
        return np.zeros_like(values)
    before, after = _gap_neighbours(valid)
    count = values.shape[0]
    out = values.copy()
    missing = ~valid
    interpolate = missing & (before >= 0) & (after < count) & (after - before - 1 <= max_gap)
    hold = missing & ~interpolate
    source = np.where(before >= 0, before, after)
    out[hold] = values[source[hold]]
    frames = np.flatnonzero(interpolate)
    if frames.size:
        fraction = (frames - before[frames]) / (after[frames] - before[frames])
        out[frames] = values[before[frames]] * (1 - fraction) + values[after[frames]] * fraction
    return out


class LiveRetargeter:
    """Solves one frame at a time, keeping what a stream needs: the last good rotation of each bone (an unseen
    bone holds it), the filters, the person's leg length so far and where the hips were first seen.

    Not thread-safe: one thread pushes frames.
    """

    def __init__(self, retargeter: Retargeter) -> None:
        self.retargeter = retargeter
        self._last_good = np.tile(np.eye(3), (len(retargeter.slots), 1, 1))
        self._previous: np.ndarray | None = None
        smoothing = retargeter.options.smoothing
        self._rotation_filter = OneEuroFilter(smoothing) if smoothing else None
        self._location_filter = OneEuroFilter(smoothing) if smoothing else None
        self._legs: collections.deque[float] = collections.deque(maxlen=LEG_HISTORY)
        self._reference_px: np.ndarray | None = None
        self._metres_per_pixel: collections.deque[float] = collections.deque(maxlen=LEG_HISTORY)
        self._sideways = 0.0

    def _hold(self, slot: int, turns: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if valid[0]:
            self._last_good[slot] = turns[0]
            return turns
        return self._last_good[slot][None].copy()

    def push(
        self,
        world: np.ndarray,
        visibility: np.ndarray,
        present: bool,
        time_s: float,
        image: np.ndarray | None = None,
        image_size: tuple[float, float] | None = None,
    ) -> PoseFrames:
        """Solve one frame (``world`` (33, 3), ``visibility`` (33,), taken at ``time_s`` seconds); a
        :class:`PoseFrames` of length 1."""
        rt = self.retargeter
        points, seen = rt.observe(world, visibility, np.array([present]))
        turns, _world, measured = rt._solve_rotations(points, seen, self._hold)
        local = make_continuous(rot.quat_from_matrix(turns), self._previous)
        if self._rotation_filter is not None:
            local = rot.normalize(self._rotation_filter(local[0], time_s))[0][None]
        self._previous = local[0]
        legs = rt.person_leg_lengths(points, seen)[0]
        self._legs.extend(float(v) for v in legs[np.isfinite(legs)])
        scale = rt._scale(np.array(self._legs)) if self._legs else 1.0
        hip_px, metres_per_pixel, valid = rt._horizontal(points, seen, image, image_size)
        if valid[0]:
            if self._reference_px is None:
                self._reference_px = hip_px[0]
            self._metres_per_pixel.append(float(metres_per_pixel[0]))
            mpp = float(np.median(self._metres_per_pixel))
            self._sideways = (hip_px[0, 0] - self._reference_px[0]) * mpp * scale
        sideways = np.array([[self._sideways, 0.0, 0.0]])
        if self._location_filter is not None:
            sideways = self._location_filter(sideways, time_s)
        offset = sideways @ rt.to_armature.T + rt._ground_offsets(local)[:, None] * rt.up
        return PoseFrames(rt.bones, local, rt.root_bone, rt._root_location(offset), measured)
