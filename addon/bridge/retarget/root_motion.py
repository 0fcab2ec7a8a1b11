"""Where the person is, from one static camera: the hips' position in all three axes, in person metres.

MediaPipe's world landmarks are centred on the hips, so they say how the body is posed but not where it is. The
image landmarks say where it is seen. For a pinhole camera with focal length f (pixels), a body part L metres
across (at right angles to the view) that spans l pixels is at depth ``z = f * L / l``, and a point seen at pixel
(u, v) lies at ``x = (u - cx) * z / f`` to the side and ``y = (v - cy) * z / f`` below the view's centre (cx, cy).
The body part used is the torso (the shoulders' midpoint to the hips'), its length in metres measured at right
angles to the view (the world landmarks' x and y), so a torso leaning towards the camera does not look further
away.

Limits of one static camera, stated: f is not known, so a horizontal field of view of :data:`ASSUMED_FOV_DEG`
degrees is assumed (a normal lens): distances and so depth motion scale with the true f over the assumed one
(a 10 % wrong guess makes walking towards the camera 10 % too short or long); sideways and vertical motion are
measured at that depth and scale the same way. Depth comes from a torso some 60-300 pixels long, so it is
noisier than sideways motion (a pixel is 0.3-1.5 % of the distance; a single frame's spike is dropped by a running
median); a person whose torso is shorter than :data:`MIN_DEPTH_TORSO_PX` gets none. Depth is smoothed like the
rest, and a person crossing the frame sideways at constant depth may still sway a few centimetres in depth. A
camera that pans, tilts or zooms is taken for the person moving.
"""

from __future__ import annotations

import math

import numpy as np

from .frames import LANDMARK

ASSUMED_FOV_DEG = 60.0
"""Horizontal field of view assumed for the camera (degrees)."""
HIPS = [LANDMARK["left_hip"], LANDMARK["right_hip"]]
SHOULDERS = [LANDMARK["left_shoulder"], LANDMARK["right_shoulder"]]
MIN_DEPTH_TORSO_PX = 60.0
"""A shot whose person's torso is shorter than this (median, pixels) gets no depth motion: a pixel would be over
1.5 % of the distance (a person 200 px tall or less: far away, or a low-resolution clip)."""
MIN_TORSO_PX = 1.0
OUTLIER_WINDOW = 5
"""Frames in the running median that drops single-frame spikes from the hips' camera track."""


def focal_px(width: float) -> float:
    """The assumed focal length in pixels for frames ``width`` pixels wide."""
    return (width / 2.0) / math.tan(math.radians(ASSUMED_FOV_DEG) / 2.0)


def hip_positions(
    world: np.ndarray, image: np.ndarray, seen: np.ndarray, size: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(camera-space hip centre (N, 3) metres, valid (N,), torso length (N,) pixels): x to the image's right,
    y down, z away from the camera (MediaPipe's axes), from ``world`` (N, 33, 3) MediaPipe world landmarks,
    ``image`` (N, 33, 3) normalised image landmarks of frames ``size`` (width, height) pixels, ``seen`` (N, 33)."""
    width, height = float(size[0]), float(size[1])
    pixels = np.asarray(image, dtype=np.float64).reshape(-1, 33, 3)[..., :2] * np.array([width, height])
    world = np.asarray(world, dtype=np.float64).reshape(-1, 33, 3)
    valid = np.all(seen[:, HIPS + SHOULDERS], axis=1)
    hip_px, shoulder_px = pixels[:, HIPS].mean(axis=1), pixels[:, SHOULDERS].mean(axis=1)
    torso_px = np.linalg.norm(shoulder_px - hip_px, axis=-1)
    torso_xy = world[:, SHOULDERS, :2].mean(axis=1) - world[:, HIPS, :2].mean(axis=1)
    torso_m = np.linalg.norm(torso_xy, axis=-1)
    valid &= np.isfinite(torso_px) & (torso_px > MIN_TORSO_PX) & np.isfinite(torso_m) & (torso_m > 0.05)
    metres_per_pixel = np.where(valid, np.nan_to_num(torso_m) / np.where(valid, torso_px, 1.0), 0.0)
    centre = np.array([width / 2.0, height / 2.0])
    offset = np.nan_to_num(hip_px) - centre
    position = np.stack([offset[:, 0], offset[:, 1], np.full(len(offset), focal_px(width))], axis=1)
    return position * metres_per_pixel[:, None], valid, np.where(valid, np.nan_to_num(torso_px), 0.0)


def at_steady_depth(track: np.ndarray) -> np.ndarray:
    """``track`` (N, 3) camera-space positions moved along their lines of sight to the median depth: where the
    person was seen, at a distance that does not change (for people too small for their size to say it)."""
    depth = track[:, 2]
    return track * (np.median(depth) / np.where(depth > 0, depth, np.median(depth)))[:, None]


def without_outliers(track: np.ndarray, window: int = OUTLIER_WINDOW) -> np.ndarray:
    """``track`` (N, 3) with each frame replaced by the median of the ``window`` frames around it (fewer at the
    ends): one frame's bad torso measurement (a limb across it, a missed shoulder) is a spike in depth, not a
    move, and a median drops it where smoothing would smear it over its neighbours."""
    count = track.shape[0]
    if count < window:
        return track.copy()
    half = window // 2
    padded = np.pad(track, [(half, half), (0, 0)], mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window, axis=0), axis=-1)
