"""The "face_swap" mode: the face of a reference image onto faces in every frame of a video.

Per frame: find the faces (insightface's SCRFD detector, or optical-flow tracking between detections), choose
the targets (all faces, or those whose ArcFace identity matches a chosen target face), swap each with
inswapper_128, correct the swapped crop's colours to the original face, optionally keep the original mouth,
paste it back through a feathered mask, and optionally restore detail with GFPGAN. Pixels outside the pasted
faces, and whole frames without a chosen face, are written back exactly as they came in.

Importing this module imports no heavy library: :meth:`FaceSwapRunner.load` imports insightface and
onnxruntime (through :mod:`models.face_swap.analysis`).
"""

from __future__ import annotations

import gc
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..frame_writer import FrameWriter
from ..runner import (
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
from ..torch_device import onnx_providers
from .analysis import (
    ENHANCER_FILE,
    OUTER_LIP_68,
    SWAPPER_FILES,
    Face,
    FaceEnhancer,
    FaceModels,
    FaceTracker,
    cosine_similarity,
    largest_face,
    left_to_right,
    scene_changed,
    thumbnail,
)
from .blend import crop_mask, mouth_mask, paste_back, transfer_colour

PREVIEW_EVERY_FRAMES = 10
SWAP_CROP = 128
"""inswapper_128's crop side, pixels."""

SWAPPER_MANIFEST_NAMES = {"fp32": "inswapper_128", "fp16": "inswapper_128_fp16"}


LIVE_DETECT_EVERY = 5
"""Live sessions detect every 5th frame and track faces in between: detection on every camera frame would cost
the frame rate. Jobs detect on every frame (``detect_every=1``), as insightface's own pipeline does."""


class FaceSwapRunner(Runner):
    """Swaps the face of ``reference`` onto the faces of ``video``; writes one output frame per input frame.

    Results (N = frames read, F = faces found over all frames, in frame order):

    - frames ``000000.png``... at the input's size, one per input frame;
    - ``detected`` bool (N,): the detector ran on that frame (otherwise its faces were tracked);
    - ``face_frame`` int32 (F,), ``face_box`` float32 (F, 4) x1, y1, x2, y2 in pixels, ``face_kps`` float32
      (F, 5, 2) eye centres, nose tip, mouth corners in pixels, ``face_score`` float32 (F,) detection score,
      ``face_similarity`` float32 (F,) cosine similarity to the target face (NaN unless ``target`` is
      matching), ``face_tracked`` bool (F,), ``face_swapped`` bool (F,).
    """

    mode = "face_swap"
    description = (
        "Put the face of a reference image onto the faces of a strip: all faces, or only those that match a "
        "chosen face; colour-corrected, feathered, optionally keeping the original mouth and enhanced."
    )
    params = (
        Param(
            "source_face_index",
            "int",
            default=-1,
            minimum=-1,
            maximum=63,
            help="Which face of the reference to use: -1 the largest, or 0, 1, ... counted from left to right.",
        ),
        Param(
            "target",
            "choice",
            default="all",
            choices=("all", "matching"),
            help="all: swap every face; matching: only faces like the target_face image (similarity_threshold).",
        ),
        Param(
            "similarity_threshold",
            "float",
            default=0.4,
            minimum=0.0,
            maximum=1.0,
            help="With target=matching: the cosine similarity (0..1) of identities above which a face is swapped.",
        ),
        Param(
            "colour_correction",
            "bool",
            default=True,
            help="Match the swapped face's colours (CIE Lab mean and spread) to the face it replaces.",
        ),
        Param(
            "mouth_mask",
            "bool",
            default=False,
            help="Keep the original mouth (teeth, tongue, lip sync); uses the 68-point landmarks.",
        ),
        Param(
            "blend_feather",
            "float",
            default=0.1,
            minimum=0.0,
            maximum=0.3,
            help="Width of the soft edge of the pasted face, as a fraction of the face crop (0 = hard edge).",
        ),
        Param(
            "detect_every",
            "int",
            default=1,
            minimum=1,
            maximum=120,
            help="Run the detector every N frames and track faces in between (1 = detect on every frame, as "
            "insightface does; live sessions default to 5). Detection also runs after a cut, when a face is lost, "
            "and while no face is tracked.",
        ),
        Param(
            "det_size",
            "int",
            default=640,
            minimum=160,
            maximum=1280,
            help="Side of the square the detector sees, pixels (a multiple of 32); larger finds smaller faces.",
        ),
        Param(
            "detection_threshold",
            "float",
            default=0.5,
            minimum=0.05,
            maximum=0.99,
            help="How sure the detector must be (0..1) that a face is there.",
        ),
        Param(
            "swapper_precision",
            "choice",
            default="auto",
            choices=("auto", "fp32", "fp16"),
            help="auto: the fp16 swapper on CUDA when installed, else fp32. fp16 needs fetch-models face_swap_fp16.",
        ),
        Param(
            "enhance",
            "bool",
            default=False,
            help="Restore the swapped faces with GFPGAN 1.4 (needs fetch-models face_enhance).",
        ),
        Param(
            "enhance_strength",
            "float",
            default=0.8,
            minimum=0.0,
            maximum=1.0,
            help="How much of the enhanced face to blend in (0..1), with enhance.",
        ),
    )
    inputs = (
        MediaSlot("video", "video", help="The footage whose faces are replaced: a strip, a video file or images."),
        MediaSlot("reference", "image", help="An image with the face to put in (its first frame if a video)."),
        MediaSlot(
            "target_face",
            "image",
            required=False,
            help="With target=matching: an image of the person whose faces are replaced.",
        ),
    )
    python_packages = ("insightface", "onnxruntime", "cv2")
    weights = ("buffalo_l-det_10g", "buffalo_l-w600k_r50", "buffalo_l-1k3d68", "inswapper_128")
    live_params = tuple(replace(p, default=LIVE_DETECT_EVERY) if p.name == "detect_every" else p for p in params)
    """The live variant takes every option of the offline mode, and the inputs ``reference`` and (with
    target=matching) ``target_face``; see :class:`LiveFaceSwap`."""

    def __init__(self) -> None:
        self._models: FaceModels | None = None
        self._enhancer: FaceEnhancer | None = None
        self._device: Any = None

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._check_values(super().validate(params))

    def validate_live(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._check_values(super().validate_live(params))

    def _check_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The checks across fields and files that the schema cannot express (also run for live options)."""
        if values["det_size"] % 32:
            nearest = max(160, round(values["det_size"] / 32) * 32)
            raise InvalidInput(
                "det_size",
                f"must be a multiple of 32 (the detector's coarsest stride), got {values['det_size']}; use {nearest}",
            )
        if values["swapper_precision"] == "fp16":
            self._require_file(
                "swapper_precision", SWAPPER_FILES["fp16"], "the fp16 swapper", "face_swap_fp16", "fp32 or auto"
            )
        if values["enhance"]:
            self._require_file("enhance", ENHANCER_FILE, "the face enhancer (GFPGAN 1.4)", "face_enhance", "false")
        return values

    def _require_file(self, field: str, relative: str, what: str, fetch: str, instead: str) -> None:
        path = self.models_dir / relative
        if not path.is_file():
            raise InvalidInput(
                field,
                f"{what} needs {path.name}, which is not installed (looked for {path}). "
                f"Run `python -m daemon fetch-models {fetch}`, or set {field} to {instead}.",
            )

    def load(self, device: Any) -> None:
        """Load the detector and recogniser on the device's onnxruntime providers; the landmark model, the
        swapper and the enhancer load on first use."""
        self._device = device
        self._models = FaceModels(self.models_dir, onnx_providers(device))

    def unload(self) -> None:
        if self._models is not None:
            self._models.close()
        self._models = None
        self._enhancer = None
        gc.collect()

    def start_live(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> LiveProcessor:
        """A live face swap of ``inputs["reference"]``'s face onto camera frames (:class:`LiveFaceSwap`). Raises
        :class:`InvalidInput` as :meth:`run` does, naming the option or input."""
        if self._models is None:
            raise RuntimeError("FaceSwapRunner.start_live() was called before load()")
        return LiveFaceSwap(self, params, inputs)

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        """Swap faces through ``inputs["video"]`` frame by frame on the calling thread.

        ``params`` must come from :meth:`validate` and ``inputs`` pass :meth:`check_media`. Raises
        :class:`InvalidInput` naming ``reference`` or ``target_face`` when that image shows no face, and
        ``source_face_index`` when the reference has fewer faces. Calls
        ``ctx.raise_if_cancelled()`` before each frame and ``ctx.progress`` after it, with the output frame as a
        preview every ``PREVIEW_EVERY_FRAMES`` frames.
        """
        if self._models is None:
            raise RuntimeError("FaceSwapRunner.run() was called before load()")
        models = self._models
        video = inputs["video"]

        # 1. The source identity, and the target identity when matching.
        ctx.progress(0.0, "finding the source face")
        target_embedding = self._target_identity(inputs, params)
        source, source_index, reference_faces = self._source_face(inputs["reference"], params)
        ctx.progress(0.0, "preparing the swapper")
        swapper = self._frame_swapper(params, source, target_embedding)

        # 2. Frame by frame: find or track, swap, paste, write.
        expected_frames = max(video.frame_count, 1)
        record = _FaceRecord()
        writer = FrameWriter(ctx.output_dir)
        frames = video.frames()
        try:
            for index, frame in enumerate(frames):
                ctx.raise_if_cancelled()
                output, faces, swapped, detected = swapper.process(frame)
                record.add(index, faces, swapped, detected)
                writer.write(index, output)
                ctx.progress(
                    min((index + 1) / expected_frames, 1.0),
                    "swapping faces",
                    preview=output if index % PREVIEW_EVERY_FRAMES == 0 else None,
                )
            writer.finish()
        finally:
            writer.close()
            # Stop the decoding thread now rather than when the generator is garbage collected.
            if isinstance(frames, Generator):
                frames.close()

        # 3. What was found and done, per frame and per face.
        width, height = video.size
        return RunResult(
            summary={
                "frame_count": record.frames,
                "width": width,
                "height": height,
                "fps": float(video.fps),
                "frames_with_faces": record.frames_with_faces,
                "frames_swapped": record.frames_swapped,
                "faces_swapped": record.faces_swapped,
                "detections": int(np.sum(record.detected)),
                "source_face": {
                    "index": source_index,
                    "faces_in_reference": reference_faces,
                    "box": [round(float(v), 1) for v in source.box],
                    "score": round(source.score, 4),
                },
                "target": params["target"],
                "swapper": SWAPPER_MANIFEST_NAMES[swapper.precision],
                "enhanced": swapper.enhancer is not None,
                "providers": list(models.providers),
            },
            arrays=record.arrays(),
            frame_count=record.frames,
        )

    def check_media(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> None:
        """Before the job is queued: ``target_face`` is given with target=matching, and only then (InvalidInput
        naming ``target_face``). The live variant checks it its own way (see :class:`LiveFaceSwap`)."""
        matching = params["target"] == "matching"
        if matching and "target_face" not in inputs:
            raise InvalidInput(
                "target_face", "target=matching needs a target_face image showing the person whose faces to swap"
            )
        if not matching and "target_face" in inputs:
            raise InvalidInput(
                "target_face", "is only used with target=matching; set target to matching, or leave target_face out"
            )

    def _target_identity(self, inputs: Mapping[str, Media], params: Mapping[str, Any]) -> np.ndarray | None:
        """The target_face image's identity with target=matching, else None."""
        self.check_media(params, inputs)  # cheap; callers outside the daemon get the same errors
        return self._target_embedding(inputs["target_face"], params) if params["target"] == "matching" else None

    def _frame_swapper(
        self, params: Mapping[str, Any], source: Face, target_embedding: np.ndarray | None
    ) -> FrameSwapper:
        """The per-frame worker for ``params``, with the swapper precision, the landmark model (mouth mask) and
        the enhancer it needs loaded."""
        assert self._models is not None
        precision = self._precision(params)
        self._models.swapper(precision)
        if params["mouth_mask"]:
            self._models.landmarks_model()
        enhancer = self._load_enhancer() if params["enhance"] else None
        return FrameSwapper(self._models, source, target_embedding, params, precision, enhancer)

    def _source_face(self, reference: Media, params: Mapping[str, Any]) -> tuple[Face, int, int]:
        """The chosen face of the reference image (with its embedding), its left-to-right index, and how many
        faces the reference has."""
        assert self._models is not None
        bgr = _first_frame_bgr(reference, "reference")
        faces = left_to_right(self._models.detect(bgr, params["det_size"], params["detection_threshold"]))
        if not faces:
            height, width = bgr.shape[:2]
            raise InvalidInput(
                "reference",
                f"no face was found in the reference image ({width}x{height}). Use an image where the face is "
                f"clearly visible and at least about 64 pixels wide, or lower detection_threshold "
                f"(now {params['detection_threshold']}).",
            )
        index = params["source_face_index"]
        if index >= len(faces):
            raise InvalidInput(
                "source_face_index",
                f"the reference image has {len(faces)} face(s), numbered 0..{len(faces) - 1} from left to right; "
                f"got {index}. Use -1 for the largest face.",
            )
        face = largest_face(faces) if index < 0 else faces[index]
        face.embedding = self._models.embed(bgr, face)
        return face, faces.index(face), len(faces)

    def _target_embedding(self, target_face: Media, params: Mapping[str, Any]) -> np.ndarray:
        """The identity of the largest face in the target_face image."""
        assert self._models is not None
        bgr = _first_frame_bgr(target_face, "target_face")
        faces = self._models.detect(bgr, params["det_size"], params["detection_threshold"])
        if not faces:
            height, width = bgr.shape[:2]
            raise InvalidInput(
                "target_face",
                f"no face was found in the target_face image ({width}x{height}). Use an image where the face is "
                "clearly visible, or lower detection_threshold.",
            )
        return self._models.embed(bgr, largest_face(faces))

    def _precision(self, params: Mapping[str, Any]) -> str:
        """The swapper precision to run: fp16 when asked, or on CUDA with the fp16 file installed."""
        chosen = params["swapper_precision"]
        if chosen == "fp16":
            self._require_file(
                "swapper_precision", SWAPPER_FILES["fp16"], "the fp16 swapper", "face_swap_fp16", "fp32 or auto"
            )
            return "fp16"
        on_cuda = getattr(self._device, "kind", None) == "cuda"
        if chosen == "auto" and on_cuda and (self.models_dir / SWAPPER_FILES["fp16"]).is_file():
            return "fp16"
        return "fp32"

    def _load_enhancer(self) -> FaceEnhancer:
        self._require_file("enhance", ENHANCER_FILE, "the face enhancer (GFPGAN 1.4)", "face_enhance", "false")
        if self._enhancer is None:
            self._enhancer = FaceEnhancer(self.models_dir / ENHANCER_FILE, onnx_providers(self._device))
        return self._enhancer


class FrameSwapper:
    """The per-video state of a face swap: which faces are tracked, and how each frame is processed.

    Detection runs on the first frame, then again after ``detect_every`` frames, after a cut, when a tracked
    face is lost, and on every frame while no face is tracked; in between, faces are followed with
    :class:`FaceTracker`, keeping the identity decided when they were detected.
    """

    def __init__(
        self,
        models: FaceModels,
        source: Face,
        target_embedding: np.ndarray | None,
        params: Mapping[str, Any],
        precision: str,
        enhancer: FaceEnhancer | None,
    ) -> None:
        self.models = models
        self.source = source
        self.target_embedding = target_embedding
        self.params = params
        self.precision = precision
        self.enhancer = enhancer
        self.tracker = FaceTracker()
        self.mask = crop_mask(SWAP_CROP, params["blend_feather"])
        self.enhance_mask = crop_mask(FaceEnhancer.size, max(params["blend_feather"], 0.05))
        self._since_detection = 0
        self._thumbnail: np.ndarray | None = None

    def continue_from(self, previous: FrameSwapper) -> None:
        """Go on following the faces ``previous`` follows (a live option changed that does not change which
        faces are found or compared), instead of detecting again on the next frame."""
        self.tracker = previous.tracker
        self._since_detection = previous._since_detection
        self._thumbnail = previous._thumbnail

    def process(self, frame: np.ndarray) -> tuple[np.ndarray, list[Face], list[bool], bool]:
        """One RGB frame -> (output frame, faces found, which of them were swapped, whether the detector ran).
        The output is ``frame`` itself when no face was swapped."""
        import cv2

        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        small = thumbnail(grey)
        cut = self._thumbnail is not None and scene_changed(self._thumbnail, small)
        self._thumbnail = small
        faces = None
        if self.tracker.faces and self._since_detection + 1 < self.params["detect_every"] and not cut:
            faces = self.tracker.follow(grey)
        bgr = None
        detected = faces is None
        if faces is None:
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            faces = self._detect(bgr)
            self.tracker.reset(grey, faces)
            self._since_detection = 0
        else:
            self._since_detection += 1
        swapped = [self._is_target(face) for face in faces]
        if not any(swapped):
            return frame, faces, swapped, detected
        if bgr is None:
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        output = frame.copy()
        targets = [face for face, chosen in zip(faces, swapped, strict=True) if chosen]
        for face in targets:
            self._swap_one(frame, bgr, output, face)
        if self.enhancer is not None:
            for face in targets:
                matrix = self.enhancer.alignment(face)
                paste_back(
                    output,
                    self.enhancer.enhance(output, matrix),
                    matrix,
                    self.enhance_mask,
                    self.params["enhance_strength"],
                )
        return output, faces, swapped, detected

    def _detect(self, bgr: np.ndarray) -> list[Face]:
        faces = self.models.detect(bgr, self.params["det_size"], self.params["detection_threshold"])
        if self.target_embedding is not None:
            for face in faces:
                face.embedding = self.models.embed(bgr, face)
                face.similarity = cosine_similarity(face.embedding, self.target_embedding)
        return faces

    def _is_target(self, face: Face) -> bool:
        if self.target_embedding is None:
            return True
        return face.similarity >= self.params["similarity_threshold"]

    def _swap_one(self, frame: np.ndarray, bgr: np.ndarray, output: np.ndarray, face: Face) -> None:
        """Swap ``face`` (found in ``frame``, whose BGR copy is ``bgr``) and paste it into ``output``."""
        import cv2

        crop_bgr, matrix = self.models.swap(bgr, face, self.source, self.precision)
        crop = np.ascontiguousarray(crop_bgr[..., ::-1])
        mask = self.mask
        if self.params["colour_correction"]:
            original = cv2.warpAffine(frame, matrix, (SWAP_CROP, SWAP_CROP))
            crop = transfer_colour(crop, original, mask)
        if self.params["mouth_mask"]:
            lips = self.models.landmarks68(bgr, face)[OUTER_LIP_68]
            lips_in_crop = lips @ matrix[:, :2].T + matrix[:, 2]
            mask = mask * (1.0 - mouth_mask(lips_in_crop, SWAP_CROP))
        paste_back(output, crop, matrix, mask)


IDENTITY_OPTIONS = ("source_face_index", "det_size", "detection_threshold")
"""Live options that choose the source face in the reference image."""
TARGET_OPTIONS = ("target", "det_size", "detection_threshold")
"""Live options that decide the target identity and which faces the detector finds and compares."""


class LiveFaceSwap(LiveProcessor):
    """Live face swap: camera frames through the offline mode's :class:`FrameSwapper`, so a live frame is swapped
    exactly as the same frame of a strip would be, with the same detection reuse (the detector every
    ``detect_every`` frames, optical-flow tracking in between, again after a cut or a lost face).

    Each result: ``frame`` uint8 (H, W, 3), the output at the camera's size (the camera frame itself, untouched,
    when no face was swapped); ``face_box`` float32 (F, 4), ``face_kps`` float32 (F, 5, 2) and ``face_swapped``
    bool (F,) of the faces found, in frame pixels as in the offline mode's arrays;
    data ``width``, ``height``, ``faces``, ``swapped``, ``detected`` (whether the detector ran on this frame).

    An option change keeps what it does not affect: the source identity unless ``source_face_index``,
    ``det_size`` or ``detection_threshold`` changed, the tracked faces unless ``target``, ``det_size`` or
    ``detection_threshold`` changed. Runs on the session's inference thread.
    """

    def __init__(self, runner: FaceSwapRunner, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> None:
        self.runner = runner
        self.inputs = inputs
        self.params = runner._check_values(dict(params))
        self.target_embedding = self._target_identity(self.params)
        self.source = self._reference_face(self.params)
        self.swapper = runner._frame_swapper(self.params, self.source, self.target_embedding)

    def _target_identity(self, params: Mapping[str, Any]) -> np.ndarray | None:
        # A target_face given with target=all is kept for a switch to matching later, not refused as in a job.
        return self.runner._target_identity(self.inputs, params) if params["target"] == "matching" else None

    def _reference_face(self, params: Mapping[str, Any]) -> Face:
        if "reference" not in self.inputs:
            raise InvalidInput("reference", "live face swap needs a reference image with the face to put in")
        return self.runner._source_face(self.inputs["reference"], params)[0]

    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        output, faces, swapped, detected = self.swapper.process(frame)
        height, width = frame.shape[:2]
        return LiveResult(
            data={
                "width": width,
                "height": height,
                "faces": len(faces),
                "swapped": sum(swapped),
                "detected": detected,
            },
            arrays={
                "frame": output,
                "face_box": np.array([face.box for face in faces], dtype=np.float32).reshape(-1, 4),
                "face_kps": np.array([face.kps for face in faces], dtype=np.float32).reshape(-1, 5, 2),
                "face_swapped": np.array(swapped, dtype=bool),
            },
        )

    def update(self, params: Mapping[str, Any]) -> None:
        values = self.runner._check_values(dict(params))
        if _changed(self.params, values, TARGET_OPTIONS):
            self.target_embedding = self._target_identity(values)
        if _changed(self.params, values, IDENTITY_OPTIONS):
            self.source = self._reference_face(values)
        swapper = self.runner._frame_swapper(values, self.source, self.target_embedding)
        if not _changed(self.params, values, TARGET_OPTIONS):
            swapper.continue_from(self.swapper)
        self.swapper, self.params = swapper, values


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], names: tuple[str, ...]) -> bool:
    return any(old[name] != new[name] for name in names)


@dataclass
class _FaceRecord:
    """Per-frame and per-face results, gathered as the frames go by."""

    detected: list[bool] = field(default_factory=list)
    rows: list[tuple[int, Face, bool]] = field(default_factory=list)
    frames_with_faces: int = 0
    frames_swapped: int = 0

    @property
    def frames(self) -> int:
        return len(self.detected)

    @property
    def faces_swapped(self) -> int:
        return sum(1 for _, _, swapped in self.rows if swapped)

    def add(self, index: int, faces: list[Face], swapped: list[bool], detected: bool) -> None:
        self.detected.append(detected)
        self.frames_with_faces += bool(faces)
        self.frames_swapped += any(swapped)
        self.rows += [(index, face, chosen) for face, chosen in zip(faces, swapped, strict=True)]

    def arrays(self) -> dict[str, np.ndarray]:
        faces = [face for _, face, _ in self.rows]
        return {
            "detected": np.array(self.detected, dtype=bool),
            "face_frame": np.array([index for index, _, _ in self.rows], dtype=np.int32),
            "face_box": np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4),
            "face_kps": np.array([f.kps for f in faces], dtype=np.float32).reshape(-1, 5, 2),
            "face_score": np.array([f.score for f in faces], dtype=np.float32),
            "face_similarity": np.array([f.similarity for f in faces], dtype=np.float32),
            "face_tracked": np.array([f.tracked for f in faces], dtype=bool),
            "face_swapped": np.array([chosen for _, _, chosen in self.rows], dtype=bool),
        }


def _first_frame_bgr(media: Media, name: str) -> np.ndarray:
    """The first frame of ``media`` as a BGR array (what insightface takes)."""
    import cv2

    frames = media.frames()
    try:
        frame = next(iter(frames), None)
    finally:
        if isinstance(frames, Generator):
            frames.close()
    if frame is None:
        raise InvalidInput(name, "has no frame; give an image file")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
