"""A shot's Z pass as the depth control's pictures: grey, near bright and far dark, one scale for the whole shot.

The daemon's depth control (``models/vace/depth.py``) draws relative inverse depth, nearest white and farthest black;
the scene pass draws the same measure, ``1 / Z``, but stretched once over the whole shot instead of per frame,
so a static set keeps its grey while the camera or a character moves. Pixels where nothing was hit (Blender
writes a huge Z for the background) are black, like the farthest surface.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BACKGROUND_Z = 1e9
"""Z at or beyond this is background (Blender writes 1e10 where no surface was hit)."""


def shot_range(z_frames: Sequence[np.ndarray]) -> tuple[float, float]:
    """(nearest, farthest) Z of any surface in the shot, in Blender units. ValueError if no frame shows one."""
    nearest, farthest = np.inf, 0.0
    for z in z_frames:
        surface = z[(z > 0) & (z < BACKGROUND_Z)]
        if surface.size:
            nearest, farthest = min(nearest, float(surface.min())), max(farthest, float(surface.max()))
    if not np.isfinite(nearest):
        raise ValueError("the camera sees no surface in any frame of the shot: the depth pass would be black")
    return nearest, farthest


def depth_picture(z: np.ndarray, nearest: float, farthest: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) of one frame's Z (H, W): inverse depth stretched from ``farthest`` (black) to
    ``nearest`` (white); background black. A shot with one depth (``nearest == farthest``) is white where hit."""
    z = np.asarray(z, dtype=np.float64)
    hit = (z > 0) & (z < BACKGROUND_Z)
    inverse = np.where(hit, 1.0 / np.where(hit, z, 1.0), 0.0)
    near, far = 1.0 / nearest, 1.0 / farthest
    scaled = (inverse - far) / (near - far) if near > far else np.ones_like(inverse)
    gray = np.where(hit, np.clip(np.rint(scaled * 255.0), 0, 255), 0).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
