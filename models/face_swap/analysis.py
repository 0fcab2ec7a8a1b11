"""Faces in frames for the face-swap mode: detection, identity, landmarks and tracking between detections.

The networks are insightface's buffalo_l pack (SCRFD-10GF detector, ArcFace ResNet50 recogniser, 3D 68-point
landmarks) and its inswapper_128 swapper, loaded with insightface's own model zoo (``model_zoo.get_model``
routes each ONNX file to its wrapper class by the file's signature) on the onnxruntime providers the daemon chose.
Frames handed to insightface are BGR, as its wrappers expect; everything else in the mode is RGB.

Importing this module imports neither insightface nor onnxruntime nor OpenCV; :class:`FaceModels` does.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

BUFFALO_L_DIR = "insightface/models/buffalo_l"
DETECTOR_FILE = f"{BUFFALO_L_DIR}/det_10g.onnx"
RECOGNITION_FILE = f"{BUFFALO_L_DIR}/w600k_r50.onnx"
LANDMARKS_FILE = f"{BUFFALO_L_DIR}/1k3d68.onnx"
SWAPPER_FILES = {
    "fp32": "insightface/models/inswapper_128.onnx",
    "fp16": "insightface/models/inswapper_128_fp16.onnx",
}
"""Paths below the models folder; they mirror the ``path`` of the manifest entries (a test checks it)."""

OUTER_LIP_68 = slice(48, 60)
"""The outer lip contour in the 68-point (iBUG 300-W) layout that 1k3d68 predicts."""


class FaceModelError(RuntimeError):
    """A weight file is not the model its name says (a wrong or corrupt download)."""


@dataclass(eq=False)
class Face:
    """One face in one frame. Pixel coordinates of the frame it was found in (x right, y down).

    ``box`` is (x1, y1, x2, y2); ``kps`` the five SCRFD landmarks (eye centres, nose tip, mouth corners) as
    (5, 2); ``embedding`` the L2-normalised 512-d ArcFace identity (None until computed); ``similarity`` the
    cosine similarity to the chosen target face (NaN when not compared); ``tracked`` whether the face was
    followed from an earlier frame rather than detected in this one.
    """

    box: np.ndarray
    kps: np.ndarray
    score: float
    embedding: np.ndarray | None = None
    similarity: float = math.nan
    tracked: bool = False

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    @property
    def size(self) -> float:
        """The box's longer side, pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def as_insightface(self) -> Any:
        """This face as the ``insightface.app.common.Face`` that insightface's model wrappers take."""
        from insightface.app.common import Face as InsightFace

        face = InsightFace(bbox=self.box.astype(np.float32), kps=self.kps.astype(np.float32), det_score=self.score)
        if self.embedding is not None:
            face.embedding = self.embedding
        return face


def largest_face(faces: Sequence[Face]) -> Face:
    """The face with the largest box (the higher detection score breaks a tie)."""
    return max(faces, key=lambda f: (f.area, f.score))


def left_to_right(faces: Sequence[Face]) -> list[Face]:
    """Faces ordered by the left edge of their box: the order ``source_face_index`` counts in."""
    return sorted(faces, key=lambda f: (float(f.box[0]), float(f.box[1])))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


class FaceModels:
    """insightface's networks on one set of onnxruntime providers.

    The detector and recogniser load at construction; the landmark model and each swapper precision load on
    first use and stay loaded until :meth:`close`. Not thread-safe: one job uses it at a time.
    """

    def __init__(self, models_dir: Path, providers: Sequence[str]) -> None:
        import onnxruntime

        # onnxruntime warns on stderr about every graph it optimises; errors still come through.
        onnxruntime.set_default_logger_severity(3)
        self.models_dir = Path(models_dir)
        self.providers = list(providers)
        self.detector = self._load(DETECTOR_FILE, "SCRFD")
        if not self.detector.use_kps:
            raise FaceModelError(
                f"{self.models_dir / DETECTOR_FILE} is a detector without facial landmarks; face swap needs "
                "buffalo_l's det_10g.onnx. Delete it and run `python -m daemon fetch-models face_swap` again."
            )
        self.recogniser = self._load(RECOGNITION_FILE, "ArcFaceONNX")
        self._landmarks: Any = None
        self._swappers: dict[str, Any] = {}

    def _load(self, relative: str, wrapper: str) -> Any:
        from insightface.model_zoo import model_zoo

        path = self.models_dir / relative
        if not path.is_file():
            raise FaceModelError(f"{path} is missing: run `python -m daemon fetch-models face_swap`")
        # INSwapper prints its input shape to stdout, which the daemon keeps for its "ready" line.
        with contextlib.redirect_stdout(io.StringIO()):
            model = model_zoo.get_model(str(path), providers=self.providers)
        found = type(model).__name__ if model is not None else "nothing it recognises"
        if found != wrapper:
            raise FaceModelError(
                f"{path} should be a {wrapper} model but insightface reads it as {found}: the file is not the one "
                "the manifest names. Delete it and run `python -m daemon fetch-models face_swap` again."
            )
        if hasattr(model, "prepare"):  # INSwapper has none
            model.prepare(0)  # ctx_id 0 keeps the session's providers (a negative id would force the CPU)
        return model

    def landmarks_model(self) -> Any:
        if self._landmarks is None:
            self._landmarks = self._load(LANDMARKS_FILE, "Landmark")
        return self._landmarks

    def swapper(self, precision: str) -> Any:
        """insightface's INSwapper for ``precision`` ("fp32" or "fp16"), loaded on first use."""
        if precision not in self._swappers:
            self._swappers[precision] = self._load(SWAPPER_FILES[precision], "INSwapper")
        return self._swappers[precision]

    def close(self) -> None:
        """Drop every onnxruntime session (their memory goes with the last reference)."""
        self.detector = self.recogniser = self._landmarks = None
        self._swappers.clear()

    def detect(self, bgr: np.ndarray, det_size: int, threshold: float) -> list[Face]:
        """Every face SCRFD finds in a BGR frame, letterboxed into a ``det_size`` square, scoring at least
        ``threshold``; highest score first."""
        self.detector.prepare(0, input_size=(det_size, det_size), det_thresh=threshold)
        boxes, kpss = self.detector.detect(bgr, max_num=0)
        return [
            Face(box=boxes[i, :4].astype(np.float32), kps=kpss[i].astype(np.float32), score=float(boxes[i, 4]))
            for i in range(boxes.shape[0])
        ]

    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """The face's L2-normalised ArcFace embedding (512,), from the 112x112 crop aligned on its landmarks."""
        embedding = np.asarray(self.recogniser.get(bgr, face.as_insightface()), dtype=np.float32)
        return embedding / max(float(np.linalg.norm(embedding)), 1e-12)

    def landmarks68(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """The face's 68 landmarks (68, 2) in frame pixels, from 1k3d68 on a crop around its box."""
        points = self.landmarks_model().get(bgr, face.as_insightface())
        return np.asarray(points, dtype=np.float32)[:, :2]

    def swap(self, bgr: np.ndarray, target: Face, source: Face, precision: str) -> tuple[np.ndarray, np.ndarray]:
        """The target's face with the source's identity, as the 128x128 BGR crop inswapper returns, and the 2x3
        affine ``M`` that maps frame pixels to that crop."""
        swapper = self.swapper(precision)
        crop, matrix = swapper.get(bgr, target.as_insightface(), source.as_insightface(), paste_back=False)
        return crop, np.asarray(matrix, dtype=np.float64)


SCENE_CUT_LEVEL = 20.0
"""Mean absolute difference (0..255) between two 32x32 grey thumbnails above which the shot changed. In the
sample video Megamind.avi the cuts measure 40 to 44 and a cut from black 34; consecutive frames of one shot
stay under 4."""


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """A 32x32 float32 thumbnail of a grey frame, for :func:`scene_changed`."""
    import cv2

    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def scene_changed(previous: np.ndarray, current: np.ndarray) -> bool:
    """Whether two thumbnails look like different shots (a cut), so tracked faces must be found again."""
    return float(np.mean(np.abs(previous - current))) > SCENE_CUT_LEVEL


class FaceTracker:
    """Follows faces from frame to frame between detections, with pyramidal Lucas-Kanade optical flow.

    The five landmarks of each face are tracked forward and back again; points that do not come back to where
    they started (more than ``max_error`` of the face's size) are dropped, and a face keeps at least three good
    points or counts as lost. The similarity transform of its good points moves the face's landmarks and box,
    so a face that turns, nears or recedes stays aligned.
    """

    def __init__(self, max_error: float = 0.04, min_error_px: float = 1.0) -> None:
        self.max_error = max_error
        self.min_error_px = min_error_px
        self._grey: np.ndarray | None = None
        self._faces: list[Face] = []

    def reset(self, grey: np.ndarray, faces: Sequence[Face]) -> None:
        """Start following ``faces`` found in the frame whose grey image is ``grey``."""
        self._grey = grey
        self._faces = list(faces)

    @property
    def faces(self) -> list[Face]:
        return list(self._faces)

    def follow(self, grey: np.ndarray) -> list[Face] | None:
        """The faces moved into the next frame, or None when any of them was lost (the caller detects again)."""
        import cv2

        if self._grey is None or not self._faces:
            return None
        start = np.concatenate([f.kps for f in self._faces]).reshape(-1, 1, 2).astype(np.float32)
        forward, ok_forward, _ = cv2.calcOpticalFlowPyrLK(self._grey, grey, start, None, winSize=(21, 21), maxLevel=3)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(grey, self._grey, forward, None, winSize=(21, 21), maxLevel=3)
        error = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
        good = (ok_forward.ravel() == 1) & (ok_back.ravel() == 1)
        moved: list[Face] = []
        for i, face in enumerate(self._faces):
            points = slice(5 * i, 5 * i + 5)
            keep = good[points] & (error[points] <= max(self.min_error_px, self.max_error * face.size))
            if keep.sum() < 3:
                return None
            old = start[points].reshape(-1, 2)[keep]
            new = forward[points].reshape(-1, 2)[keep]
            matrix, _ = cv2.estimateAffinePartial2D(old, new, method=cv2.LMEDS)
            if matrix is None:
                return None
            moved.append(_moved(face, matrix))
        self._grey = grey
        self._faces = moved
        return list(moved)


def _moved(face: Face, matrix: np.ndarray) -> Face:
    """``face`` carried by the 2x3 similarity ``matrix``: landmarks moved, box the bounds of its moved corners."""
    kps = face.kps @ matrix[:, :2].T + matrix[:, 2]
    x1, y1, x2, y2 = face.box
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    box = np.array([*corners.min(axis=0), *corners.max(axis=0)], dtype=np.float32)
    return replace(face, box=box, kps=kps.astype(np.float32), tracked=True)


ENHANCER_FILE = "gfpgan/gfpgan_1.4.onnx"
"""GFPGAN 1.4 as exported to ONNX by FaceFusion (input 1x3x512x512 RGB in -1..1, output the same)."""

FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19366],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
"""Where GFPGAN's training crops (FFHQ, 512x512) put the eye centres, nose tip and mouth corners."""


class FaceEnhancer:
    """GFPGAN on aligned 512x512 face crops, with onnxruntime on the daemon's providers."""

    size = 512

    def __init__(self, path: Path, providers: Sequence[str]) -> None:
        import onnxruntime

        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name

    def alignment(self, face: Face) -> np.ndarray:
        """The 2x3 similarity that maps frame pixels to the 512x512 crop GFPGAN expects for ``face``."""
        import cv2

        matrix, _ = cv2.estimateAffinePartial2D(face.kps, FFHQ_TEMPLATE_512, method=cv2.LMEDS)
        if matrix is None:
            raise FaceModelError(f"could not align the face at {face.box.round().tolist()} for the enhancer")
        return matrix

    def enhance(self, rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The enhanced 512x512 RGB uint8 crop of ``rgb`` at ``matrix`` (frame -> crop)."""
        import cv2

        crop = cv2.warpAffine(rgb, matrix, (self.size, self.size), borderMode=cv2.BORDER_REPLICATE)
        blob = (crop.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[np.newaxis]
        restored = self.session.run(None, {self.input_name: blob})[0][0]
        restored = (np.clip(restored, -1.0, 1.0) + 1.0) * 127.5
        return np.round(restored).astype(np.uint8).transpose(1, 2, 0)
