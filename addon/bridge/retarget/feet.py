"""Feet on the floor: when each foot is planted, where the floor is, and keeping a planted foot in place.

**Contacts.** A foot is planted in a frame when both hold (person metres, from the landmarks placed where the
camera sees the person, :mod:`.root_motion`):

- its lowest point (ankle, heel or toe tip) is within :data:`CONTACT_HEIGHT_M` of the floor, and
- its centre moves slower than :data:`CONTACT_SPEED_M_S` (measured on positions smoothed zero-phase at
  :data:`CONTACT_SMOOTHING_HZ`, so tracker jitter is not mistaken for a step).

**Floor.** First guess: level with the camera (the rig's up), at the height of the lowest foot points of slow
frames. Then the contact points are fitted with a plane when they spread over at least :data:`FLOOR_SPREAD_M` in
two directions (enough to see a slope or a tilted camera); otherwise the floor stays level, at the median height
of the contacts. Contacts are found again against that floor.

**Locking.** During each planted stretch the foot's place is where the solve put it when it landed; the root is
shifted (along the floor) by however far the solved foot strays from it, so the foot stays put while the leg
keeps the solved rotations. With both feet planted the shift is their mean. Between stretches the shift moves
linearly from one stretch's value to the next (no pop); before the first and after the last it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .filters import OneEuroParams
from .frames import LANDMARK
from .offline_filter import zero_phase

CONTACT_HEIGHT_M = 0.06
CONTACT_SPEED_M_S = 0.35
CONTACT_SMOOTHING_HZ = 3.0
FLOOR_SPREAD_M = 0.5
MIN_CONTACT_FRAMES = 2
"""Shorter planted stretches are not contacts (a foot passing through its slowest point mid-swing)."""
SIDES = ("left", "right")
FOOT_LANDMARKS = {side: [LANDMARK[f"{side}_{name}"] for name in ("ankle", "heel", "foot_index")] for side in SIDES}


@dataclass(frozen=True)
class Floor:
    """A plane: points p with ``dot(up, p) == height`` (``up`` unit, pointing away from the floor)."""

    up: np.ndarray
    height: float
    fitted: bool
    """True when the plane was fitted to the contacts; False: level with the camera."""


def foot_points(body: np.ndarray) -> np.ndarray:
    """(N, 2, 3, 3): for each frame, foot (left, right) and point (ankle, heel, toe tip), the position of the
    body points ``body`` (N, 33, 3)."""
    return np.stack([body[:, FOOT_LANDMARKS[side]] for side in SIDES], axis=1)


def _contacts_against(feet: np.ndarray, floor: Floor, fps: float, seen: np.ndarray) -> np.ndarray:
    lowest = np.min(feet @ floor.up, axis=-1) - floor.height
    centres = feet.mean(axis=2)
    smoothed = zero_phase(centres, fps, OneEuroParams(min_cutoff=CONTACT_SMOOTHING_HZ, beta=0.0))
    speed = np.linalg.norm(np.gradient(smoothed, axis=0), axis=-1) * fps if len(feet) > 1 else np.zeros(lowest.shape)
    planted = (lowest < CONTACT_HEIGHT_M) & (speed < CONTACT_SPEED_M_S) & seen
    return _drop_short(planted, MIN_CONTACT_FRAMES)


def _drop_short(planted: np.ndarray, shortest: int) -> np.ndarray:
    out = planted.copy()
    for foot in range(planted.shape[1]):
        for start, end in spans(planted[:, foot]):
            if end - start < shortest:
                out[start:end, foot] = False
    return out


def spans(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in ``flags`` (N,), end exclusive."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def find_contacts(feet: np.ndarray, seen: np.ndarray, up: np.ndarray, fps: float, fit_floor: bool):
    """(contacts (N, 2) bool, Floor) for ``feet`` (N, 2, 3, 3) person metres and ``seen`` (N, 2) (the foot's
    landmarks were seen); ``up`` the level floor's normal."""
    lowest = np.min(feet @ up, axis=-1)
    usable = lowest[seen]
    if usable.size == 0:
        return np.zeros(seen.shape, dtype=bool), Floor(up, 0.0, False)
    floor = Floor(up, float(np.percentile(usable, 10)), False)
    contacts = _contacts_against(feet, floor, fps, seen)
    if contacts.any():
        points = _contact_points(feet, contacts, up)
        floor = Floor(up, float(np.median(points @ up)), False)
        if fit_floor:
            floor = _fit_plane(points, up) or floor
        contacts = _contacts_against(feet, floor, fps, seen)
    return contacts, floor


def _contact_points(feet: np.ndarray, contacts: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The lowest point of each planted foot in each frame (M, 3)."""
    lowest = np.argmin(feet @ up, axis=-1)
    frames, sides = np.nonzero(contacts)
    return feet[frames, sides, lowest[frames, sides]]


def _fit_plane(points: np.ndarray, up: np.ndarray) -> Floor | None:
    """The least-squares plane through ``points``, or None when they do not spread in two directions."""
    centre = points.mean(axis=0)
    _, singular, axes = np.linalg.svd(points - centre, full_matrices=False)
    spread = 2.0 * singular / np.sqrt(max(len(points), 1))
    if len(points) < 6 or spread.shape[0] < 3 or spread[1] < FLOOR_SPREAD_M / 2:
        return None
    normal = axes[2] if np.dot(axes[2], up) >= 0 else -axes[2]
    return Floor(normal, float(np.dot(normal, centre)), True)


def lock_shift(solved_feet: np.ndarray, contacts: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(N, 3): how far to move the root (along the floor, perpendicular to ``up``) in each frame so that each
    planted foot stays where it landed (the first frame of its planted stretch). ``solved_feet`` (N, 2, 3):
    where the solve puts each foot's lowest point."""
    count = contacts.shape[0]
    wanted = np.zeros((count, 2, 3))
    for foot in range(2):
        for start, end in spans(contacts[:, foot]):
            wanted[start:end, foot] = solved_feet[start, foot] - solved_feet[start:end, foot]
    wanted -= (wanted @ up)[..., None] * up
    planted = contacts.sum(axis=1)
    known = planted > 0
    shift = np.zeros((count, 3))
    if not known.any():
        return shift
    shift[known] = wanted[known].sum(axis=1) / planted[known, None]
    frames = np.arange(count)
    for axis in range(3):
        shift[:, axis] = np.interp(frames, frames[known], shift[known, axis])
    return shift
