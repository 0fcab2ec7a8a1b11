"""Face crops for LivePortrait: find the face, frame it as the networks expect, paste the result back.

**Finding faces.** :class:`MediaPipeFaceFinder` (the default: MediaPipe 0.10.21's face mesh, bundled in its
wheel, offline) or :class:`InsightFaceFinder` (insightface's SCRFD detector and 106-point landmarks, when the
package and its ``buffalo_l`` models are installed). Both return :class:`FaceLandmarks` of the largest face in
pixels, or ``None``.

**Framing.** The networks were trained on crops framed by the official cropper: the face's "up" axis runs from
the mouth to the eye centre, the box is the square around the face landmarks (jaw line, brows, eyes, nose,
mouth) enlarged by ``scale`` and shifted by ``vy * size`` along that axis (negative: up, to include the
forehead). Sources are cropped with rotation (``scale`` 2.3, ``vy`` -0.125, the official source settings);
driving frames with an upright box (``scale`` 2.2, ``vy`` -0.1, the official driving settings), by default one
box averaged over the whole strip, so the head's motion inside the frame is kept. Crops are taken at 512x512
(the generator's output size) and reduced to 256x256 for the networks.

With MediaPipe the framing points are the 468-point mesh's jaw line, brows, eye corners, nose and mouth, chosen
to span what the official 106-point contour spans (the mesh's forehead points are left out). Crops therefore
match the official framing closely but not to the pixel.

**Paste-back.** The 512x512 result is warped back into the source image through the inverse of the source
crop, blended with a mask that is 1 over the crop and ramps linearly to 0 over its outer ``feather`` pixels (16
at 512, like the official template). Pixels the mask does not reach are copied from the source unchanged.

Eye and lip opening ratios (for the retargeting networks) are measured on MediaPipe landmarks: eyelid gap over
eye width for each eye, inner-lip gap over mouth width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

CROP_SIZE = 512
"""Side of the crops in pixels: the generator's output size, and what paste-back expects."""
NETWORK_SIZE = 256
"""Side of the networks' input images."""

SOURCE_SCALE, SOURCE_VY = 2.3, -0.125
DRIVING_SCALE, DRIVING_VY = 2.2, -0.1
FEATHER_PIXELS = 16

# MediaPipe face mesh indices (468 points; "left"/"right" as seen in the image).
MP_LEFT_EYE = (33, 133, 159, 145)  # corners, upper lid, lower lid
MP_RIGHT_EYE = (362, 263, 386, 374)
MP_MOUTH = (61, 291, 13, 14)  # corners, inner upper lip, inner lower lip
MP_JAW = (
    127,
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    149,
    176,
    148,
    152,
    377,
    400,
    378,
    379,
    365,
    397,
    288,
    361,
    323,
    454,
    356,
)
MP_BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
MP_NOSE = (1, 4, 5, 6, 168, 197, 195, 98, 327)
MP_FRAMING = MP_JAW + MP_BROWS + MP_LEFT_EYE + MP_RIGHT_EYE + MP_MOUTH + MP_NOSE

# insightface 2d106 indices used by the official cropper for the eye centres and the mouth.
IF_LEFT_EYE = (33, 35, 40, 39)
IF_RIGHT_EYE = (87, 89, 94, 93)
IF_MOUTH = (52, 61)

INSIGHTFACE_FILES = ("det_10g.onnx", "2d106det.onnx")
INSIGHTFACE_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"


class FaceFinderUnavailable(RuntimeError):
    """The chosen face finder cannot run here (package or model files missing); the message says what to do."""


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of one face in image pixels (x right, y down). ``layout``: ``mediapipe`` (468 points) or
    ``insightface106``."""

    points: np.ndarray
    layout: str

    def framing_points(self) -> np.ndarray:
        return self.points[list(MP_FRAMING)] if self.layout == "mediapipe" else self.points

    def eye_center(self) -> np.ndarray:
        groups = (MP_LEFT_EYE, MP_RIGHT_EYE) if self.layout == "mediapipe" else (IF_LEFT_EYE, IF_RIGHT_EYE)
        return np.mean([self.points[list(g)].mean(axis=0) for g in groups], axis=0)

    def mouth_center(self) -> np.ndarray:
        corners = MP_MOUTH[:2] if self.layout == "mediapipe" else IF_MOUTH
        return self.points[list(corners)].mean(axis=0)

    @property
    def has_ratios(self) -> bool:
        return self.layout == "mediapipe"

    def eye_open_ratios(self) -> np.ndarray:
        """(2,) float32: lid gap over eye width for the image-left and image-right eye (about 0.3 when open,
        near 0 closed). MediaPipe layout only."""
        return np.array([self._gap_ratio(MP_LEFT_EYE), self._gap_ratio(MP_RIGHT_EYE)], dtype=np.float32)

    def lip_open_ratio(self) -> float:
        """Inner-lip gap over mouth width (0 when closed). MediaPipe layout only."""
        return self._gap_ratio(MP_MOUTH)

    def _gap_ratio(self, group: tuple[int, int, int, int]) -> float:
        if self.layout != "mediapipe":
            raise ValueError("opening ratios are measured on MediaPipe landmarks")
        a, b, top, bottom = (self.points[i] for i in group)
        return float(np.linalg.norm(top - bottom) / (np.linalg.norm(a - b) + 1e-6))


class FaceFinder(Protocol):
    def find(self, rgb: np.ndarray) -> FaceLandmarks | None: ...

    def close(self) -> None: ...


class MediaPipeFaceFinder:
    """MediaPipe face mesh. ``video=True`` tracks from frame to frame (frames must then come in order from one
    clip); ``video=False`` detects every image afresh."""

    def __init__(self, video: bool, max_faces: int = 4, min_confidence: float = 0.5) -> None:
        import mediapipe

        self._mesh = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def find(self, rgb: np.ndarray) -> FaceLandmarks | None:
        found = self._mesh.process(np.ascontiguousarray(rgb))
        if not found.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        faces = [
            np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float32)
            for face in found.multi_face_landmarks
        ]
        largest = max(faces, key=lambda pts: float(np.prod(pts.max(axis=0) - pts.min(axis=0))))
        return FaceLandmarks(largest, "mediapipe")

    def close(self) -> None:
        self._mesh.close()


def insightface_model_dir(candidates: list[Path]) -> Path:
    """The first of ``candidates`` holding insightface's detector and 106-point models, or raise
    :class:`FaceFinderUnavailable` naming them and where the models come from."""
    for folder in candidates:
        if all((folder / name).is_file() for name in INSIGHTFACE_FILES):
            return folder
    places = ", ".join(str(c) for c in candidates)
    raise FaceFinderUnavailable(
        f"insightface needs {' and '.join(INSIGHTFACE_FILES)} in one of: {places}. They come in {INSIGHTFACE_URL} "
        "(non-commercial research licence); unzip it into one of those folders, or use face_detector=mediapipe."
    )


class InsightFaceFinder:
    """insightface's SCRFD detector and 2d106 landmarks, largest face first. Never downloads: ``model_dir``
    must hold the model files (see :func:`insightface_model_dir`)."""

    def __init__(self, model_dir: Path, providers: list[str] | None = None, threshold: float = 0.5) -> None:
        import importlib.util

        if importlib.util.find_spec("insightface") is None:
            raise FaceFinderUnavailable("insightface is not installed: pip install insightface, or use mediapipe")
        from insightface.app import FaceAnalysis

        self._app: Any = FaceAnalysis(
            name=str(model_dir),
            allowed_modules=["detection", "landmark_2d_106"],
            providers=providers or ["CPUExecutionProvider"],
        )
        self._app.prepare(ctx_id=0, det_thresh=threshold, det_size=(512, 512))

    def find(self, rgb: np.ndarray) -> FaceLandmarks | None:
        faces = self._app.get(np.ascontiguousarray(rgb[..., ::-1]))
        faces = [f for f in faces if getattr(f, "landmark_2d_106", None) is not None]
        if not faces:
            return None
        largest = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        return FaceLandmarks(np.asarray(largest.landmark_2d_106, dtype=np.float32), "insightface106")

    def close(self) -> None:
        self._app = None


@dataclass(frozen=True)
class FaceBox:
    """A square around a face: centre (x, y) and side in pixels, and the face's roll (radians, the angle of its
    horizontal axis in the image, clockwise positive as y points down)."""

    cx: float
    cy: float
    size: float
    angle: float


def face_box(landmarks: FaceLandmarks, scale: float, vy: float) -> FaceBox:
    """The official framing rule (see the module docstring) applied to ``landmarks``."""
    down = landmarks.mouth_center() - landmarks.eye_center()
    length = float(np.linalg.norm(down))
    down = down / length if length > 1e-3 else np.array([0.0, 1.0])
    right = np.array([down[1], -down[0]])
    points = landmarks.framing_points().astype(np.float64)
    mean = points.mean(axis=0)
    local = (points - mean) @ np.stack([right, down]).T  # coordinates along (right, down)
    low, high = local.min(axis=0), local.max(axis=0)
    middle = (low + high) / 2
    size = float((high - low).max()) * scale
    center = mean + right * middle[0] + down * middle[1] + down * (vy * size)
    return FaceBox(float(center[0]), float(center[1]), size, float(np.arctan2(right[1], right[0])))


def average_box(boxes: list[FaceBox]) -> FaceBox:
    """The mean of ``boxes`` (centre, size and angle)."""
    values = np.array([(b.cx, b.cy, b.size, b.angle) for b in boxes], dtype=np.float64).mean(axis=0)
    return FaceBox(*(float(v) for v in values))


@dataclass(frozen=True)
class CropTransform:
    """A similarity transform from image pixels to a ``size`` x ``size`` crop. ``matrix`` is 2x3 (float64)."""

    matrix: np.ndarray
    size: int = CROP_SIZE

    @classmethod
    def from_box(cls, box: FaceBox, rotate: bool, size: int = CROP_SIZE) -> CropTransform:
        """Maps the box's centre to the crop's centre and its side to ``size``; with ``rotate`` the face's
        horizontal axis becomes the crop's x axis."""
        s = size / box.size
        angle = box.angle if rotate else 0.0
        cos, sin = np.cos(angle), np.sin(angle)
        linear = s * np.array([[cos, sin], [-sin, cos]])
        offset = np.array([size / 2, size / 2]) - linear @ np.array([box.cx, box.cy])
        return cls(np.hstack([linear, offset[:, None]]), size)

    def inverse(self) -> np.ndarray:
        """2x3 matrix from crop pixels back to image pixels."""
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return np.linalg.inv(full)[:2]

    def crop(self, rgb: np.ndarray, out_size: int = NETWORK_SIZE) -> np.ndarray:
        """The crop of ``rgb`` (black beyond the image), reduced to ``out_size`` with area averaging."""
        import cv2

        crop = cv2.warpAffine(
            rgb, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        if out_size == self.size:
            return crop
        return cv2.resize(crop, (out_size, out_size), interpolation=cv2.INTER_AREA)


def crop_mask(size: int = CROP_SIZE, feather: int = FEATHER_PIXELS) -> np.ndarray:
    """(size, size) float32: 1 inside, ramping linearly to 0 at the outermost pixel over ``feather`` pixels."""
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    ramp = np.clip(distance / feather, 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


@dataclass(frozen=True)
class PasteBack:
    """Everything needed to put animated crops back into one source image: the inverse crop transform and the
    blending mask already warped into the source's frame."""

    crop_to_image: np.ndarray
    mask: np.ndarray  # (H, W, 1) float32 in 0..1
    region: tuple[slice, slice]  # the bounding rows and columns where mask > 0

    @classmethod
    def for_source(cls, transform: CropTransform, image_size: tuple[int, int], feather: int = FEATHER_PIXELS):
        """``image_size`` is (width, height)."""
        import cv2

        inverse = transform.inverse()
        # Outside the crop the (constant) border is 0: those pixels keep the source.
        mask = cv2.warpAffine(crop_mask(transform.size, feather), inverse, image_size, flags=cv2.INTER_LINEAR)
        rows, cols = np.nonzero(mask > 0)
        if rows.size == 0:
            region = (slice(0, 0), slice(0, 0))
        else:
            region = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
        return cls(inverse, mask[..., None], region)

    def apply(self, crop_rgb: np.ndarray, source_rgb: np.ndarray) -> np.ndarray:
        """``source_rgb`` with ``crop_rgb`` (a uint8 crop at the transform's size) blended in; a new array."""
        import cv2

        height, width = source_rgb.shape[:2]
        warped = cv2.warpAffine(crop_rgb, self.crop_to_image, (width, height), flags=cv2.INTER_LINEAR)
        out = source_rgb.copy()
        rows, cols = self.region
        mask = self.mask[rows, cols]
        blend = mask * warped[rows, cols].astype(np.float32) + (1.0 - mask) * source_rgb[rows, cols]
        inside = mask[..., 0] > 0
        out[rows, cols][inside] = np.clip(np.rint(blend[inside]), 0, 255).astype(np.uint8)
        return out
