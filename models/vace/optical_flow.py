"""Dense optical flow with OpenCV (no weights to download), drawn in the Middlebury flow colours.

The colour of a pixel says where it moves: hue is the direction, saturation the speed. No motion is white;
motion to the right is red, down is orange-yellow, left is cyan-blue and up is violet (the colour wheel of
Baker et al., "A Database and Evaluation Methodology for Optical Flow", the convention RAFT's and VACE's flow
control videos use). As in VACE's flow annotator, frame ``i`` of the control video shows the motion from frame
``i - 1`` to ``i`` (frame 0 repeats frame 1's picture), and each frame's speeds are divided by that frame's fastest
motion, so slow passages are drawn as strongly as fast ones; one scale for the whole clip (its 99th percentile
speed) is the option that keeps colours from changing with the fastest motion of each frame.

OpenCV (``cv2``) is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

FLOW_METHODS = ("dis", "farneback")
NORMALISATIONS = ("frame", "clip")
"""``frame``: each frame's fastest motion at full colour (VACE's flow annotator); ``clip``: one scale for the
clip (:func:`clip_scale`)."""
"""``dis``: OpenCV's DIS flow (fast, sharp motion edges); ``farneback``: Farneback's polynomial expansion
(smoother, slower on large frames)."""

SCALE_PERCENTILE = 99.0
"""Speeds at this percentile of the clip map to full saturation; the few faster pixels saturate."""

MIN_SCALE_PX = 1.0
"""The automatic scale never drops below this many pixels per frame, so the sub-pixel noise of a still frame
stays near white instead of being stretched to full colour."""

# Hue segments of the Middlebury wheel: red→yellow, yellow→green, green→cyan, cyan→blue, blue→magenta,
# magenta→red, with these many steps each (perceptually even spacing, from the paper's reference code).
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)


def color_wheel() -> np.ndarray:
    """The 55 colours of the Middlebury wheel, float32 (55, 3) in 0..1, in the order of increasing angle."""
    ramps = []
    # (channel that stays full, channel that ramps, ramp direction) for each segment, starting at red.
    plan = ((0, 1, +1), (1, 0, -1), (1, 2, +1), (2, 1, -1), (2, 0, +1), (0, 2, -1))
    for steps, (full, ramp, direction) in zip(_WHEEL_SEGMENTS, plan, strict=True):
        segment = np.zeros((steps, 3), dtype=np.float32)
        segment[:, full] = 1.0
        rising = np.floor(255.0 * np.arange(steps) / steps) / 255.0
        segment[:, ramp] = rising if direction > 0 else 1.0 - rising
        ramps.append(segment)
    return np.concatenate(ramps)


_WHEEL = color_wheel()


def flow_to_color(flow: np.ndarray, scale: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) picture of ``flow`` (H, W, 2): x and y displacement in pixels (x right, y down).

    ``scale`` is the speed in pixels that gets full saturation; faster pixels are drawn darker, as in the
    Middlebury reference code. A pixel that does not move is white.
    """
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must have shape (height, width, 2), got {flow.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be a positive number of pixels, got {scale}")
    u = flow[..., 0].astype(np.float32) / scale
    v = flow[..., 1].astype(np.float32) / scale
    radius = np.sqrt(u * u + v * v)
    # Angle measured so that +x (right) lands at the end of the wheel (red) and +y (down) a quarter before.
    angle = np.arctan2(-v, -u) / np.pi
    position = (angle + 1.0) / 2.0 * (len(_WHEEL) - 1)
    lower = np.floor(position).astype(np.int32)
    upper = (lower + 1) % len(_WHEEL)
    blend = (position - lower)[..., None]
    color = (1.0 - blend) * _WHEEL[lower] + blend * _WHEEL[upper]
    inside = (radius <= 1.0)[..., None]
    saturated = 1.0 - radius[..., None] * (1.0 - color)
    color = np.where(inside, saturated, color * 0.75)
    return np.clip(np.floor(255.0 * color), 0, 255).astype(np.uint8)


def dense_flow(previous: np.ndarray, current: np.ndarray, method: str = "dis") -> np.ndarray:
    """Per-pixel displacement (H, W, 2) float32 in pixels from RGB frame ``previous`` to ``current``."""
    import cv2

    if previous.shape != current.shape:
        raise ValueError(f"frames differ in size: {previous.shape} and {current.shape}")
    first = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    second = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
    if method == "dis":
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return solver.calc(first, second, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(
            first, second, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
        )
    raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(FLOW_METHODS)}")


def clip_scale(flows: Sequence[np.ndarray]) -> float:
    """The automatic colour scale of a clip: the ``SCALE_PERCENTILE`` speed, at least ``MIN_SCALE_PX``."""
    if not flows:
        return MIN_SCALE_PX
    # Every 4th pixel of every 4th row is plenty for a percentile and keeps this cheap on long clips.
    speeds = np.concatenate([np.hypot(f[::4, ::4, 0], f[::4, ::4, 1]).ravel() for f in flows])
    return max(float(np.percentile(speeds, SCALE_PERCENTILE)), MIN_SCALE_PX)


def frame_scale(flow: np.ndarray) -> float:
    """The colour scale of one frame: its fastest motion (as the annotator's colouring), at least ``MIN_SCALE_PX``."""
    return max(float(np.hypot(flow[..., 0], flow[..., 1]).max()), MIN_SCALE_PX)


def flow_video(
    frames: Sequence[np.ndarray],
    method: str = "dis",
    scale: float | None = None,
    normalise: str = "frame",
    cancelled: Callable[[], None] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Flow-colour frames (N, H, W, 3) uint8 for ``frames`` (N RGB frames of one size), and each frame's scale.

    Frame ``i`` shows the motion from frame ``i - 1`` to ``i``; frame 0, which has no earlier frame, repeats
    frame 1's picture, so the control has as many frames as the driving clip (VACE's flow annotator does the
    same). One frame gives one white (still) picture. ``scale`` (pixels) fixes the speed of full saturation for
    every frame; otherwise ``normalise`` picks it per frame (:func:`frame_scale`) or per clip
    (:func:`clip_scale`). ``cancelled`` is called between frames and may raise to stop.
    """
    if len(frames) == 0:
        raise ValueError("no frames to compute flow from")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalise!r}; choose one of {', '.join(NORMALISATIONS)}")
    flows: list[np.ndarray] = []
    for previous, current in itertools.pairwise(frames):
        if cancelled is not None:
            cancelled()
        # float16 halves the memory of a long clip; flow precision below 0.01 px does not change a colour.
        flows.append(dense_flow(previous, current, method).astype(np.float16))
    if not flows:
        height, width = frames[0].shape[:2]
        flows.append(np.zeros((height, width, 2), dtype=np.float16))
    flows = flows[:1] + flows if len(frames) > 1 else flows
    if scale is not None:
        scales = [scale] * len(flows)
    elif normalise == "clip":
        scales = [clip_scale(flows)] * len(flows)
    else:
        scales = [frame_scale(f.astype(np.float32)) for f in flows]
    colors = np.stack([flow_to_color(f.astype(np.float32), s) for f, s in zip(flows, scales, strict=True)])
    return colors, scales
