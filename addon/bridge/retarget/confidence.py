"""How sure the solve is of each bone, and what a bone unseen for long does: it settles towards the rig's neutral
pose instead of freezing on the last guess.

**Confidence** of a bone in a frame: the lowest MediaPipe visibility (0..1) of the landmarks that aim it (a
forearm: the elbow and the wrist); 0 where nobody was found. A bone's confidence over a bake is its mean.

**Settling.** An unseen stretch longer than the gap that is interpolated holds the last good rotation (the first
good one before any). A good rotation of a limb MediaPipe then lost is often its last guess of a limb going out of
sight, and a frozen wrong guess (an elbow bent behind the back for the rest of the clip) is worse than no guess.
So once a bone has been unseen for :data:`SETTLE_AFTER_S` seconds, it turns towards its neutral pose (its rest
pose relative to its parent: what the rig does with no data) with a time constant of :data:`SETTLE_TIME_S`
seconds: after 1 s of settling it is 63 % of the way, after 3 s 95 %. Seen again, it takes the seen rotation.
"""

from __future__ import annotations

import numpy as np

from . import rotations as rot

SETTLE_AFTER_S = 2.0
SETTLE_TIME_S = 1.0
REST = np.array([1.0, 0.0, 0.0, 0.0])


def settle(held: np.ndarray, unseen_frames: np.ndarray, fps: float) -> np.ndarray:
    """``held`` (M, 4) quaternions held ``unseen_frames`` (M,) frames away from the nearest good one, turned
    towards rest as the module says; sign kept continuous with ``held``."""
    waited = np.asarray(unseen_frames, dtype=np.float64) / fps - SETTLE_AFTER_S
    weight = np.where(waited > 0, 1.0 - np.exp(-np.clip(waited, 0.0, None) / SETTLE_TIME_S), 0.0)
    if not weight.any():
        return held
    rest = np.where((held @ REST)[:, None] < 0, -REST, REST)
    return rot.slerp(held, rest, weight)


def bone_confidence(visibility: np.ndarray, present: np.ndarray, landmarks: list[list[int]]) -> np.ndarray:
    """(N, B): per frame and bone, the lowest visibility among the bone's ``landmarks`` (indices, one list per
    bone); 0 where no person was found or the visibility is missing."""
    seen = np.where(np.asarray(present, dtype=bool)[:, None], np.nan_to_num(np.asarray(visibility, float)), 0.0)
    return np.stack([seen[:, indices].min(axis=1) for indices in landmarks], axis=1)
