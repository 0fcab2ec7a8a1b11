"""Hands and face with the body: MediaPipe Holistic's landmarks in the pose mode's array layout.

Why Holistic (measured on Megamind.avi, 720x528, one CPU core, MediaPipe 0.10.21): body + both hands + the 478-point
face mesh take about 44 ms a frame in one Holistic graph against about 41 ms for the separate Pose, Hands and
FaceMesh graphs; the same cost, but Holistic crops each hand at the body's own wrist, so a hand is always the
person's (``left_hand_landmarks`` is the person's left hand, found at the pose's left wrist) and never a second
person's or a mirrored guess, as the separate Hands graph's handedness is. Body-only tracking keeps the Pose graph
(about 21 ms a frame): these parts cost only when asked for.

Arrays (N = frames; "image" convention: x and y normalised to the frame, 0..1, x right and y down; z the model's
relative depth, roughly the scale of x, smaller nearer the camera):

- ``hand_landmarks`` float32 (N, 2, 21, 3): ``[:, 0]`` the person's left hand, ``[:, 1]`` the right, in MediaPipe's
  hand order (:data:`HAND_LANDMARKS`: wrist, then thumb, index, middle, ring and pinky from knuckle to tip);
  z is relative to the wrist;
- ``hand_present`` bool (N, 2): the hand was found; where False its 21 points are NaN;
- ``face_landmarks`` float32 (N, 478, 3): the face mesh with irises (468 mesh points, then 5 per iris, the person's
  right iris first); z is relative to the face's centre;
- ``face_present`` bool (N,): a face was found; where False its points are NaN;
- ``face_blendshapes`` float32 (N, 51): with the face and MediaPipe's blendshape model (fetched, and ``face_shapes``
  ``auto``), its scores of the same face under ``shared.pose_data.FACE_SHAPE_NAMES`` (see
  :mod:`models.face_blendshapes`); NaN where it gave none.

Importing this module imports neither MediaPipe nor OpenCV.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from shared.pose_data import FACE_SHAPE_NAMES

from .face_blendshapes import SOURCES, FaceBlendshapes
from .runner import Param

HAND_POINTS = 21
FACE_POINTS = 478
HAND_SIDES = ("left", "right")
"""The order of the hands in ``hand_landmarks``: the person's own left, then right."""

HAND_LANDMARKS = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_mcp",
    "index_pip",
    "index_dip",
    "index_tip",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "middle_tip",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "ring_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)
"""MediaPipe's 21 hand landmarks, in its order."""

PARAMS = (
    Param(
        "hands",
        "bool",
        default=False,
        help="Also track both hands (21 points each, at the body's wrists) for finger animation.",
    ),
    Param(
        "face",
        "bool",
        default=False,
        help="Also track the face mesh (478 points with irises) for facial shape keys and face points in "
        "skeleton renders.",
    ),
    Param(
        "face_shapes",
        "choice",
        default="auto",
        choices=SOURCES,
        help="auto: the face's shape values come from MediaPipe's blendshape model when it is fetched "
        "(fetch-models face_blendshapes), else they are estimated from the face mesh; landmarks: always estimated "
        "from the face mesh.",
    ),
)
"""The pose mode's switches for the parts beyond the body; both off keeps the faster body-only graph."""


def wanted(params: Mapping[str, Any]) -> tuple[bool, bool]:
    """(hands, face) asked for by validated pose ``params`` (absent: off)."""
    return bool(params.get("hands", False)), bool(params.get("face", False))


def new_holistic(solutions: ModuleType, params: Mapping[str, Any]) -> Any:
    """A Holistic graph (``solutions`` is ``mediapipe.solutions``) with the pose mode's tracking options; the
    face mesh is refined to 478 points (irises included)."""
    return solutions.holistic.Holistic(
        static_image_mode=False,
        model_complexity=params["model_complexity"],
        smooth_landmarks=params["smooth_landmarks"],
        enable_segmentation=False,
        refine_face_landmarks=True,
        min_detection_confidence=params["min_detection_confidence"],
        min_tracking_confidence=params["min_tracking_confidence"],
    )


def _points(landmarks: Any, count: int) -> np.ndarray:
    if landmarks is None:
        return np.full((count, 3), np.nan, dtype=np.float32)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)


def frame_arrays(
    found: Any, hands: bool, face: bool, blendshapes: FaceBlendshapes | None = None, rgb: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The hand and face arrays of one Holistic result, without the frame axis: ``hand_landmarks`` (2, 21, 3),
    ``hand_present`` (2,), ``face_landmarks`` (478, 3), ``face_present`` () — only the parts asked for — and with
    ``blendshapes`` (and the frame ``rgb`` the result is of) ``face_blendshapes`` (51,)."""
    out: dict[str, np.ndarray] = {}
    if hands:
        sides = (found.left_hand_landmarks, found.right_hand_landmarks)
        out["hand_landmarks"] = np.stack([_points(side, HAND_POINTS) for side in sides])
        out["hand_present"] = np.array([side is not None for side in sides])
    if face:
        out["face_landmarks"] = _points(found.face_landmarks, FACE_POINTS)
        out["face_present"] = np.array(found.face_landmarks is not None)
        if blendshapes is not None and rgb is not None:
            points = out["face_landmarks"] if found.face_landmarks is not None else None
            scores = blendshapes.scores(rgb, points)
            out["face_blendshapes"] = (
                scores if scores is not None else np.full(len(FACE_SHAPE_NAMES), np.nan, dtype=np.float32)
            )
    return out


class PartsRecorder:
    """Collects :func:`frame_arrays` frame by frame and stacks them into the clip's arrays; with ``blendshapes``
    (the face on) also the model's scores of each frame's face."""

    def __init__(self, hands: bool, face: bool, blendshapes: FaceBlendshapes | None = None) -> None:
        self.hands, self.face = hands, face
        self.blendshapes = blendshapes if face else None
        self._rows: dict[str, list[np.ndarray]] = {}
        self.last: dict[str, np.ndarray] = {}
        """The arrays of the frame recorded last (empty before the first, or with no part asked for)."""

    @property
    def face_source(self) -> str | None:
        """Where the face's shape values come from: ``model`` (``face_blendshapes``), ``landmarks`` (the add-on
        estimates them from ``face_landmarks``), or None without the face."""
        if not self.face:
            return None
        return "model" if self.blendshapes is not None else "landmarks"

    def add(self, found: Any, rgb: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Record one Holistic result (of the RGB frame ``rgb``, which the blendshape model needs); returns its
        frame's arrays."""
        arrays = frame_arrays(found, self.hands, self.face, self.blendshapes, rgb)
        for name, value in arrays.items():
            self._rows.setdefault(name, []).append(value)
        self.last = arrays
        return arrays

    def arrays(self, only: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The clip's arrays (see the module docstring); empty ones with the right shape when no frame came.

        ``only`` bool (N,), one per recorded frame: keep the parts of these frames; the others' points are NaN and
        not present (the frames where the person the parts belong to was someone else, or nobody)."""
        shapes: dict[str, tuple[tuple[int, ...], type[np.generic]]] = {}
        if self.hands:
            shapes |= {"hand_landmarks": ((2, HAND_POINTS, 3), np.float32), "hand_present": ((2,), np.bool_)}
        if self.face:
            shapes |= {"face_landmarks": ((FACE_POINTS, 3), np.float32), "face_present": ((), np.bool_)}
        if self.blendshapes is not None:
            shapes["face_blendshapes"] = ((len(FACE_SHAPE_NAMES),), np.float32)
        out = {}
        for name, (shape, dtype) in shapes.items():
            rows = self._rows.get(name)
            out[name] = np.stack(rows) if rows else np.empty((0, *shape), dtype=dtype)
        if only is not None:
            for name, value in out.items():
                if len(value) != len(only):
                    raise ValueError(f"{name} has {len(value)} frames, only has {len(only)}")
                drop = ~np.asarray(only, dtype=bool)
                value[drop] = False if value.dtype == np.bool_ else np.nan
        return out
