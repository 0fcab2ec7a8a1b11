"""The "liveportrait" mode: a source portrait animated by the face in a driving strip (LivePortrait).

The networks are our own code (:mod:`models.liveportrait`) running the official weights. Per job: the source's
face is found, cropped and encoded once; the driving strip is read twice, first to find its face in every frame
(MediaPipe's video tracking, about 10 ms a frame) and frame it with one box averaged over the strip, then to
animate each frame. Frame ``i`` of the output is driving frame ``i``'s motion on the source, pasted back into
the full source image (or the 512x512 face crop with ``paste_back`` off).

Driving frames without a face: before the first face is found the output is the unanimated source; after it,
a frame without a face holds the last good motion (repeats the last animated frame). ``driving_face_found`` in
the results says which frames had one.

Importing this module imports nothing heavy; :meth:`LivePortraitRunner.load` imports torch and the networks.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .frame_writer import FrameWriter
from .runner import (
    InvalidInput,
    LiveProcessor,
    LiveResult,
    Media,
    MediaSlot,
    Param,
    RunContext,
    Runner,
    RunResult,
)
from .torch_device import empty_accelerator_cache

if TYPE_CHECKING:
    from .liveportrait.pipeline import LivePortraitAnimator

WEIGHT_NAMES = (
    "liveportrait-appearance-feature-extractor",
    "liveportrait-motion-extractor",
    "liveportrait-warping-module",
    "liveportrait-spade-generator",
    "liveportrait-stitching-retargeting",
)
WEIGHTS_SUBDIR = "liveportrait"
"""The manifest puts the official files under ``<models dir>/liveportrait/`` in the official layout."""

FACE_SEARCH_SHARE = 0.1
"""Share of the progress bar given to the first pass (finding the driving face in every frame)."""


class LivePortraitRunner(Runner):
    """Results (N = driving frames read):

    - frames ``000000.png``...: the animated source, at the source image's size (or 512x512 crops);
    - ``driving_face_found`` bool (N,): a face was found in driving frame ``i`` (all True with
      ``driving_crop=none``, where frames are not searched);
    - ``driving_pose`` float32 (N, 3): the driving face's pitch, yaw and roll in degrees (NaN without a face).
    """

    mode = "liveportrait"
    description = (
        "Animate a portrait: the head pose and expressions of the face in a driving strip are transferred to "
        "the face in a source image (LivePortrait, official weights)."
    )
    params = (
        Param(
            "animation_region",
            "choice",
            default="all",
            choices=("all", "pose", "exp", "lip", "eyes"),
            help="What the driving face animates: all; head pose and position; expression; lips; eyes.",
        ),
        Param(
            "motion_multiplier",
            "float",
            default=1.0,
            minimum=0.0,
            maximum=3.0,
            help="Scales the driving motion (1: as driven, 0: the source as it is).",
        ),
        Param(
            "stitching",
            "bool",
            default=True,
            help="Keep the crop's border in line with the source so it pastes back without a seam.",
        ),
        Param(
            "normalize_lip",
            "bool",
            default=False,
            help="Close the source's mouth first if it is open, so driving lip motion starts from closed (off by "
            "default, as in the official LivePortrait CLI).",
        ),
        Param(
            "eye_retargeting",
            "bool",
            default=False,
            help="Eyes open and close as much as the driving face's (replaces the head and expression motion).",
        ),
        Param(
            "lip_retargeting",
            "bool",
            default=False,
            help="The mouth opens as much as the driving face's (replaces the head and expression motion).",
        ),
        Param(
            "paste_back",
            "bool",
            default=True,
            help="Paste the animated face into the full source image; off: output the 512x512 face crops.",
        ),
        Param(
            "driving_crop",
            "choice",
            default="average",
            choices=("average", "per_frame", "none"),
            help="Driving framing: one box for the strip (keeps head motion), a box per frame, or none "
            "(the frames are already face crops).",
        ),
        Param(
            "face_detector",
            "choice",
            default="mediapipe",
            choices=("mediapipe", "insightface"),
            help="mediapipe (bundled, offline) or insightface (needs its buffalo_l models, non-commercial).",
        ),
        Param(
            "compile",
            "bool",
            default=False,
            help="CUDA only: torch.compile the warping and generator networks (slow first frames, faster after).",
        ),
    )
    inputs = (
        MediaSlot("source", "image", help="The portrait to animate (one image with a face)."),
        MediaSlot("driving", "video", help="The face performance: a strip, a video file or images."),
    )
    python_packages = ("torch", "cv2", "mediapipe")
    weights = WEIGHT_NAMES
    bundled_licences: ClassVar[dict[str, str]] = {
        "MediaPipe Face Mesh (in the mediapipe wheel; face_detector=mediapipe)": "Apache-2.0",
        "insightface buffalo_l detector and landmarks (face_detector=insightface, supplied by you)": (
            "InsightFace pretrained models: non-commercial research use only "
            "(github.com/deepinsight/insightface#license)"
        ),
    }
    live_params = tuple(p for p in params if p.name != "driving_crop")
    """Live: the job's options except ``driving_crop`` (the camera's face is tracked frame by frame); the input
    ``source``; see :class:`LiveAnimation`."""

    def __init__(self) -> None:
        self._models: Any = None
        # The compiled variant of _models, made when a CUDA job first asks for compile. It never replaces the
        # eager networks, so every job (and live session) runs what it asked for.
        self._compiled: Any = None
        self._device: Any = None

    @property
    def weights_dir(self) -> Path:
        return self.models_dir / WEIGHTS_SUBDIR

    def insightface_dirs(self) -> list[Path]:
        """Where the insightface ``buffalo_l`` models are looked for, in order."""
        relative = Path("insightface") / "models" / "buffalo_l"  # where face_swap's manifest puts buffalo_l too
        return [self.models_dir / relative, Path.home() / f".{relative}"]

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = super().validate(params)
        if values["face_detector"] == "insightface":
            self._insightface_dir()
        return values

    def load(self, device: Any) -> None:
        """Import torch and load the five networks onto ``device`` in :func:`liveportrait_dtype`."""
        from .liveportrait.loader import load_liveportrait
        from .torch_device import torch_device

        self._models = load_liveportrait(self.weights_dir, torch_device(device), liveportrait_dtype(device))
        self._device = device

    def unload(self) -> None:
        models, self._models, self._compiled = self._models, None, None
        if models is None:
            return
        del models
        gc.collect()
        empty_accelerator_cache()

    def start_live(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> LiveProcessor:
        """A live animation of ``inputs["source"]`` by the camera's face (:class:`LiveAnimation`). Raises
        :class:`InvalidInput` naming ``source`` when it is missing or shows no face."""
        if self._models is None:
            raise RuntimeError("LivePortraitRunner.start_live() was called before load()")
        return LiveAnimation(self, params, inputs)

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        """Animate ``inputs["source"]`` with ``inputs["driving"]``; ``params`` from :meth:`validate`."""
        if self._models is None:
            raise RuntimeError("LivePortraitRunner.run() was called before load()")
        from .liveportrait.crop import CROP_SIZE
        from .liveportrait.keypoints import describe_pose
        from .liveportrait.pipeline import NoFaceFound

        animator = self.new_animator(params, ctx.device, on_step=ctx.raise_if_cancelled, log=ctx.log)
        models = animator.models
        settings = animator.settings
        driving = inputs["driving"]
        expected = max(driving.frame_count, 1)
        try:
            # 1. The source: found, cropped and encoded once.
            ctx.progress(0.0, "preparing source")
            source_rgb = _first_frame(inputs["source"])
            try:
                prepared = animator.set_source(source_rgb)
            except NoFaceFound as exc:
                raise InvalidInput("source", str(exc)) from exc

            # 2. The driving frames' faces (first pass), unless the frames are crops already.
            mode = params["driving_crop"]
            search = _find_driving_faces(driving, animator, ctx) if mode == "average" else None
            if search is not None and not any(lm is not None for lm in search.landmarks):
                raise InvalidInput(
                    "driving",
                    f"no face found in any of the {len(search.landmarks)} driving frames: use footage where a "
                    "face is clearly visible",
                )
            start = FACE_SEARCH_SHARE if search is not None else 0.0

            # 3. Animate frame by frame.
            found_rows: list[bool] = []
            pose_rows: list[np.ndarray] = []
            writer = FrameWriter(ctx.output_dir)
            frames = driving.frames()
            try:
                for index, frame in enumerate(frames):
                    ctx.raise_if_cancelled()
                    found, output = _animate_frame(animator, mode, frame, index, search)
                    if output is None:
                        output = animator.still()
                    found_rows.append(found)
                    driving_motion = animator.last_driving if found else None
                    if driving_motion is None:
                        pose_rows.append(np.full(3, np.nan, np.float32))
                    else:
                        pose_rows.append(driving_motion.pose_degrees()[0].cpu().numpy())
                    writer.write(index, output)
                    ctx.progress(start + (1 - start) * min((index + 1) / expected, 1.0), "animating", preview=output)
                writer.finish()
            finally:
                writer.close()
                if isinstance(frames, Generator):
                    frames.close()
        finally:
            animator.close()

        found_array = np.array(found_rows, dtype=bool)
        height, width = prepared.image.shape[:2] if settings.paste_back else (CROP_SIZE, CROP_SIZE)
        return RunResult(
            summary={
                "frame_count": len(found_rows),
                "fps": float(driving.fps),
                "width": int(width),
                "height": int(height),
                "frames_without_face": int((~found_array).sum()),
                "reference_frame": int(np.argmax(found_array)) if found_array.any() else None,
                "source_pose": describe_pose(prepared.motion),
                "device": str(models.device),
                "dtype": str(models.dtype).removeprefix("torch."),
                "grid_sample_fallback": models.grid_sample_fallback,
                "compiled": models.compiled,
            },
            arrays={
                "driving_face_found": found_array,
                "driving_pose": (np.stack(pose_rows) if pose_rows else np.empty((0, 3))).astype(np.float32),
            },
            frame_count=len(found_rows),
        )

    def new_animator(
        self,
        params: Mapping[str, Any],
        device: Any = None,
        on_step: Callable[[], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> LivePortraitAnimator:
        """A :class:`~models.liveportrait.pipeline.LivePortraitAnimator` on the loaded networks, set up from
        ``params`` (validated by :meth:`validate`; ``driving_crop`` is the caller's business). For the live mode
        as well as for jobs. ``device`` is the daemon's device description (for onnxruntime providers)."""
        if self._models is None:
            raise RuntimeError("LivePortraitRunner.new_animator() was called before load()")
        from .liveportrait.pipeline import AnimationSettings, LivePortraitAnimator

        settings = AnimationSettings(
            region=params["animation_region"],
            motion_multiplier=params["motion_multiplier"],
            stitching=params["stitching"],
            normalize_lip=params["normalize_lip"],
            eye_retargeting=params["eye_retargeting"],
            lip_retargeting=params["lip_retargeting"],
            paste_back=params["paste_back"],
        )
        return LivePortraitAnimator(
            self._networks(params["compile"], log),
            settings,
            face_finder=params["face_detector"],
            insightface_dir=self._insightface_dir() if params["face_detector"] == "insightface" else None,
            providers=list(getattr(device, "onnx_providers", None) or []) or None,
            on_step=on_step,
        )

    def _networks(self, compile: bool, log: Callable[[str], None] | None) -> Any:
        """The eager networks, or with ``compile`` on CUDA their compiled variant (made on first use)."""
        models = self._models
        if not compile:
            return models
        if models.device.type != "cuda":
            if log is not None:
                log(f"compile is for CUDA only; running without it on {models.device}")
            return models
        if self._compiled is None:
            from .liveportrait.loader import compiled_copy

            self._compiled = compiled_copy(models)
        return self._compiled

    def _insightface_dir(self) -> Path:
        from .liveportrait.crop import FaceFinderUnavailable, insightface_model_dir

        if importlib.util.find_spec("insightface") is None:
            raise InvalidInput("face_detector", "insightface is not installed; use face_detector=mediapipe")
        try:
            return insightface_model_dir(self.insightface_dirs())
        except FaceFinderUnavailable as exc:
            raise InvalidInput("face_detector", str(exc)) from exc


def liveportrait_dtype(device: Any) -> Any:
    """The torch dtype LivePortrait runs in on the daemon's ``device`` description (its ``kind``): float16 on
    CUDA, whatever the daemon's dtype policy says (the official inference's half precision is fp16; bf16, which
    the policy prefers where supported, keeps 3 fewer mantissa bits and is not what the released networks are
    run in), float32 on MPS (as the official code runs it there) and on the CPU."""
    import torch

    kind = getattr(device, "kind", None) or "cpu"
    return torch.float16 if kind == "cuda" else torch.float32


@dataclass(frozen=True)
class _FaceSearch:
    """The first pass over the driving strip: landmarks per frame (None without a face) and the crop
    transform of the box averaged over the frames with a face (None when there are none)."""

    landmarks: list[Any]
    transform: Any


def _find_driving_faces(driving: Media, animator: Any, ctx: RunContext) -> _FaceSearch:
    from .liveportrait.crop import DRIVING_SCALE, DRIVING_VY, CropTransform, average_box, face_box

    finder = animator.new_face_finder(video=True)
    landmarks: list[Any] = []
    expected = max(driving.frame_count, 1)
    frames = driving.frames()
    try:
        for index, frame in enumerate(frames):
            ctx.raise_if_cancelled()
            landmarks.append(finder.find(frame))
            if index % 10 == 0:
                ctx.progress(FACE_SEARCH_SHARE * min(index / expected, 1.0), "finding driving faces")
    finally:
        finder.close()
        if isinstance(frames, Generator):
            frames.close()
    boxes = [face_box(lm, DRIVING_SCALE, DRIVING_VY) for lm in landmarks if lm is not None]
    transform = CropTransform.from_box(average_box(boxes), rotate=False) if boxes else None
    return _FaceSearch(landmarks, transform)


def _animate_frame(
    animator: Any, mode: str, frame: np.ndarray, index: int, search: _FaceSearch | None
) -> tuple[bool, np.ndarray | None]:
    """(face found, output or None before the first face) for driving frame ``index``."""
    from .liveportrait.crop import NETWORK_SIZE

    if mode == "per_frame":
        output = animator.animate(frame)
        return animator.face_found, output
    if mode == "none":
        return True, animator.animate_crop(_square_resize(frame, NETWORK_SIZE))
    assert search is not None
    landmarks = search.landmarks[index] if index < len(search.landmarks) else None
    if landmarks is None:
        return False, animator.hold()
    return True, animator.animate_crop(search.transform.crop(frame), landmarks)


def _square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centred square of ``rgb``, resized to ``size`` x ``size``."""
    import cv2

    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(rgb[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def _first_frame(media: Media) -> np.ndarray:
    frames: Iterator[np.ndarray] = media.frames()
    try:
        return next(iter(frames))
    except StopIteration:
        raise InvalidInput("source", "the source image has no frame") from None
    finally:
        if isinstance(frames, Generator):
            frames.close()


ANIMATOR_OPTIONS = ("face_detector", "compile")
"""Live options that need a new animator (and the source prepared again); the others only change its settings."""


class LiveAnimation(LiveProcessor):
    """Live LivePortrait: the source portrait animated by the face the camera sees, with the animator jobs use.

    The camera's face is found and tracked frame by frame (the animator's own tracking, as with
    ``driving_crop=per_frame``). The first frame with a face is the driving reference: the pose the source keeps
    when the performer holds still, so start facing the camera with a neutral expression. Until a face is seen the
    result is the unanimated source; a frame without a face holds the last animated frame.

    Each result: ``frame`` uint8 (H, W, 3), the source's size with paste_back, else the 512x512 crop; data
    ``face_found``, ``width``, ``height``. Runs on the session's inference thread.
    """

    def __init__(self, runner: LivePortraitRunner, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> None:
        if "source" not in inputs:
            raise InvalidInput("source", "live LivePortrait needs a source image: the portrait to animate")
        self.runner = runner
        self.source = _first_frame(inputs["source"])
        self.params = dict(params)
        self.animator = self._new_animator(self.params)

    def _new_animator(self, params: Mapping[str, Any]) -> Any:
        from .liveportrait.pipeline import NoFaceFound

        animator = self.runner.new_animator(params, self.runner._device)
        try:
            animator.set_source(self.source)
        except NoFaceFound as exc:
            animator.close()
            raise InvalidInput("source", str(exc)) from exc
        return animator

    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        output = self.animator.animate(frame)
        found = self.animator.face_found
        if output is None:
            output = self.animator.still()
        height, width = output.shape[:2]
        return LiveResult(
            data={"face_found": found, "width": width, "height": height},
            arrays={"frame": np.ascontiguousarray(output)},
        )

    def update(self, params: Mapping[str, Any]) -> None:
        """Settings change in place, keeping the driving reference; a new face detector (or compile) starts over
        with the source prepared again."""
        values = dict(params)
        if any(values[name] != self.params[name] for name in ANIMATOR_OPTIONS):
            animator = self._new_animator(values)
            self.animator.close()
            self.animator = animator
        else:
            fresh = self.runner.new_animator(values, self.runner._device)  # no face finder is opened until used
            self.animator.settings = fresh.settings
            fresh.close()
        self.params = values

    def close(self) -> None:
        self.animator.close()
