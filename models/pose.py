"""The "pose" mode: body landmarks per frame with MediaPipe Pose, and skeleton renders for control videos.

MediaPipe 0.10.21's legacy ``solutions.pose`` tracks the most prominent person of each frame. Its video mode
carries tracking state from frame to frame, so every run builds a fresh graph: two jobs never share state,
and the same frames always give the same landmarks. Shot cuts are found on the decoded frames
(:mod:`.shot_cuts`, on the decoding thread) and the graph is rebuilt at each, so no tracking or landmark smoothing
crosses a cut (the next shot's graph is built ahead, :mod:`.graph_ahead`); people are followed as tracks that never
switch person (:mod:`.person_tracks`).

Importing this module imports neither MediaPipe nor OpenCV; :meth:`PoseRunner.load` imports MediaPipe,
which brings OpenCV with it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Generator, Mapping
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from shared.png import IndexedImage

from . import face_blendshapes, hands_face
from .frame_writer import FrameWriter
from .graph_ahead import GraphAhead
from .native_memory import release_freed_memory
from .person_tracks import PEOPLE_MODES, PeopleTracker, draw_track_number
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
from .shot_cuts import ShotCutDetector
from .skeleton import (
    MEDIAPIPE_POSE_LANDMARKS,
    draw_face_points,
    draw_hands,
    draw_on_black,
    draw_openpose,
    mediapipe_to_openpose18,
)

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

    These four follow one person: the largest track (``summary["default_track"]``). Every track, T of them:
    ``track_image_landmarks`` and ``track_world_landmarks`` (T, N, 33, 3), ``track_visibility`` (T, N, 33),
    ``track_boxes`` (T, N, 4: x0, y0, x1, y1 pixels), ``track_present`` (T, N); ``summary["tracks"]`` describes
    them (number, frames, first and last frame, median height in pixels). ``summary["shot_starts"]``: the frames
    that begin a shot (0 and each frame after a cut); ``shot_cut_distance`` (N,) float32 the colour distance of
    each frame to the one before (:mod:`.shot_cuts`).

    With ``hands`` or ``face``, MediaPipe Holistic tracks the body with those parts, which add
    ``hand_landmarks``, ``hand_present``, ``face_landmarks`` and ``face_present`` (see :mod:`models.hands_face`)
    for the main person only, aligned with ``image_landmarks``: in a frame where the main track has the person,
    that frame's hands and face (where Holistic found them); in every other frame (nobody, or someone the main
    track does not follow) NaN points and not present. ``summary["hands"]`` and ``summary["face"]`` say which
    parts were tracked. With the face, MediaPipe's blendshape model fetched (``fetch-models face_blendshapes``) and
    ``face_shapes`` "auto", ``face_blendshapes`` holds its scores of that face (:mod:`models.face_blendshapes`);
    ``summary["face_source"]`` says "model" then, "landmarks" when the add-on estimates the shapes from the mesh.
    Parts need ``people`` "one": with "all" they are refused (:meth:`validate`), since each person's crop would
    need its own Holistic graph and its parts mapped back out of the crop.

    With ``render_skeleton``, frame ``i`` of the output is the OpenPose-style skeleton of input frame ``i``
    (see :mod:`models.skeleton`), at the input's size, on black or over the input frame, with the hands and face
    points drawn in the DWPose whole-body convention when they were tracked (for the person MediaPipe follows in
    that frame); with ``people`` "all" every track's skeleton, and over the frame its track number (to pick a
    person by number).
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
            "people",
            "choice",
            default="one",
            choices=PEOPLE_MODES,
            help="one: the most prominent person (MediaPipe); all: every standing or walking person, each a track "
            "(OpenCV's HOG people detector, slower).",
        ),
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
    live_params = params[:7]
    """Live pose takes the tracking options and the parts; it renders nothing (the add-on poses the armature)."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """As :meth:`Runner.describe`, with ``model_complexity`` narrowed to the values whose landmark model this
        MediaPipe has (only 1 in the 0.10.21 wheel), so that a UI built from it offers only values that work."""
        info = super().describe()
        installed = [c for c in LANDMARK_MODEL_FILES if (path := landmark_model_path(c)) is not None and path.is_file()]
        for param in (*info["params"], *(info["live"] or ())):
            if param["name"] == "model_complexity" and installed:
                param["minimum"], param["maximum"] = min(installed), max(installed)
        return info

    def __init__(self) -> None:
        self._solutions: ModuleType | None = None

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = super().validate(params)
        require_landmark_model(values["model_complexity"])
        asked = [name for name, on in zip(("hands", "face"), hands_face.wanted(values), strict=True) if on]
        if values["people"] == "all" and asked:
            named = " and ".join(asked)
            raise InvalidInput(
                "people",
                f"people=all tracks bodies only, but {named} {'is' if len(asked) == 1 else 'are'} on: use people=one "
                f"for the main person's {named}, or turn {named} off to track everyone",
            )
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

        # 1. Fresh graphs: video-mode tracking state belongs to one video (and to one shot of it).
        # With people "one" the tracker calls its one whole-frame graph once per frame, so the recorder gets one
        # row per frame, aligned with the tracks' frames ("all" has no parts: see validate).
        parts = hands_face.PartsRecorder(*hands_face.wanted(params), face_blendshapes.open_for(self.models_dir, params))
        # Cuts are found as frames are decoded, ahead of the tracking: the graph for the next shot is built before
        # the job reaches it (see .graph_ahead).
        cuts = ShotCutDetector()
        frames = video.frames(on_decoded=cuts.push)
        graphs = GraphAhead(lambda: _PoseGraph(self._new_tracker(params), parts.add, video.size))
        people = PeopleTracker(params["people"], graphs.take, video.size, video.fps)
        numbered = params["people"] == "all"
        writer = FrameWriter(ctx.output_dir) if render else None
        count = 0
        try:
            # 2. Find cuts and track people frame by frame, writing each skeleton as it is drawn.
            for index, frame in enumerate(frames):
                ctx.raise_if_cancelled()
                rgb = np.ascontiguousarray(frame)
                found = people.push(index, rgb, cuts.new_shot[index])
                count = index + 1
                if people.rebuilds_at_a_cut and not graphs.pending and cuts.cut_after(index):
                    graphs.prepare()
                # What to draw, taken now: the tracks move on while the writer's threads draw.
                bodies = [(t.frames[index][0], t.frames[index][2], t.frames[index][3], t.number) for t in found]
                extra = parts.last if found else {}
                draw = partial(_draw_people, frame, bodies, params["skeleton_background"], numbered, extra)
                wants_preview = index % PREVIEW_EVERY_FRAMES == 0
                skeleton = draw() if wants_preview else None
                if writer is not None and skeleton is not None:
                    writer.write(index, skeleton)
                elif writer is not None:  # drawn on the writer's threads, off this one
                    writer.write_drawn(index, draw)
                ctx.progress(
                    min((index + 1) / expected_frames, 1.0),
                    "tracking",
                    preview=skeleton.rgb() if isinstance(skeleton, IndexedImage) else skeleton,
                )
            if writer is not None:
                writer.finish()
        finally:
            if writer is not None:
                writer.close()
            # Stop the decoding thread now rather than when the generator is garbage collected.
            if isinstance(frames, Generator):
                frames.close()
            people.close()
            graphs.close()
            if parts.blendshapes is not None:
                parts.blendshapes.close()

        # 3. The tracks as arrays; the largest person's as the main ones.
        tracks = people.arrays(count)
        chosen = people.default_track()
        if chosen >= 0:
            main = [tracks[f"track_{name}"][chosen] for name in ("image_landmarks", "world_landmarks", "visibility")]
            present = tracks["track_present"][chosen]
        else:
            main = [
                np.full((count, LANDMARK_COUNT, 3), np.nan, dtype=np.float32),
                np.full((count, LANDMARK_COUNT, 3), np.nan, dtype=np.float32),
                np.full((count, LANDMARK_COUNT), np.nan, dtype=np.float32),
            ]
            present = np.zeros(count, dtype=bool)
        width, height = video.size
        return RunResult(
            summary={
                "frame_count": count,
                "frames_with_person": int(present.sum()),
                "fps": float(video.fps),
                "width": width,
                "height": height,
                "landmark_names": list(MEDIAPIPE_POSE_LANDMARKS),
                "shot_starts": cuts.shot_starts,
                "tracks": [
                    {
                        "number": track.number,
                        "frames": len(track.frames),
                        "first_frame": min(track.frames),
                        "last_frame": max(track.frames),
                        "median_height_px": round(track.median_height_px, 1),
                    }
                    for track in people.tracks
                ],
                "default_track": chosen,
                "hands": parts.hands,
                "face": parts.face,
                "face_source": parts.face_source,
            },
            arrays={
                "image_landmarks": main[0],
                "world_landmarks": main[1],
                "visibility": main[2],
                "present": present,
                "shot_cut_distance": np.array(cuts.distances, dtype=np.float32),
                **tracks,
                **parts.arrays(only=present),
            },
            frame_count=count if render else 0,
        )


class _PoseGraph:
    """One MediaPipe pose graph as :data:`models.person_tracks.PoseFn`, with ``close``; each result (Pose or
    Holistic) also goes to ``on_result`` with its frame, which records its hands and face. ``size`` is the
    frames' (width, height)."""

    def __init__(self, tracker: Any, on_result: Callable[[Any, np.ndarray], object], size: tuple[int, int]) -> None:
        self.tracker = tracker
        self.on_result = on_result
        self.size = size

    def warm(self) -> None:
        """Run one black frame of the job's size, not recorded: MediaPipe sets the graph up on its first frame,
        and a graph that found nobody is as fresh as before (see :mod:`.graph_ahead`)."""
        width, height = self.size
        self.tracker.process(np.zeros((height, width, 3), dtype=np.uint8))

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        found = self.tracker.process(rgb)
        self.on_result(found, rgb)
        return None if found.pose_landmarks is None else _landmark_arrays(found)

    def close(self) -> None:
        _close_graph(self.tracker)


class LivePose(LiveProcessor):
    """Tracks a camera stream frame by frame. Results: ``present`` and the three landmark arrays of one frame, the
    parts asked for (with ``face_blendshapes`` as in :class:`PoseRunner`), and ``face_source`` as in its summary."""

    def __init__(self, runner: PoseRunner, params: Mapping[str, Any]) -> None:
        self.runner = runner
        self.tracker = runner._new_tracker(params)
        self.parts = hands_face.PartsRecorder(
            *hands_face.wanted(params), face_blendshapes.open_for(runner.models_dir, params)
        )

    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        rgb = np.ascontiguousarray(frame)
        found = self.tracker.process(rgb)
        image, world, visibility = _landmark_arrays(found)
        height, width = frame.shape[:2]
        parts = hands_face.frame_arrays(found, self.parts.hands, self.parts.face, self.parts.blendshapes, rgb)
        return LiveResult(
            data={
                "present": found.pose_landmarks is not None,
                "width": width,
                "height": height,
                "face_source": self.parts.face_source,
            },
            arrays={"image_landmarks": image, "world_landmarks": world, "visibility": visibility, **parts},
        )

    def update(self, params: Mapping[str, Any]) -> None:
        """MediaPipe fixes its options when the graph is built: build a new one with the new options."""
        self.close()
        self.tracker = self.runner._new_tracker(params)
        self.parts = hands_face.PartsRecorder(
            *hands_face.wanted(params), face_blendshapes.open_for(self.runner.models_dir, params)
        )

    def close(self) -> None:
        self.tracker.close()
        if self.parts.blendshapes is not None:
            self.parts.blendshapes.close()


def _close_graph(tracker: Any) -> None:
    """Close a MediaPipe graph and give the ~120 MB it freed back to the system: a job builds one per shot, and
    without this the daemon grows by about that much per graph (see :mod:`.native_memory`)."""
    tracker.close()
    release_freed_memory()


def _draw_people(
    frame: np.ndarray,
    bodies: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
    background: str,
    numbered: bool,
    parts: Mapping[str, np.ndarray],
) -> np.ndarray | IndexedImage:
    """The skeletons of the people found in one frame at its size, on black or over ``frame`` (left unchanged).

    ``bodies``: per person (image landmarks (33, 3), visibility (33,), box (4,) pixels, track number);
    ``numbered``: over the frame, each track's number by its person; ``parts``: the hands and face points
    (:func:`hands_face.frame_arrays`) drawn after the bodies where they were tracked. On black with at most one
    body (the default), a palette image of the same pixels (:func:`draw_on_black`): a third of the work to draw
    and to encode; otherwise RGB."""
    height, width = frame.shape[:2]
    scale = np.array([width, height], dtype=np.float32)
    keypoints = [
        mediapipe_to_openpose18(image[:, :2] * scale, vis, SKELETON_MIN_VISIBILITY) for image, vis, *_ in bodies
    ]
    hands = parts["hand_landmarks"][..., :2] * scale if "hand_landmarks" in parts else None
    face = parts["face_landmarks"][..., :2] * scale if "face_landmarks" in parts else None
    if background == "black" and len(bodies) <= 1:
        return draw_on_black(height, width, keypoints[0] if keypoints else None, hands, face)
    canvas = frame if background == "overlay" else np.zeros_like(frame)
    for points, (_, _, box, number) in zip(keypoints, bodies, strict=True):
        canvas = draw_openpose(canvas, points)
        if numbered and background == "overlay":
            canvas = draw_track_number(canvas, number, box)
    if hands is not None:
        canvas = draw_hands(canvas, hands)
    if face is not None:
        canvas = draw_face_points(canvas, face)
    return canvas if canvas is not frame else canvas.copy()


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
