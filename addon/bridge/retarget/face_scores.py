"""MediaPipe's blendshape scores (the pose mode's ``face_blendshapes``) as the 52 ARKit values of a take.

The model names its 51 scores as ARKit does (same spelling, ``Left`` the person's own left); ARKit's ``tongueOut``
is the one it lacks, and stays 0 as with the face-mesh estimate. Frames where the model gave no scores (NaN rows,
or no face) hold the nearest scored frame's values; then each group's gain and smoothing, as for the estimate.

No neutral is subtracted. The model is trained to read a resting face as zero, and its scores are absolute: what a
take's first frames show is real (eyes held looking sideways, a slight smile), and subtracting it would take that
out of every frame. The face-mesh estimate needs the take's neutral because a distance between landmarks has no
zero of its own; a score has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ....shared.pose_data import FACE_SHAPE_NAMES
from .face_shapes import ARKIT_SHAPES, FaceError, FaceOptions, FaceValues, finish_take

COLUMNS = [ARKIT_SHAPES.index(name) for name in FACE_SHAPE_NAMES]
"""For each score column, its column among :data:`.face_shapes.ARKIT_SHAPES`."""


def arkit_values(scores: np.ndarray) -> np.ndarray:
    """Scores (..., 51) under ``FACE_SHAPE_NAMES`` to values (..., 52) float64 under ``ARKIT_SHAPES`` (``tongueOut``
    0). Raises FaceError when the scores have another number of columns."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[-1:] != (len(FACE_SHAPE_NAMES),):
        raise FaceError(
            f"The pose job's face_blendshapes have {scores.shape[-1:]} columns, not {len(FACE_SHAPE_NAMES)}: it was "
            "made by another version of the daemon; run pose on the strip again"
        )
    values = np.zeros((*scores.shape[:-1], len(ARKIT_SHAPES)))
    values[..., COLUMNS] = scores
    return values


def solve_scores(
    scores: np.ndarray,
    face_present: np.ndarray,
    fps: float,
    options: FaceOptions | None = None,
    shot_starts: Sequence[int] = (),
) -> FaceValues:
    """ARKit values for a take from the model's ``scores`` (N, 51) and ``face_present`` (N,) as the pose mode writes
    them, at ``fps``; gains and zero-phase smoothing as :func:`.face_shapes.solve_face`. Raises FaceError when no
    frame has scores."""
    options = options or FaceOptions()
    values = arkit_values(scores)
    valid = np.asarray(face_present, dtype=bool) & np.isfinite(values).all(axis=1)
    if not valid.any():
        raise FaceError(
            "No frame of the take has the face blendshape model's scores: nothing to drive shape keys with (track "
            "the face first, or set the pose option Face Shapes to landmarks)"
        )
    return FaceValues(finish_take(values[valid], valid, fps, options, shot_starts), valid, (), source="model")
