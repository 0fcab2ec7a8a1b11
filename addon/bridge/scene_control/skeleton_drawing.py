"""The OpenPose body drawing of :mod:`shared.openpose`, in numpy, for the add-on (Blender ships no OpenCV).

It draws what the pose mode's ``models/skeleton.py`` draws with OpenCV for the same keypoints: each limb an
ellipse polygon through 1-degree steps with vertices on whole pixels, filled between its outline's pixels row by
row; the limbs blended at ``LIMB_OPACITY`` over the canvas; the joints as solid discs of ``JOINT_RADIUS_PX``.
Pixels on the rim of a limb can differ from OpenCV's where the two round an outline step differently; the
tests measure that against OpenCV.
"""

from __future__ import annotations

import math

import numpy as np

from ....shared.openpose import (
    JOINT_RADIUS_PX,
    LIMB_OPACITY,
    OPENPOSE18_KEYPOINTS,
    OPENPOSE18_LIMBS,
    OPENPOSE_COLOURS,
    STICK_WIDTH_PX,
)

_DEGREES = np.radians(np.arange(0, 361, dtype=np.float64))


def ellipse_polygon(centre: tuple[int, int], axes: tuple[int, int], angle_degrees: int) -> np.ndarray:
    """(N, 2) int vertices of the ellipse of ``axes`` (half-width, half-height) turned by ``angle_degrees``
    (clockwise on screen, y down) around ``centre``, one per degree, rounded to whole pixels, repeats dropped."""
    turn = math.radians(angle_degrees)
    cos_turn, sin_turn = math.cos(turn), math.sin(turn)
    x = axes[0] * np.cos(_DEGREES)
    y = axes[1] * np.sin(_DEGREES)
    points = np.rint(
        np.stack([centre[0] + x * cos_turn - y * sin_turn, centre[1] + x * sin_turn + y * cos_turn], axis=1)
    ).astype(np.int64)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    return points[keep]


def fill_convex_polygon(image: np.ndarray, polygon: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Paint the convex ``polygon`` (N, 2) int pixels into ``image`` (H, W, 3) in place: its outline's pixels
    (each edge stepped one pixel at a time along its longer axis) and every pixel between them on each row."""
    starts = np.asarray(polygon, dtype=np.int64)
    ends = np.roll(starts, -1, axis=0)
    steps = np.maximum(np.abs(ends - starts).max(axis=1), 1)
    counts = steps + 1
    edge = np.repeat(np.arange(len(starts)), counts)
    along = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / steps[edge]
    xs = np.rint(starts[edge, 0] + along * (ends[edge, 0] - starts[edge, 0])).astype(np.int64)
    ys = np.rint(starts[edge, 1] + along * (ends[edge, 1] - starts[edge, 1])).astype(np.int64)
    top, x_min, x_max = int(ys.min()), int(xs.min()), int(xs.max())
    left = np.full(int(ys.max()) - top + 1, x_max, dtype=np.int64)
    right = np.full(len(left), x_min, dtype=np.int64)
    np.minimum.at(left, ys - top, xs)
    np.maximum.at(right, ys - top, xs)
    height, width = image.shape[:2]
    row_from, row_to = max(top, 0), min(top + len(left), height)
    col_from, col_to = max(x_min, 0), min(x_max + 1, width)
    if row_from >= row_to or col_from >= col_to:
        return
    columns = np.arange(col_from, col_to)
    rows = slice(row_from - top, row_to - top)
    inside = (columns >= left[rows, None]) & (columns <= right[rows, None])
    image[row_from:row_to, col_from:col_to][inside] = colour


def _disc_offsets(radius: int) -> np.ndarray:
    span = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    inside = dx * dx + dy * dy <= radius * radius
    return np.stack([dx[inside], dy[inside]], axis=1)


_JOINT = _disc_offsets(JOINT_RADIUS_PX)


def draw_openpose(canvas_rgb: np.ndarray, keypoints18: np.ndarray) -> np.ndarray:
    """Draw one body onto a copy of ``canvas_rgb`` (H, W, 3) uint8 and return the copy.

    ``keypoints18`` is (18, 2) in pixels, x right and y down, NaN for a keypoint not to draw; a limb is drawn
    only when both its ends are present. Points off the canvas are clipped.
    """
    keypoints = np.asarray(keypoints18, dtype=np.float64)
    if keypoints.shape != (len(OPENPOSE18_KEYPOINTS), 2):
        raise ValueError(f"expected keypoints of shape (18, 2), got {keypoints.shape}")
    present = ~np.isnan(keypoints).any(axis=1)
    limbs = canvas_rgb.copy()
    for colour, (start, end) in zip(OPENPOSE_COLOURS, OPENPOSE18_LIMBS, strict=False):
        if not (present[start] and present[end]):
            continue
        centre = (keypoints[start] + keypoints[end]) / 2
        dx, dy = keypoints[end] - keypoints[start]
        polygon = ellipse_polygon(
            (round(centre[0]), round(centre[1])),
            (round(math.hypot(dx, dy) / 2), STICK_WIDTH_PX),
            round(math.degrees(math.atan2(dy, dx))),
        )
        fill_convex_polygon(limbs, polygon, colour)
    # Only pixels a limb changed need blending: elsewhere the blend gives the canvas back.
    result = canvas_rgb.copy()
    changed = np.any(limbs != canvas_rgb, axis=2)
    blended = canvas_rgb[changed].astype(np.float32) * np.float32(1.0 - LIMB_OPACITY) + limbs[changed].astype(
        np.float32
    ) * np.float32(LIMB_OPACITY)
    result[changed] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    height, width = result.shape[:2]
    for index in np.flatnonzero(present):
        x, y = keypoints[index]
        pixels = _JOINT + np.array([round(x), round(y)])
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        result[pixels[inside, 1], pixels[inside, 0]] = OPENPOSE_COLOURS[index]
    return result
