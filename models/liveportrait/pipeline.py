"""The animation: a source portrait driven by the face in driving frames (the paper's Algorithm 1).

Per source image, once (:meth:`LivePortraitAnimator.set_source`): find and crop the face, extract its feature
volume (F) and motion (M), compute its keypoints ``x_s``, measure its eye and lip opening, and prepare the
paste-back mask.

Per driving frame (:meth:`LivePortraitAnimator.animate` for raw frames, :meth:`~LivePortraitAnimator.
animate_crop` for frames already cropped):

1. motion of the driving crop (M);
2. relative motion: rotation, expression, scale and translation of this frame relative to the reference frame
   (the first driving frame with a face), applied to the source (:func:`.keypoints.relative_keypoints`), limited
   to the chosen animation region;
3. retargeting and stitching, as the official pipeline combines them:

   - neither stitching nor retargeting: the driven keypoints as they are;
   - stitching only (the default): the stitching network corrects the driven keypoints;
   - eye and/or lip retargeting: the keypoints become the source's plus the retargeting offsets that give the
     source the driving face's eye opening (left eye's ratio) and/or lip opening, so these modes animate the
     eyes and mouth only, without head motion; then stitching if on.

   With ``normalize_lip`` (off by default, as in the official CLI; without retargeting) a source whose mouth is
   open (lip ratio >= 0.03) has it closed first by the lip network, so driving lip motion starts from closed;
4. ``x_d = x_s + (x_d - x_s) * motion_multiplier``;
5. warp the source volume from ``x_s`` to ``x_d`` (W), decode (G) to a 512x512 crop;
6. paste the crop back into the source image with the feathered mask (or return the crop).

Frames where the driving face is lost: until a first face is seen there is nothing to animate from and
:meth:`~LivePortraitAnimator.animate` returns ``None``; afterwards a frame without a face holds the last good
motion, so the previous animated frame is returned again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .crop import (
    CROP_SIZE,
    DRIVING_SCALE,
    DRIVING_VY,
    NETWORK_SIZE,
    SOURCE_SCALE,
    SOURCE_VY,
    CropTransform,
    FaceBox,
    FaceFinder,
    FaceLandmarks,
    InsightFaceFinder,
    MediaPipeFaceFinder,
    PasteBack,
    face_box,
)
from .keypoints import ANIMATION_REGIONS, Motion, relative_keypoints
from .loader import LivePortraitModels

LIP_NORMALIZE_THRESHOLD = 0.03
"""Source lip ratio from which ``normalize_lip`` closes the source's mouth before animating."""

FACE_FINDERS = ("mediapipe", "insightface")


class NoFaceFound(ValueError):
    """No face in the source image: nothing to animate."""


@dataclass(frozen=True)
class AnimationSettings:
    """What the driving motion does to the source. See the module docstring for each step."""

    region: str = "all"
    motion_multiplier: float = 1.0
    stitching: bool = True
    normalize_lip: bool = False
    eye_retargeting: bool = False
    lip_retargeting: bool = False
    paste_back: bool = True
    box_smoothing: float = 0.5
    """Per-frame driving crops only: weight of the previous box in the running average (0: no smoothing)."""

    def __post_init__(self) -> None:
        if self.region not in ANIMATION_REGIONS:
            raise ValueError(f"region must be one of {', '.join(ANIMATION_REGIONS)}, got {self.region!r}")
        if not 0.0 <= self.box_smoothing < 1.0:
            raise ValueError(f"box_smoothing must be in 0..1 (1 excluded), got {self.box_smoothing}")


@dataclass
class PreparedSource:
    """A source image ready to animate."""

    image: np.ndarray
    transform: CropTransform
    paste: PasteBack
    crop: np.ndarray  # CROP_SIZE x CROP_SIZE
    feature: torch.Tensor  # (1, 32, 16, 64, 64) in the models' dtype
    motion: Motion
    keypoints: torch.Tensor  # (1, 21, 3) float32
    eye_ratios: np.ndarray | None  # (2,) or None when no ratios could be measured
    lip_ratio: float | None
    lip_closing: torch.Tensor | None  # normalize_lip's offsets, when the source's mouth is open


def make_face_finder(
    kind: str, video: bool, insightface_dir: Path | None = None, providers: list[str] | None = None
) -> FaceFinder:
    """A face finder of ``kind`` (``mediapipe`` or ``insightface``); ``video`` for frames of one clip in order."""
    if kind == "mediapipe":
        return MediaPipeFaceFinder(video=video)
    if kind == "insightface":
        if insightface_dir is None:
            raise ValueError("the insightface finder needs the folder of its models")
        return InsightFaceFinder(insightface_dir, providers)
    raise ValueError(f"face finder must be one of {', '.join(FACE_FINDERS)}, got {kind!r}")


class LivePortraitAnimator:
    """Animates one source portrait, frame by frame. Not thread-safe: one caller at a time.

    ``on_step`` (optional) is called between network passes, so a caller can stop a long frame early by raising
    from it (a job's cancel check). Close the animator to release its face finders.
    """

    def __init__(
        self,
        models: LivePortraitModels,
        settings: AnimationSettings | None = None,
        face_finder: str = "mediapipe",
        insightface_dir: Path | None = None,
        providers: list[str] | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self.models = models
        self.settings = settings or AnimationSettings()
        self.face_finder = face_finder
        self._finder_args = (insightface_dir, providers)
        self._on_step = on_step or (lambda: None)
        self._source_finder: FaceFinder | None = None
        self._driving_finder: FaceFinder | None = None
        self._ratio_finder: FaceFinder | None = None
        self.source: PreparedSource | None = None
        self.reference: Motion | None = None
        self.last_output: np.ndarray | None = None
        self.last_driving: Motion | None = None
        self._box: FaceBox | None = None
        self.face_found = False
        """Whether the last frame given to :meth:`animate` had a face."""

    # -- public API ----------------------------------------------------------------------------------------

    def set_source(self, rgb: np.ndarray) -> PreparedSource:
        """Prepare ``rgb`` (H, W, 3 uint8) as the portrait to animate; raises :class:`NoFaceFound`. Resets the
        driving reference: the next driving face becomes the new reference."""
        if self._source_finder is None:
            self._source_finder = self.new_face_finder(video=False)
        landmarks = self._source_finder.find(rgb)
        if landmarks is None:
            raise NoFaceFound("no face found in the source image: use a portrait where the face is clearly visible")
        transform = CropTransform.from_box(face_box(landmarks, SOURCE_SCALE, SOURCE_VY), rotate=True)
        crop = transform.crop(rgb, CROP_SIZE)
        small = _area_resize(crop, NETWORK_SIZE)
        image = self._to_tensor(small)
        with torch.inference_mode():
            feature = self.models.appearance_feature_extractor(image)
            self._on_step()
            motion = Motion.from_extractor(self.models.motion_extractor(image))
        keypoints = motion.keypoints()
        eye_ratios, lip_ratio = self._ratios(landmarks, small)
        lip_closing = None
        if lip_ratio is not None and lip_ratio >= LIP_NORMALIZE_THRESHOLD:
            lip_closing = self._lip_delta(keypoints, lip_ratio, 0.0)
        height, width = rgb.shape[:2]
        self.source = PreparedSource(
            image=rgb,
            transform=transform,
            paste=PasteBack.for_source(transform, (width, height)),
            crop=crop,
            feature=feature,
            motion=motion,
            keypoints=keypoints,
            eye_ratios=eye_ratios,
            lip_ratio=lip_ratio,
            lip_closing=lip_closing,
        )
        self.reset_driving()
        return self.source

    def reset_driving(self) -> None:
        """Forget the driving reference, the held frame and the tracked box (a new driving clip starts)."""
        self.reference = None
        self.last_output = None
        self.last_driving = None
        self._box = None
        if self._driving_finder is not None:
            self._driving_finder.close()
            self._driving_finder = None

    def animate(self, driving_rgb: np.ndarray) -> np.ndarray | None:
        """One raw driving frame (H, W, 3 uint8) -> the animated frame, or ``None`` while no driving face has
        been seen. The face is tracked across calls; its box is smoothed by ``settings.box_smoothing``."""
        if self._driving_finder is None:
            self._driving_finder = self.new_face_finder(video=True)
        landmarks = self._driving_finder.find(driving_rgb)
        self.face_found = landmarks is not None
        if landmarks is None:
            return self.hold()
        box = face_box(landmarks, DRIVING_SCALE, DRIVING_VY)
        if self._box is not None and self.settings.box_smoothing > 0:
            keep = self.settings.box_smoothing
            box = FaceBox(
                *(
                    keep * old + (1 - keep) * new
                    for old, new in zip(_box_values(self._box), _box_values(box), strict=True)
                )
            )
        self._box = box
        crop = CropTransform.from_box(box, rotate=False).crop(driving_rgb, NETWORK_SIZE)
        return self.animate_crop(crop, landmarks)

    def animate_crop(self, driving_crop: np.ndarray, landmarks: FaceLandmarks | None = None) -> np.ndarray:
        """One driving face crop (256x256 uint8, framed as :mod:`.crop` describes) -> the animated frame.

        ``landmarks`` (of the driving face, in any pixel frame: only ratios are read) are needed for eye and
        lip retargeting; without them the crop is measured with MediaPipe when retargeting is on.
        """
        source = self._require_source()
        settings = self.settings
        with torch.inference_mode():
            driving = Motion.from_extractor(self.models.motion_extractor(self._to_tensor(driving_crop)))
        self._on_step()
        eye_ratios, lip_ratio = (None, None)
        if settings.eye_retargeting or settings.lip_retargeting:
            if landmarks is not None and landmarks.has_ratios:
                eye_ratios, lip_ratio = landmarks.eye_open_ratios(), landmarks.lip_open_ratio()
            else:
                eye_ratios, lip_ratio = self._ratios(None, driving_crop)
        crop = self.render(self.driven_keypoints(driving, eye_ratios, lip_ratio))
        output = source.paste.apply(crop, source.image) if settings.paste_back else crop
        self.last_output = output
        return output

    def driven_keypoints(self, driving: Motion, eye_ratios: np.ndarray | None, lip_ratio: float | None) -> torch.Tensor:
        """The keypoints (1, K, 3) the source is warped to for the driving face's ``driving`` motion and, for
        retargeting, its eye opening ratios (left, right) and lip opening ratio. The first driving motion since
        :meth:`reset_driving` becomes the reference the others are taken relative to."""
        source = self._require_source()
        settings = self.settings
        if self.reference is None:
            self.reference = driving
        self.last_driving = driving
        driven = relative_keypoints(source.motion, self.reference, driving, settings.region)
        x_s = source.keypoints
        if settings.eye_retargeting or settings.lip_retargeting:
            driven = x_s.clone()
            if settings.eye_retargeting and eye_ratios is not None and source.eye_ratios is not None:
                driven = driven + self._eye_delta(x_s, source.eye_ratios, float(eye_ratios[0]))
            if settings.lip_retargeting and lip_ratio is not None and source.lip_ratio is not None:
                driven = driven + self._lip_delta(x_s, source.lip_ratio, lip_ratio)
            if settings.stitching:
                driven = self._stitch(x_s, driven)
        else:
            if settings.stitching:
                driven = self._stitch(x_s, driven)
            if settings.normalize_lip and source.lip_closing is not None:
                driven = driven + source.lip_closing
        return x_s + (driven - x_s) * settings.motion_multiplier

    def hold(self) -> np.ndarray | None:
        """The frame for a driving frame without a face: the last animated frame, or ``None`` before any."""
        return self.last_output

    def still(self) -> np.ndarray:
        """The unanimated source as this animator outputs it (the image, or its crop without paste-back)."""
        source = self._require_source()
        return source.image if self.settings.paste_back else source.crop

    def render(self, driven: torch.Tensor) -> np.ndarray:
        """Warp the source volume to keypoints ``driven`` (1, 21, 3) and decode: a 512x512 RGB uint8 crop."""
        source = self._require_source()
        dtype = self.models.dtype
        with torch.inference_mode():
            warped = self.models.warping_module(
                source.feature, kp_driving=driven.to(dtype), kp_source=source.keypoints.to(dtype)
            )
            self._on_step()
            image = self.models.spade_generator(warped["out"])
        self._on_step()
        pixels = (image[0].float().clamp(0, 1) * 255).round().to(torch.uint8)
        return pixels.permute(1, 2, 0).cpu().numpy()

    def new_face_finder(self, video: bool) -> FaceFinder:
        """A face finder of this animator's kind; ``video`` for frames of one clip in order."""
        insightface_dir, providers = self._finder_args
        return make_face_finder(self.face_finder, video, insightface_dir, providers)

    def close(self) -> None:
        for finder in (self._source_finder, self._driving_finder, self._ratio_finder):
            if finder is not None:
                finder.close()
        self._source_finder = self._driving_finder = self._ratio_finder = None

    # -- helpers -------------------------------------------------------------------------------------------

    def _require_source(self) -> PreparedSource:
        if self.source is None:
            raise RuntimeError("set_source() must be called before animating")
        return self.source

    def _to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        return image.to(self.models.device, self.models.dtype) / 255.0

    def _ratios(self, landmarks: FaceLandmarks | None, crop: np.ndarray) -> tuple[np.ndarray | None, float | None]:
        """Eye and lip opening of a face: from its landmarks when they carry ratios, else measured on ``crop``
        with MediaPipe; ``(None, None)`` when no face is found there."""
        if landmarks is None or not landmarks.has_ratios:
            if self._ratio_finder is None:
                self._ratio_finder = MediaPipeFaceFinder(video=False)
            landmarks = self._ratio_finder.find(crop)
            if landmarks is None:
                return None, None
        return landmarks.eye_open_ratios(), landmarks.lip_open_ratio()

    def _stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            dtype = self.models.dtype
            return self.models.stitching_retargeting.stitch(x_s.to(dtype), x_d.to(dtype)).float()

    def _eye_delta(self, x_s: torch.Tensor, source_eyes: np.ndarray, target: float) -> torch.Tensor:
        ratios = torch.tensor([[float(source_eyes[0]), float(source_eyes[1]), target]], device=x_s.device)
        with torch.inference_mode():
            dtype = self.models.dtype
            return self.models.stitching_retargeting.eye_delta(x_s.to(dtype), ratios.to(dtype)).float()

    def _lip_delta(self, x_s: torch.Tensor, source_lip: float, target: float) -> torch.Tensor:
        ratios = torch.tensor([[source_lip, target]], device=x_s.device)
        with torch.inference_mode():
            dtype = self.models.dtype
            return self.models.stitching_retargeting.lip_delta(x_s.to(dtype), ratios.to(dtype)).float()


def _box_values(box: FaceBox) -> tuple[float, float, float, float]:
    return (box.cx, box.cy, box.size, box.angle)


def _area_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
