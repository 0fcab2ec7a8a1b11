"""Temporal smoothing: the One Euro filter, and quaternion sign continuity.

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff rises with speed:
slow motion is smoothed hard (jitter gone), fast motion barely (little lag). ``min_cutoff`` (Hz) sets the
smoothing at rest, ``beta`` how fast the cutoff opens with speed (per unit of the signal per second),
``d_cutoff`` (Hz) the smoothing of the speed estimate itself.

Quaternions q and -q are the same rotation; a filter or an F-curve interpolating between them swings the long
way round. :func:`make_continuous` flips each quaternion to the sign nearer its predecessor first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """The filter's three parameters. Defaults suit bone rotations as quaternions sampled at video rates."""

    min_cutoff: float = 1.0
    """Hz: the cutoff when the signal does not move. Lower: smoother and laggier when slow."""
    beta: float = 0.3
    """How much the cutoff rises per unit of speed (signal units per second). Higher: less lag when fast."""
    d_cutoff: float = 1.0
    """Hz: the cutoff of the speed estimate."""

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"One Euro {name} must be above 0 Hz, got {getattr(self, name)}")
        if not self.beta >= 0.0:
            raise ValueError(f"One Euro beta must be 0 or more, got {self.beta}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential low-pass with ``cutoff`` (Hz) for a step of ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters a stream of vectors shaped (..., D): each leading index is its own signal (a bone), and the speed
    that opens the cutoff is the length of the D-vector's rate of change (a quaternion moves as one).

    Feed it samples in time order with :meth:`__call__`; the first sample passes through unchanged.
    """

    def __init__(self, params: OneEuroParams) -> None:
        self.params = params
        self._previous: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        self._previous = self._speed = self._time = None

    def __call__(self, sample: np.ndarray, time_s: float) -> np.ndarray:
        """The filtered value of ``sample`` taken at ``time_s`` seconds. A sample not later than the previous one
        (a repeated timestamp) is treated as 1 ms later."""
        sample = np.asarray(sample, dtype=np.float64)
        if self._previous is None or self._time is None or self._speed is None:
            self._previous = sample.copy()
            self._speed = np.zeros(sample.shape[:-1])
            self._time = time_s
            return sample.copy()
        dt = max(time_s - self._time, 1e-3)
        self._time = time_s
        raw_speed = np.linalg.norm(sample - self._previous, axis=-1) / dt
        self._speed = self._speed + _alpha(self.params.d_cutoff, dt) * (raw_speed - self._speed)
        cutoff = self.params.min_cutoff + self.params.beta * self._speed
        alpha = np.asarray(_alpha(cutoff, dt))[..., None]
        self._previous = self._previous + alpha * (sample - self._previous)
        return self._previous.copy()


def one_euro(
    samples: np.ndarray, times_s: np.ndarray, params: OneEuroParams, segment_starts: Sequence[int] = ()
) -> np.ndarray:
    """Filter a whole sequence shaped (N, ..., D) sampled at ``times_s`` (N,) seconds; the filter starts afresh at
    each of ``segment_starts`` (frame indices where a shot begins), so nothing is smoothed across a cut."""
    samples = np.asarray(samples, dtype=np.float64)
    out = np.empty_like(samples)
    starts = {int(s) for s in segment_starts}
    smoother = OneEuroFilter(params)
    for index in range(samples.shape[0]):
        if index in starts:
            smoother = OneEuroFilter(params)
        out[index] = smoother(samples[index], float(times_s[index]))
    return out


def make_continuous(quats: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Quaternions (N, ..., 4) with signs flipped so that each has a non-negative dot product with the one before
    it along the first axis (and the first with ``previous`` (..., 4), when given). Same rotations."""
    quats = np.array(quats, dtype=np.float64, copy=True)
    last = previous
    for index in range(quats.shape[0]):
        if last is not None:
            flip = np.sum(quats[index] * last, axis=-1) < 0.0
            quats[index] = np.where(flip[..., None], -quats[index], quats[index])
        last = quats[index]
    return quats
