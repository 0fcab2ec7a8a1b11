"""World points through a camera into the pixels of a pass, as Blender's renderer maps them.

The matrices are the camera object's ``matrix_world`` inverted (the view matrix) and
``Object.calc_matrix_camera(depsgraph, x=render width, y=render height)`` (the projection: lens, sensor fit,
shift and clipping). Pixels have x to the right and y down from the top-left corner of the rendered frame, in the
units MediaPipe landmarks use when scaled by the frame size (``x * width``), so a point at pixel ``(x, y)`` is
drawn where the pose mode would draw a landmark there. This is ``bpy_extras.object_utils.world_to_camera_view``
scaled to pixels and flipped to y down.
"""

from __future__ import annotations

import numpy as np

from .framing import Framing


def project_points(
    points_world: np.ndarray, view_matrix: np.ndarray, projection_matrix: np.ndarray, framing: Framing
) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, depth)`` of ``points_world`` (N, 3) in Blender units.

    ``pixels`` is (N, 2) in the generation frame (the crop of ``framing`` applied); ``depth`` is (N,) the distance
    in front of the camera along its view axis (the Z pass's measure), negative behind it. Points behind the
    camera get NaN pixels. Perspective and orthographic cameras both work.
    """
    points = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    in_view = homogeneous @ np.asarray(view_matrix, dtype=np.float64).T
    clip = in_view @ np.asarray(projection_matrix, dtype=np.float64).T
    depth = -in_view[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :2] / clip[:, 3:4]
    render_width, render_height = framing.render_size
    pixels = np.empty((len(points), 2))
    pixels[:, 0] = (ndc[:, 0] + 1.0) / 2.0 * render_width - framing.left
    pixels[:, 1] = (1.0 - ndc[:, 1]) / 2.0 * render_height - framing.top
    pixels[depth <= 0] = np.nan
    return pixels, depth
