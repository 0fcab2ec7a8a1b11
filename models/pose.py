"""The "pose" mode: body landmarks per frame with MediaPipe Pose, and skeleton renders for control videos.

MediaPipe 0.10.21's legacy ``solutions.pose`` tracks the most prominent person of each frame. Its video mode
carries tracking state from frame to frame, so every run builds a fresh graph: two jobs never share state,
and the same frames always give the same landmarks.

Importing this module imports neither MediaPipe nor OpenCV; :meth:`PoseRunner.load` imports MediaPipe,
which brings OpenCV with it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Generator, Mapping
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from . import hands_face
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
from .skeleton import MEDIAPIPE_POSE_LANDMARKS, draw_face_points, draw_hands, draw_openpose, mediapipe_to_openpose18

LANDMARK_COUNT = 33

LANDMARK_MODEL_FILES = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}
"""The landmark model MediaPipe loads for each ``model_complexity``. The 0.10.21 wheel ships only the full
one; for the others MediaPipe would try to download into its own package folder, which a daemon must never
do behind the user's back, so :func:`require_landmark_model` refuses them when they are absent."""

MEDIAPIPE_ASSETS_URL = "https://storage.googleapis.com/mediapipe-assets/"
"""Where MediaPipe itself downloads the models its wheel leaves out."""

SKELETON_MIN_VISIBILITY = 0.5
"""Landmarks less visible than this are left out of skeleton renders, as MediaPipe's own drawing does: a
guessed, hidden limb in a control video makes the video model draw a limb that is not there."""

PREVIEW_EVERY_FRAMES = 10


def landmark_model_path(model_complexity: int) -> Path | None:
    """Where the installed MediaPipe keeps the landmark model for ``model_complexity``, or ``None`` when
    MediaPipe is not installed. Finds the package without importing it."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "modules" / "pose_landmark" / LANDMARK_MODEL_FILES[model_complexity]


def require_landmark_model(model_complexity: int) -> None:
    """Raise :class:`InvalidInput` on ``model_complexity`` if its landmark model is not installed."""
    path = landmark_model_path(model_complexity)
    if path is None or path.is_file():
        return
    raise InvalidInput(
        "model_complexity",
        f"model_complexity {model_complexity} needs {path.name}, which is not in {path.parent} "
        "(the MediaPipe 0.10.21 wheel ships only the full model, model_complexity 1). "
        f"Use model_complexity 1, or download {MEDIAPIPE_ASSETS_URL}{path.name} into that folder.",
    )


class PoseRunner(Runner):
    """Body landmarks of the most prominent person in each frame of ``video``.

    Results (N = frames read):

    - ``image_landmarks`` float32 (N, 33, 3): x and y normalised to the frame (0..1, x right, y down; a
      landmark off the frame lies outside 0..1), z MediaPipe's relative depth (hips' midpoint at 0, smaller
      is nearer the camera, roughly the scale of x);
    - ``world_landmarks`` float32 (N, 33, 3): metres, origin at the hips' midpoint, y down;
    - ``visibility`` float32 (N, 33): MediaPipe's 0..1 likelihood that the landmark is visible;
    - ``present`` bool (N,): a person was found. Where False, the three arrays above are NaN.

    With ``hands`` or ``face``, MediaPipe Holistic tracks the body with those parts, which add
    ``hand_landmarks``, ``hand_present``, ``face_landmarks`` and ``face_present`` (see :mod:`models.hands_face`).

    With ``render_skeleton``, frame ``i`` of the output is the OpenPose-style skeleton of input frame ``i``
    (see :mod:`models.skeleton`), at the input's size, on black or over the input frame, with the hands and face
    points drawn in the DWPose whole-body convention when they were tracked.
    """

    mode = "pose"
    description = (
        "Body landmarks per frame (33 MediaPipe points: 2D in the image and 3D in metres), "
        "with OpenPose-style skeleton renders for pose control videos."
    )
    params = (
        Param(
            "model_complexity",
            "int",
            default=1,
            minimum=0,
            maximum=2,
            help="0 lite (fastest), 1 full, 2 heavy (most accurate). Only 1 ships with MediaPipe.",
        ),
        Param(
            "min_detection_confidence",
            "float",
            default=0.5,
            minimum=0.0,
            maximum=1.0,
            help="How sure the detector must be (0..1) to start tracking a person.",
        ),
        Param(
            "min_tracking_confidence",
            "float",
            default=0.5,
            minimum=0.0,
            maximum=1.0,
            help="Below this (0..1) tracking counts as lost and the detector runs again on the next frame.",
        ),
        Param(
            "smooth_landmarks",
            "bool",
            default=True,
            help="Filter landmarks across frames to reduce jitter.",
        ),
        *hands_face.PARAMS,
        Param(
            "render_skeleton",
            "bool",
            default=True,
            help="Write an OpenPose-style skeleton image per frame.",
        ),
        Param(
            "skeleton_background",
            "choice",
            default="black",
            choices=("black", "overlay"),
            help="black: a control video for video models; overlay: the skeleton over the source frame.",
        ),
    )
    inputs = (MediaSlot("video", "video", help="The footage to track: a strip, a video file or images."),)
    python_packages = ("mediapipe", "cv2")
    bundled_licences: ClassVar[dict[str, str]] = {"MediaPipe Pose Landmarker (in the mediapipe wheel)": "Apache-2.0"}
    live_params = params[:6]
    """Live pose takes the tracking options and the parts; it renders nothing (the add-on poses the armature)."""

    def __init__(self) -> None:
        self._solutions: ModuleType | None = None

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = super().validate(params)
        require_landmark_model(values["model_complexity"])
        return values

    def load(self, device: Any) -> None:
        """Import MediaPipe. Its Python solutions run on the CPU whatever ``device`` is; their models live in
        the MediaPipe package and load with each run's graph."""
        import mediapipe

        self._solutions = mediapipe.solutions

    def unload(self) -> None:
        self._solutions = None

    def _new_tracker(self, params: Mapping[str, Any]) -> Any:
        """A Pose graph, or a Holistic one when hands or face are asked for."""
        if self._solutions is None:
            raise RuntimeError("PoseRunner was used before load()")
        if any(hands_face.wanted(params)):
            return hands_face.new_holistic(self._solutions, params)
        return self._solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=params["model_complexity"],
            smooth_landmarks=params["smooth_landmarks"],
            enable_segmentation=False,
            min_detection_confidence=params["min_detection_confidence"],
            min_tracking_confidence=params["min_tracking_confidence"],
        )

    def start_live(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> LiveProcessor:
        """A live tracker with its own graph (tracking state belongs to one camera stream)."""
        require_landmark_model(params["model_complexity"])
        return LivePose(self, params)

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        """Track the person through ``inputs["video"]``, one frame at a time on the calling thread.

        ``params`` must come from :meth:`validate`. Calls ``ctx.raise_if_cancelled()`` before each frame and
        ``ctx.progress`` after it, with a skeleton preview every ``PREVIEW_EVERY_FRAMES`` frames.
        """
        require_landmark_model(params["model_complexity"])
        video = inputs["video"]
        expected_frames = max(video.frame_count, 1)
        render = params["render_skeleton"]

        # 1. A fresh graph: video-mode tracking state belongs to one video.
        tracker = self._new_tracker(params)
        writer = FrameWriter(ctx.output_dir) if render else None
        parts = hands_face.PartsRecorder(*hands_face.wanted(params))
        frames = video.frames()
        image_rows: list[np.ndarray] = []
        world_rows: list[np.ndarray] = []
        visibility_rows: list[np.ndarray] = []
        present_rows: list[bool] = []
        try:
            # 2. Track frame by frame, writing each skeleton as it is drawn.
            for index, frame in enumerate(frames):
                ctx.raise_if_cancelled()
                found = tracker.process(np.ascontiguousarray(frame))
                image, world, visibility = _landmark_arrays(found)
                extra = parts.add(found)
                present_rows.append(found.pose_landmarks is not None)
                image_rows.append(image)
                world_rows.append(world)
                visibility_rows.append(visibility)

                wants_preview = index % PREVIEW_EVERY_FRAMES == 0
                skeleton = None
                background = params["skeleton_background"]
                if wants_preview:
                    skeleton = _draw_skeleton(frame, image, visibility, background, extra)
                if writer is not None and skeleton is not None:
                    writer.write(index, skeleton)
                elif writer is not None:  # drawn on the writer's threads, off this one
                    writer.write_drawn(index, partial(_draw_skeleton, frame, image, visibility, background, extra))
                ctx.progress(
                    min((index + 1) / expected_frames, 1.0),
                    "tracking",
                    preview=skeleton if wants_preview else None,
                )
            if writer is not None:
                writer.finish()
        finally:
            if writer is not None:
                writer.close()
            # Stop the decoding thread now rather than when the generator is garbage collected.
            if isinstance(frames, Generator):
                frames.close()
            tracker.close()

        # 3. Stack the per-frame rows into the result arrays.
        present = np.array(present_rows, dtype=bool)
        width, height = video.size
        return RunResult(
            summary={
                "frame_count": len(image_rows),
                "frames_with_person": int(present.sum()),
                "fps": float(video.fps),
                "width": width,
                "height": height,
                "landmark_names": list(MEDIAPIPE_POSE_LANDMARKS),
                "hands": parts.hands,
                "face": parts.face,
            },
            arrays={
                "image_landmarks": _stack(image_rows, (LANDMARK_COUNT, 3)),
                "world_landmarks": _stack(world_rows, (LANDMARK_COUNT, 3)),
                "visibility": _stack(visibility_rows, (LANDMARK_COUNT,)),
                "present": present,
                **parts.arrays(),
            },
            frame_count=len(image_rows) if render else 0,
        )


class LivePose(LiveProcessor):
    """Tracks a camera stream frame by frame. Results: ``present`` and the three landmark arrays of one frame."""

    def __init__(self, runner: PoseRunner, params: Mapping[str, Any]) -> None:
        self.runner = runner
        self.tracker = runner._new_tracker(params)
        self.parts = hands_face.wanted(params)

    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        found = self.tracker.process(np.ascontiguousarray(frame))
        image, world, visibility = _landmark_arrays(found)
        height, width = frame.shape[:2]
        return LiveResult(
            data={"present": found.pose_landmarks is not None, "width": width, "height": height},
            arrays={
                "image_landmarks": image,
                "world_landmarks": world,
                "visibility": visibility,
                **hands_face.frame_arrays(found, *self.parts),
            },
        )

    def update(self, params: Mapping[str, Any]) -> None:
        """MediaPipe fixes its options when the graph is built: build a new one with the new options."""
        self.tracker.close()
        self.tracker = self.runner._new_tracker(params)
        self.parts = hands_face.wanted(params)

    def close(self) -> None:
        self.tracker.close()


def _draw_skeleton(
    frame: np.ndarray,
    image_landmarks: np.ndarray,
    visibility: np.ndarray,
    background: str,
    parts: Mapping[str, np.ndarray],
) -> np.ndarray:
    """The skeleton of one frame at its size, on black or over ``frame`` (which is left unchanged): the body, then
    the hands and face points of ``parts`` (:func:`hands_face.frame_arrays`) where they were tracked."""
    canvas = frame if background == "overlay" else np.zeros_like(frame)
    height, width = frame.shape[:2]
    scale = np.array([width, height], dtype=np.float32)
    pixels = image_landmarks[:, :2] * scale
    skeleton = draw_openpose(canvas, mediapipe_to_openpose18(pixels, visibility, SKELETON_MIN_VISIBILITY))
    if "hand_landmarks" in parts:
        skeleton = draw_hands(skeleton, parts["hand_landmarks"][..., :2] * scale)
    if "face_landmarks" in parts:
        skeleton = draw_face_points(skeleton, parts["face_landmarks"][..., :2] * scale)
    return skeleton


def _landmark_arrays(found: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (33, 3), world (33, 3), visibility (33,)) float32 from one ``Pose.process`` result; all NaN
    when it found no person."""
    if found.pose_landmarks is None:
        missing = np.full((LANDMARK_COUNT, 3), np.nan, dtype=np.float32)
        return missing, missing.copy(), np.full(LANDMARK_COUNT, np.nan, dtype=np.float32)
    image_points = found.pose_landmarks.landmark
    image = np.array([(p.x, p.y, p.z) for p in image_points], dtype=np.float32)
    world = np.array([(p.x, p.y, p.z) for p in found.pose_world_landmarks.landmark], dtype=np.float32)
    visibility = np.array([p.visibility for p in image_points], dtype=np.float32)
    return image, world, visibility


def _stack(rows: list[np.ndarray], row_shape: tuple[int, ...]) -> np.ndarray:
    """Rows stacked on a new first axis; an empty (0, *row_shape) array when there are none."""
    if not rows:
        return np.empty((0, *row_shape), dtype=np.float32)
    return np.stack(rows)
