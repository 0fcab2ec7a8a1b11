"""The face mesh's 478 landmarks to the 52 ARKit blendshape values, relative to the take's own neutral face.

How: each frame's landmarks are put in the face's own frame (origin between the outer eye corners, x towards the
person's left, y up from chin to forehead, z out of the face; lengths in eye-corner distances), so head turns and
distance to the camera do not count. Geometric measures (eyelid gaps, iris offsets, brow heights, lip distances,
mouth-corner positions, chin position...) are taken there; the take's neutral is their median over its first
frames with a face (or the frames the user marked), so a resting face reads zero; each shape is a measure's change
from the neutral divided by the change that counts as fully on (:data:`FULL_SCALE`), clipped to 0..1. Then a gain
and smoothing per group (eyes, brows, mouth: the mouth group holds the jaw, cheeks and nose too): zero-phase over a
take (:mod:`.offline_filter`, no lag), the One Euro filter live, both with the group's cutoff.

``Left`` and ``Right`` are the person's own, as in ARKit. The mesh has no tongue: ``tongueOut`` is always 0.
All of it is numpy on whatever thread calls it. When the pose job carries MediaPipe's blendshape scores instead,
:mod:`.face_scores` takes them through the same gains and smoothing (:func:`finish_take`, :meth:`LiveFace.push_scores`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .filters import OneEuroFilter, OneEuroParams
from .offline_filter import zero_phase

ARKIT_SHAPES = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
"""Apple ARKit's 52 blendshape names, the names VRoid, Ready Player Me and most character exports give their shape
keys."""

GROUPS = ("eyes", "brows", "mouth")


def group_of(shape: str) -> str:
    """The gain and smoothing group of an ARKit shape."""
    if shape.startswith("eye"):
        return "eyes"
    if shape.startswith("brow"):
        return "brows"
    return "mouth"


GROUP_COLUMNS = {group: [i for i, name in enumerate(ARKIT_SHAPES) if group_of(name) == group] for group in GROUPS}
"""Group -> the columns of its shapes in a (..., 52) array."""


# Face-mesh points, the person's own sides (the person's right lies on the image's left).
EYE = {
    "Left": {"upper": 386, "lower": 374, "outer": 263, "inner": 362, "iris": 473},
    "Right": {"upper": 159, "lower": 145, "outer": 33, "inner": 133, "iris": 468},
}
BROW = {"Left": {"inner": 336, "middle": 334, "outer": 300}, "Right": {"inner": 107, "middle": 105, "outer": 70}}
MOUTH_CORNER = {"Left": 291, "Right": 61}
UPPER_LIP_SIDE = {"Left": 267, "Right": 37}
LOWER_LIP_SIDE = {"Left": 314, "Right": 84}
CHEEK = {"Left": 280, "Right": 50}
NOSE_WING = {"Left": 327, "Right": 98}
UPPER_LIP_OUTER, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_OUTER = 0, 13, 14, 17
CHIN, FOREHEAD, NOSE_TIP = 152, 10, 1
SIDE_WORDS = ("Left", "Right")
TOWARDS_LEFT = {"Left": 1.0, "Right": -1.0}
"""The face frame's x points to the person's left: the sign that turns an x offset outwards for each side."""

FULL_SCALE = {
    "eye_closing": 0.6,
    "eye_opening": 0.35,
    "lower_lid": 0.08,
    "look_sideways": 0.08,
    "look_vertical": 0.06,
    "jaw_open": 0.35,
    "lip_gap": 0.15,
    "jaw_sideways": 0.15,
    "jaw_forward": 0.15,
    "mouth_narrowing": 0.3,
    "mouth_sideways": 0.15,
    "corner_up": 0.1,
    "corner_down": 0.1,
    "corner_out": 0.15,
    "corner_back": 0.15,
    "lip_thinning": 0.5,
    "lip_raise": 0.12,
    "lip_press": 0.05,
    "brow_move": 0.12,
    "cheek_out": 0.1,
    "cheek_up": 0.15,
    "nose_wing_up": 0.06,
}
"""The change of each measure from the neutral (in eye-corner distances; for eyelid gaps and mouth width, as a
fraction of the neutral value) at which its shapes are fully on."""


DEFAULT_MIN_CUTOFF_HZ = {"eyes": 3.0, "brows": 1.5, "mouth": 3.0}
"""Group -> minimum cutoff (Hz) by default: eyes and mouth stay quick enough for blinks and speech."""


@dataclass(frozen=True)
class FaceOptions:
    gains: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 1.0))
    """Group -> factor on its shapes' values (then clipped to 0..1)."""
    min_cutoff_hz: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIN_CUTOFF_HZ))
    """Group -> minimum cutoff in Hz of its smoothing (0: none): zero-phase for a take, One Euro live."""
    neutral_frames: int = 15
    """How many of the first frames with a face make the neutral (unless ``neutral_indices`` is given)."""
    neutral_indices: tuple[int, ...] = ()
    """Take frame indices showing the resting face (the user's marks); overrides ``neutral_frames``."""
    name_map: Mapping[str, str] = field(default_factory=dict)
    """ARKit name -> the mesh's shape-key name, for meshes named otherwise."""
    use_model: bool = True
    """Take MediaPipe's blendshape scores where the pose job has them (:mod:`.face_scores`); False: always this
    module's estimate from the face mesh (which every job with the face has)."""


class FaceError(UserError, ValueError):
    """The face values cannot be made; the message says why and what to do."""


def parse_name_map(text: str) -> dict[str, str]:
    """``"jawOpen=MouthOpen, eyeBlinkLeft=Blink_L"`` to a dict. Raises FaceError naming a bad entry."""
    out = {}
    for entry in (part.strip() for part in text.replace(";", ",").split(",")):
        if not entry:
            continue
        arkit, _, key = (piece.strip() for piece in entry.partition("="))
        if arkit not in ARKIT_SHAPES or not key:
            raise FaceError(
                f"Name Map entry '{entry}' is not 'ARKit name=shape key' (ARKit names: eyeBlinkLeft, jawOpen, ...)"
            )
        out[arkit] = key
    return out


def face_frames(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(points in the face's frame (N, 478, 3) in eye-corner distances, valid (N,)) from pixel-scaled points."""
    right, left = points[:, EYE["Right"]["outer"]], points[:, EYE["Left"]["outer"]]
    origin = (right + left) / 2
    across = left - right
    scale = np.linalg.norm(across, axis=-1)
    x = across / np.where(scale > 0, scale, 1.0)[:, None]
    # Image y points down: "up" runs from the chin to the forehead, against it.
    up = points[:, FOREHEAD] - points[:, CHIN]
    up = up - np.sum(up * x, axis=-1, keepdims=True) * x
    up_length = np.linalg.norm(up, axis=-1)
    y = up / np.where(up_length > 0, up_length, 1.0)[:, None]
    z = np.cross(x, y)
    axes = np.stack([x, y, z], axis=1)  # rows: the face's axes
    local = np.einsum("nij,nkj->nki", axes, points - origin[:, None]) / np.where(scale > 0, scale, 1.0)[:, None, None]
    valid = (scale > 1e-6) & (up_length > 1e-6) & np.all(np.isfinite(points), axis=(1, 2))
    return local, valid


def measures(face: np.ndarray) -> dict[str, np.ndarray]:
    """Geometric measures (N,) of faces in their own frame (:func:`face_frames`)."""
    out: dict[str, np.ndarray] = {}

    def p(index: int) -> np.ndarray:
        return face[:, index]

    for side in SIDE_WORDS:
        eye = EYE[side]
        width = np.linalg.norm(p(eye["outer"]) - p(eye["inner"]), axis=-1)
        centre = (p(eye["outer"]) + p(eye["inner"])) / 2
        out[f"eye_gap_{side}"] = np.linalg.norm(p(eye["upper"]) - p(eye["lower"]), axis=-1) / width
        out[f"lower_lid_{side}"] = p(eye["lower"])[:, 1] - centre[:, 1]
        out[f"iris_out_{side}"] = (p(eye["iris"])[:, 0] - centre[:, 0]) * TOWARDS_LEFT[side]
        out[f"iris_up_{side}"] = p(eye["iris"])[:, 1] - centre[:, 1]
        brow = BROW[side]
        out[f"brow_inner_{side}"] = p(brow["inner"])[:, 1] - p(eye["inner"])[:, 1]
        out[f"brow_middle_{side}"] = p(brow["middle"])[:, 1] - centre[:, 1]
        out[f"brow_outer_{side}"] = p(brow["outer"])[:, 1] - p(eye["outer"])[:, 1]
        corner = p(MOUTH_CORNER[side])
        mouth_centre = (p(UPPER_LIP_INNER) + p(LOWER_LIP_INNER)) / 2
        out[f"corner_up_{side}"] = corner[:, 1] - mouth_centre[:, 1]
        out[f"corner_out_{side}"] = (corner[:, 0] - p(NOSE_TIP)[:, 0]) * TOWARDS_LEFT[side]
        out[f"corner_back_{side}"] = p(NOSE_TIP)[:, 2] - corner[:, 2]
        out[f"upper_lip_{side}"] = p(UPPER_LIP_SIDE[side])[:, 1] - p(NOSE_TIP)[:, 1]
        out[f"lower_lip_{side}"] = p(NOSE_TIP)[:, 1] - p(LOWER_LIP_SIDE[side])[:, 1]
        out[f"cheek_out_{side}"] = p(CHEEK[side])[:, 0] * TOWARDS_LEFT[side]
        out[f"cheek_up_{side}"] = p(CHEEK[side])[:, 1]
        out[f"nose_wing_{side}"] = p(NOSE_WING[side])[:, 1] - p(NOSE_TIP)[:, 1]
    out["jaw_drop"] = p(NOSE_TIP)[:, 1] - p(CHIN)[:, 1]
    out["jaw_sideways"] = p(CHIN)[:, 0] - p(NOSE_TIP)[:, 0]
    out["jaw_forward"] = p(CHIN)[:, 2]
    out["lip_gap"] = np.linalg.norm(p(UPPER_LIP_INNER) - p(LOWER_LIP_INNER), axis=-1)
    out["mouth_width"] = np.linalg.norm(p(MOUTH_CORNER["Left"]) - p(MOUTH_CORNER["Right"]), axis=-1)
    out["mouth_sideways"] = (p(MOUTH_CORNER["Left"])[:, 0] + p(MOUTH_CORNER["Right"])[:, 0]) / 2 - p(NOSE_TIP)[:, 0]
    out["upper_lip_thickness"] = np.linalg.norm(p(UPPER_LIP_OUTER) - p(UPPER_LIP_INNER), axis=-1)
    out["lower_lip_thickness"] = np.linalg.norm(p(LOWER_LIP_OUTER) - p(LOWER_LIP_INNER), axis=-1)
    out["upper_lip_height"] = p(UPPER_LIP_OUTER)[:, 1] - p(NOSE_TIP)[:, 1]
    out["lower_lip_height"] = p(LOWER_LIP_OUTER)[:, 1] - p(CHIN)[:, 1]
    return out


DEAD_ZONE = 0.3
"""Changes below this fraction of the full scale read zero: the mesh jitters by about that much from frame to frame
(measured on Megamind.avi), and a resting face must read zero."""


def _on(change: np.ndarray, full: str) -> np.ndarray:
    scale = FULL_SCALE[full]
    return np.clip((change - DEAD_ZONE * scale) / ((1.0 - DEAD_ZONE) * scale), 0.0, 1.0)


def shapes_from_changes(m: Mapping[str, np.ndarray], n: Mapping[str, float]) -> dict[str, np.ndarray]:
    """ARKit values (N,) from measures ``m`` and their neutral values ``n`` (scalars)."""
    out: dict[str, np.ndarray] = {}

    def d(name: str) -> np.ndarray:
        return m[name] - n[name]

    def ratio(name: str) -> np.ndarray:
        return m[name] / n[name] - 1.0 if n[name] > 1e-9 else np.zeros_like(m[name])

    lips_apart = _on(d("lip_gap"), "lip_gap")
    jaw_open = np.maximum(_on(d("jaw_drop"), "jaw_open"), lips_apart)
    narrowing = _on(-ratio("mouth_width"), "mouth_narrowing")
    for side in SIDE_WORDS:
        opening = ratio(f"eye_gap_{side}")
        blink = _on(-opening, "eye_closing")
        out[f"eyeBlink{side}"] = blink
        out[f"eyeWide{side}"] = _on(opening, "eye_opening")
        out[f"eyeSquint{side}"] = _on(d(f"lower_lid_{side}"), "lower_lid")
        # Behind a closing lid the iris is guessed: its gaze fades out as the eye closes.
        seen = 1.0 - blink
        out[f"eyeLookOut{side}"] = _on(d(f"iris_out_{side}"), "look_sideways") * seen
        out[f"eyeLookIn{side}"] = _on(-d(f"iris_out_{side}"), "look_sideways") * seen
        out[f"eyeLookUp{side}"] = _on(d(f"iris_up_{side}"), "look_vertical") * seen
        out[f"eyeLookDown{side}"] = _on(-d(f"iris_up_{side}"), "look_vertical") * seen
        brow = (d(f"brow_inner_{side}") + d(f"brow_middle_{side}") + d(f"brow_outer_{side}")) / 3
        out[f"browDown{side}"] = _on(-brow, "brow_move")
        out[f"browOuterUp{side}"] = _on(d(f"brow_outer_{side}"), "brow_move")
        smile = _on(d(f"corner_up_{side}"), "corner_up")
        out[f"mouthSmile{side}"] = smile
        out[f"mouthFrown{side}"] = _on(-d(f"corner_up_{side}"), "corner_down")
        out[f"mouthStretch{side}"] = _on(d(f"corner_out_{side}"), "corner_out") * (1.0 - smile)
        out[f"mouthDimple{side}"] = _on(d(f"corner_back_{side}"), "corner_back")
        out[f"mouthUpperUp{side}"] = _on(d(f"upper_lip_{side}"), "lip_raise")
        out[f"mouthLowerDown{side}"] = _on(-d(f"lower_lip_{side}") - d("jaw_drop"), "lip_raise")
        out[f"mouthPress{side}"] = _on(-d("lip_gap"), "lip_press") * (1.0 - jaw_open)
        out[f"cheekSquint{side}"] = _on(d(f"cheek_up_{side}"), "cheek_up")
        out[f"noseSneer{side}"] = _on(d(f"nose_wing_{side}"), "nose_wing_up")
    out["browInnerUp"] = _on((d("brow_inner_Left") + d("brow_inner_Right")) / 2, "brow_move")
    out["jawOpen"] = jaw_open
    out["jawLeft"] = _on(d("jaw_sideways"), "jaw_sideways")
    out["jawRight"] = _on(-d("jaw_sideways"), "jaw_sideways")
    out["jawForward"] = _on(d("jaw_forward"), "jaw_forward")
    out["mouthClose"] = np.clip(_on(d("jaw_drop"), "jaw_open") - lips_apart, 0.0, 1.0)
    out["mouthFunnel"] = narrowing * lips_apart
    out["mouthPucker"] = narrowing * (1.0 - lips_apart)
    out["mouthLeft"] = _on(d("mouth_sideways"), "mouth_sideways")
    out["mouthRight"] = _on(-d("mouth_sideways"), "mouth_sideways")
    out["mouthRollUpper"] = _on(-ratio("upper_lip_thickness"), "lip_thinning")
    out["mouthRollLower"] = _on(-ratio("lower_lip_thickness"), "lip_thinning")
    out["mouthShrugUpper"] = _on(d("upper_lip_height"), "lip_raise") * (1.0 - jaw_open)
    out["mouthShrugLower"] = _on(d("lower_lip_height"), "lip_raise") * (1.0 - jaw_open)
    out["cheekPuff"] = _on((d("cheek_out_Left") + d("cheek_out_Right")) / 2, "cheek_out")
    out["tongueOut"] = np.zeros_like(jaw_open)
    return out


@dataclass(frozen=True)
class FaceValues:
    """``values`` (N, 52) float32 in 0..1 under :data:`ARKIT_SHAPES`; ``present`` (N,) a face was measured (other
    frames hold the nearest measured values); ``neutral_frames`` the take frames the neutral came from (none for
    the model); ``source`` where the values come from: "landmarks" (this module) or "model" (:mod:`.face_scores`)."""

    values: np.ndarray
    present: np.ndarray
    neutral_frames: tuple[int, ...]
    source: str = "landmarks"


def finish_take(
    measured: np.ndarray, valid: np.ndarray, fps: float, options: FaceOptions, shot_starts: Sequence[int] = ()
) -> np.ndarray:
    """A take's values (N, 52) float32 in 0..1 from ``measured`` (M, 52), the values of the M frames where ``valid``
    (N,) is True: frames without a face hold the nearest measured frame's values (the one before, else the first),
    then each group's gain and zero-phase smoothing (within each shot)."""
    found = np.flatnonzero(valid)
    source = np.clip(np.searchsorted(found, np.arange(len(valid)), side="right") - 1, 0, None)
    values = np.array(measured, dtype=np.float64)[source]
    for group, columns in GROUP_COLUMNS.items():
        values[:, columns] *= options.gains.get(group, 1.0)
        cutoff = options.min_cutoff_hz.get(group, 0.0)
        if cutoff > 0 and len(values):
            values[:, columns] = zero_phase(values[:, columns], fps, OneEuroParams(min_cutoff=cutoff), shot_starts)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def solve_face(
    face_landmarks: np.ndarray,
    face_present: np.ndarray,
    image_size: tuple[float, float],
    fps: float,
    options: FaceOptions | None = None,
    shot_starts: Sequence[int] = (),
) -> FaceValues:
    """ARKit values for a take: ``face_landmarks`` (N, 478, 3) and ``face_present`` (N,) as the pose mode writes
    them, of frames ``image_size`` (width, height) pixels, at ``fps``; smoothing (zero-phase) runs within each shot,
    a new one starting at each of ``shot_starts`` (the frames after a cut).
    Raises FaceError when no frame has a face."""
    options = options or FaceOptions()
    width, height = image_size
    points = np.asarray(face_landmarks, dtype=np.float64) * np.array([width, height, width])
    local, valid = face_frames(points)
    valid &= np.asarray(face_present, dtype=bool)
    if not valid.any():
        raise FaceError("No frame of the take has a face: nothing to drive shape keys with (track the face first)")
    found = np.flatnonzero(valid)
    if options.neutral_indices:
        neutral = tuple(i for i in options.neutral_indices if 0 <= i < len(valid) and valid[i])
        if not neutral:
            raise FaceError(
                f"None of the marked neutral frames {list(options.neutral_indices)} has a face: mark frames that "
                "show the resting face"
            )
    else:
        neutral = tuple(int(i) for i in found[: options.neutral_frames])
    m = measures(local[valid])
    reference = {name: float(np.median(values[np.searchsorted(found, neutral)])) for name, values in m.items()}
    shapes = shapes_from_changes(m, reference)
    measured = np.stack([shapes[name] for name in ARKIT_SHAPES], axis=1)
    return FaceValues(finish_take(measured, valid, fps, options, shot_starts), valid, neutral)


class LiveFace:
    """The face one frame at a time, for live pose: the first ``options.neutral_frames`` frames with a face make
    the neutral (all values read zero until it is complete), then each frame's values, with the gains and a One
    Euro filter per group that keeps its state; a frame without a face holds the last values. Not thread-safe."""

    def __init__(self, options: FaceOptions | None = None) -> None:
        self.options = options or FaceOptions()
        self._samples: list[dict[str, np.ndarray]] = []
        self._reference: dict[str, float] | None = None
        self._filters = {
            group: OneEuroFilter(OneEuroParams(min_cutoff=cutoff))
            for group, cutoff in self.options.min_cutoff_hz.items()
            if cutoff > 0
        }
        self.values = np.zeros(len(ARKIT_SHAPES), dtype=np.float32)
        """The newest values (52,), under :data:`ARKIT_SHAPES`."""

    @property
    def calibrated(self) -> bool:
        return self._reference is not None

    def push(self, face_landmarks: np.ndarray, present: bool, size: tuple[float, float], time_s: float) -> np.ndarray:
        """One frame's ``face_landmarks`` (478, 3) (image coordinates) of a ``size`` (width, height) frame taken at
        ``time_s``: its values (52,) float32."""
        width, height = size
        points = np.asarray(face_landmarks, dtype=np.float64)[None] * np.array([width, height, width])
        local, valid = face_frames(points)
        if not (present and valid[0]):
            return self.values
        m = measures(local)
        if self._reference is None:
            self._samples.append(m)
            if len(self._samples) >= self.options.neutral_frames:
                names = self._samples[0]
                self._reference = {n: float(np.median([s[n][0] for s in self._samples])) for n in names}
            return self.values
        shapes = shapes_from_changes(m, self._reference)
        return self._finish(np.array([shapes[name][0] for name in ARKIT_SHAPES]), time_s)

    def push_scores(self, values: np.ndarray | None, time_s: float) -> np.ndarray:
        """One frame's ARKit values (52,) from MediaPipe's blendshape model (:func:`.face_scores.arkit_values`;
        None: no face, the last values hold), taken at ``time_s``: with the gains and filters, no neutral (the
        model reads a resting face as zero by itself; see :mod:`.face_scores`)."""
        if values is None:
            return self.values
        return self._finish(np.array(values, dtype=np.float64), time_s)

    def _finish(self, values: np.ndarray, time_s: float) -> np.ndarray:
        for group, columns in GROUP_COLUMNS.items():
            values[columns] *= self.options.gains.get(group, 1.0)
            if group in self._filters:
                values[columns] = self._filters[group](values[columns], time_s)
        self.values = np.clip(values, 0.0, 1.0).astype(np.float32)
        return self.values
