"""Zero-phase smoothing for bakes: the One Euro filter's settings, run forward and backward over a whole clip.

A causal filter (the One Euro filter live capture needs) lags: its output at frame t only knows frames up to t,
so a baked limb trails the footage by a frame or two and its error grows with speed. A bake has the whole clip,
so it can filter without lag: a first-order low-pass run forward, then backward over the forward result, delays
by exactly as much in one direction as in the other; the delays cancel (zero phase).

The settings keep their One Euro meaning, so a bake and a live take look alike for the same values:

- ``min_cutoff`` (Hz): the cutoff when the signal does not move;
- ``beta``: how much the cutoff rises per unit of speed (signal units per second), so fast moves are not flattened;
- ``d_cutoff`` (Hz): the smoothing of the speed estimate.

Differences from the live filter, all because the clip is known:

- the speed is the central difference (no lag), and each frame takes the highest speed within one period of
  ``d_cutoff`` around it (centred) before that is smoothed zero-phase at ``d_cutoff``: the turning point in the
  middle of a move (an arm at the top of its swing) is not stillness, and is not flattened as if it were;
- two passes attenuate twice, so each pass runs at the cutoff times :data:`PASS_CUTOFF_FACTOR`, which puts the
  pair's half-power (-3 dB) point at the One Euro cutoff itself.

Segments (shots split by cuts) are filtered separately: nothing is smoothed across a cut.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from .filters import OneEuroParams

PASS_CUTOFF_FACTOR = 1.0 / math.sqrt(math.sqrt(2.0) - 1.0)
"""About 1.55. One first-order pass with cutoff c passes 1 / (1 + (f / c)^2) of the power at f; two passes the
square of that, which is one half at f = c * sqrt(sqrt(2) - 1). Running each pass at c times this factor puts
the two passes' half-power point back at c."""


def _forward_backward(samples: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """An exponential low-pass over axis 0, forward then backward; ``alpha`` (N, ...) the per-sample smoothing
    factor (1: follow the sample, near 0: hold), broadcast over the samples' last axis."""
    count = samples.shape[0]
    out = samples.copy()
    for index in range(1, count):
        out[index] = out[index - 1] + alpha[index] * (out[index] - out[index - 1])
    for index in range(count - 2, -1, -1):
        out[index] = out[index + 1] + alpha[index] * (out[index] - out[index + 1])
    return out


def _alpha(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray:
    """Smoothing factor of an exponential low-pass at ``cutoff_hz`` for samples ``1 / fps`` seconds apart."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau * fps)


def _running_max(values: np.ndarray, window: int) -> np.ndarray:
    """The largest of ``values`` (N, ...) within ``window`` frames centred on each frame (fewer at the ends)."""
    half = max(window // 2, 0)
    padded = np.pad(values, [(half, half)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)
    return windows.max(axis=-1)


def _filter_segment(samples: np.ndarray, fps: float, params: OneEuroParams) -> np.ndarray:
    """One segment, extended at both ends by its own motion mirrored about its end values (so a filter pass
    starting there sees the motion go on, and the ends are not pulled back), filtered, trimmed back."""
    count = samples.shape[0]
    if count < 3:
        return samples.copy()
    pad = min(count - 1, round(fps))
    head = 2.0 * samples[0] - samples[pad:0:-1]
    tail = 2.0 * samples[-1] - samples[-2 : -pad - 2 : -1]
    return _filter_padded(np.concatenate([head, samples, tail]), fps, params)[pad : pad + count]


def _filter_padded(samples: np.ndarray, fps: float, params: OneEuroParams) -> np.ndarray:
    velocity = np.gradient(samples, axis=0) * fps
    speed = _running_max(np.linalg.norm(velocity, axis=-1), round(fps / params.d_cutoff))
    speed_alpha = np.full(speed.shape, _alpha(params.d_cutoff * PASS_CUTOFF_FACTOR, fps))
    speed = _forward_backward(speed[..., None], speed_alpha[..., None])[..., 0]
    cutoff = (params.min_cutoff + params.beta * np.abs(speed)) * PASS_CUTOFF_FACTOR
    return _forward_backward(samples, _alpha(cutoff, fps)[..., None])


def zero_phase(
    samples: np.ndarray, fps: float, params: OneEuroParams, segment_starts: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Smooth ``samples`` (N, ..., D), taken at ``fps`` frames per second, without lag. Each leading index past
    the first is its own signal (a bone) whose D components move together (a quaternion); ``segment_starts``:
    frame indices where a new segment (a shot) begins, filtered on its own (0 is implied)."""
    samples = np.asarray(samples, dtype=np.float64)
    if not fps > 0:
        raise ValueError(f"fps must be above 0, got {fps}")
    count = samples.shape[0]
    starts = [int(s) for s in (segment_starts if segment_starts is not None else ()) if 0 < int(s) < count]
    bounds = sorted({0, count, *starts})
    out = np.empty_like(samples)
    for start, end in itertools.pairwise(bounds):
        out[start:end] = _filter_segment(samples[start:end], fps, params)
    return out
