"""MediaPipe's face blendshape model: 51 ARKit-named expression scores per frame, when its bundle is fetched.

The bundle is MediaPipe's Face Landmarker task file (``face_landmarker.task``: face detector, 478-point landmarker
and the blendshape model), fetched with ``python -m daemon fetch-models face_blendshapes`` into the models folder
(:data:`BUNDLE_PATH`; size and sha256 in ``models/manifest.toml``). Without it the pose mode's face stays the
Holistic face mesh alone and the add-on estimates the shapes from that mesh's geometry.

How: the pose mode's Holistic graph finds the main person's face mesh; a square crop around it (the mesh's extent
times :data:`CROP_SCALE`) goes through the Face Landmarker in image mode, so its scores are always the main
person's face (never a second face in the frame), a small face is seen large, and no state carries from frame to
frame (nothing crosses a shot cut). The model's categories are ARKit's names with the same spelling and the same
sides (``Left`` is the person's own left: checked by a wink made from two real frames in the tests), plus
``_neutral``, which is not a shape and is dropped; it has no ``tongueOut``.

Importing this module imports neither MediaPipe nor OpenCV.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.pose_data import FACE_SHAPE_NAMES

BUNDLE_PATH = "mediapipe/face_landmarker.task"
"""The bundle's place in the models folder (the manifest entry ``face_landmarker``)."""

FETCH_MODE = "face_blendshapes"
"""What to pass to ``fetch-models`` to get the bundle."""

NOT_SHAPES = ("_neutral",)
"""Model categories that are not blendshapes."""

CROP_SCALE = 1.6
"""The crop's side over the face mesh's larger extent: enough forehead, chin and cheeks for the face detector."""

MIN_CROP_PX = 16
"""A face smaller than this (pixels) gives no scores."""

SOURCES = ("auto", "landmarks")
"""The pose mode's ``face_shapes`` choices: ``auto`` uses the model when its bundle is fetched, ``landmarks`` never."""


def bundle_file(models_dir: Path) -> Path | None:
    """The fetched bundle in ``models_dir``, or None when it is not there."""
    path = models_dir / BUNDLE_PATH
    return path if path.is_file() else None


class BundleError(RuntimeError):
    """The fetched bundle is not the one the manifest names; the message says how to fetch it again."""


class FaceBlendshapes:
    """The Face Landmarker with blendshapes on, for one thread (its graph is not shared between threads). Its
    scores are columns under :data:`shared.pose_data.FACE_SHAPE_NAMES`."""

    def __init__(self, bundle: Path) -> None:
        import mediapipe
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        self._image = mediapipe.Image
        self._srgb = mediapipe.ImageFormat.SRGB
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            output_face_blendshapes=True,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self.bundle = bundle

    def scores(self, rgb: np.ndarray, face_points: np.ndarray | None) -> np.ndarray | None:
        """The scores (51,) float32 of the face whose mesh is ``face_points`` (478, 3) in image coordinates (0..1)
        in the RGB uint8 frame ``rgb``; None when there is no mesh, the face is too small or the model finds no
        face in the crop. Raises BundleError when the model's categories are not the expected ones."""
        if face_points is None or not np.isfinite(face_points).all():
            return None
        crop = _crop(rgb, face_points[:, :2])
        if crop is None:
            return None
        found = self._landmarker.detect(self._image(image_format=self._srgb, data=crop))
        if not found.face_blendshapes:
            return None
        shapes = [c for c in found.face_blendshapes[0] if c.category_name not in NOT_SHAPES]
        if tuple(c.category_name for c in shapes) != FACE_SHAPE_NAMES:
            raise BundleError(
                f"{self.bundle} gives other blendshape categories than MediaPipe's face_landmarker.task float16 v1: "
                f"delete it and run `python -m daemon fetch-models {FETCH_MODE}`"
            )
        return np.array([c.score for c in shapes], dtype=np.float32)

    def close(self) -> None:
        self._landmarker.close()


def _crop(rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """A contiguous square crop of ``rgb`` around normalised ``points`` (K, 2), clipped to the frame."""
    height, width = rgb.shape[:2]
    pixels = points * np.array([width, height])
    low, high = pixels.min(axis=0), pixels.max(axis=0)
    centre, side = (low + high) / 2, float((high - low).max()) * CROP_SCALE
    x0, y0 = np.maximum(np.floor(centre - side / 2), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(centre + side / 2), (width, height)).astype(int)
    if min(x1 - x0, y1 - y0) < MIN_CROP_PX:
        return None
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def open_for(models_dir: Path, params: Mapping[str, Any]) -> FaceBlendshapes | None:
    """The model for a pose run with validated ``params``: when the face is tracked, ``face_shapes`` is ``auto``
    and the bundle is fetched; otherwise None (the face mesh alone)."""
    if not params.get("face", False) or params.get("face_shapes", "auto") != "auto":
        return None
    bundle = bundle_file(models_dir)
    return FaceBlendshapes(bundle) if bundle is not None else None
