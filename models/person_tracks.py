"""People followed through a clip as tracks: each track is one person, never someone else.

Two ways to find them (the pose mode's ``people`` parameter):

- ``"one"`` (default): MediaPipe Pose on the whole frame, as the 0.10.21 wheel's legacy ``solutions.pose`` does
  it: one person per frame, the most prominent. It may switch to someone else when it loses its person, so each
  pose is checked against the track's last one: a pose whose box (around its visible landmarks) neither overlaps
  the last box (intersection over union below :data:`SAME_PERSON_IOU`) nor lies within half a body height of it
  belongs to someone else and starts a new track. At a shot cut the track goes on with whoever the new shot shows
  (one camera's cut cannot say who is who; a cut is recorded, so nothing is blended across it).
- ``"all"``: every person. OpenCV's HOG people detector (the Dalal-Triggs detector whose weights ship inside
  OpenCV, so nothing is downloaded) finds upright people every :data:`DETECT_EVERY_S` seconds; each new person
  gets a track with its own MediaPipe Pose graph, run on a crop around where that person was last (MediaPipe finds
  one person per image, so a crop per person makes it multi-person). Between detections a track follows its
  person by the landmarks in its crop; at detections, tracks are matched to the boxes they overlap. Tracks end at
  a cut, and after :data:`LOST_AFTER_S` seconds unseen.

Why these detectors: MediaPipe 0.10.21's wheel ships only the legacy single-person graph and its
``pose_detection.tflite``; the Tasks API's multi-person ``PoseLandmarker`` (``num_poses``) needs a ``.task``
bundle with metadata the wheel does not have (no downloads here), and OpenCV's DNN module cannot load
``pose_detection.tflite`` (it uses the DENSIFY operator). OpenCV's HOG detector needs no weights file, finds
standing and walking people at 64 x 128 px and up (frames are enlarged so that people from about 70 px tall are
found), and runs on the CPU; it misses sitting or strongly foreshortened people and drawn characters, which is
why ``"one"`` stays the default.

``OpenCV`` is imported by the functions that need it only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LANDMARK_COUNT = 33
SAME_PERSON_IOU = 0.2
"""Boxes overlapping at least this much (intersection over union) are the same person."""
SAME_PERSON_CENTRE = 0.5
"""...or boxes whose centres are within this many body heights of each other."""
DUPLICATE_IOU = 0.5
"""Two tracks whose people overlap this much in a frame follow the same person: the younger one ends."""
BOX_VISIBILITY = 0.5
"""Landmarks at least this visible make a person's box."""
DETECT_EVERY_S = 0.5
LOST_AFTER_S = 1.0
CROP_MARGIN = 0.35
"""A track's crop is its box grown by this fraction of the box height on every side."""
DETECTION_MIN_WEIGHT = 0.5
"""HOG detections scored below this are ignored."""
DETECTION_MIN_HEIGHT_PX = 128
"""HOG's window height: frames are enlarged so that a person :data:`SMALLEST_PERSON_PX` tall fills it."""
SMALLEST_PERSON_PX = 80
PEOPLE_MODES = ("one", "all")

PoseFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None]
"""One pose graph: RGB image -> (image (33, 3), world (33, 3), visibility (33,)) or None when nobody is found."""


@dataclass
class Track:
    """One person: their landmarks in the frames they were found in (image landmarks normalised to the frame)."""

    number: int
    """1, 2, ... in the order people were first found."""
    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    """frame -> (image (33, 3), world (33, 3), visibility (33,), box (4,) x0 y0 x1 y1 pixels)."""
    last_frame: int = -1
    box: np.ndarray | None = None
    pose: Any = None
    """The track's own pose graph (``"all"``), closed when the track ends."""

    def add(self, frame: int, image: np.ndarray, world: np.ndarray, visibility: np.ndarray, box: np.ndarray) -> None:
        self.frames[frame] = (image, world, visibility, box)
        self.last_frame, self.box = frame, box

    @property
    def median_height_px(self) -> float:
        return float(np.median([b[3] - b[1] for *_, b in self.frames.values()])) if self.frames else 0.0


def landmark_box(image: np.ndarray, visibility: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(x0, y0, x1, y1) pixels around the landmarks seen at least :data:`BOX_VISIBILITY` (all if fewer than 4)."""
    pixels = image[:, :2] * np.asarray(size, dtype=np.float64)
    seen = np.nan_to_num(visibility) >= BOX_VISIBILITY
    chosen = pixels[seen] if seen.sum() >= 4 else pixels
    return np.concatenate([chosen.min(axis=0), chosen.max(axis=0)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def same_person(previous: np.ndarray | None, box: np.ndarray) -> bool:
    """Whether ``box`` can be the person last seen in ``previous`` (see the module's notes); never for a track
    that has no box yet."""
    if previous is None:
        return False
    if iou(previous, box) >= SAME_PERSON_IOU:
        return True
    height = max(previous[3] - previous[1], box[3] - box[1], 1.0)
    shift = np.linalg.norm((box[:2] + box[2:]) / 2 - (previous[:2] + previous[2:]) / 2)
    return bool(shift <= SAME_PERSON_CENTRE * height)


class PeopleTracker:
    """Finds and follows people frame by frame (:meth:`push`), then gives their tracks as arrays.

    ``new_pose`` builds a fresh MediaPipe pose graph (a callable, closed with ``.close()``); ``size`` is the frames'
    (width, height) and ``fps`` their rate.
    """

    def __init__(self, mode: str, new_pose: Callable[[], Any], size: tuple[int, int], fps: float) -> None:
        if mode not in PEOPLE_MODES:
            raise ValueError(f"people must be one of {PEOPLE_MODES}, not {mode!r}")
        self.mode = mode
        self.new_pose = new_pose
        self.size = size
        self.fps = fps if fps > 0 else 24.0
        self.tracks: list[Track] = []
        self._live: list[Track] = []
        self._whole_frame: Any = None
        self._whole_frame_found = False
        """Whether the whole-frame graph has found a person since it was built."""
        self._hog: Any = None

    def close(self) -> None:
        for track in self._live:
            self._end(track)
        if self._whole_frame is not None:
            self._whole_frame.close()
            self._whole_frame = None

    @property
    def rebuilds_at_a_cut(self) -> bool:
        """Whether a cut now would take a new graph from ``new_pose``: people ``"one"`` whose graph has found
        someone (``"all"`` takes one per person found after the cut, if any)."""
        return self.mode == "one" and self._whole_frame_found

    def push(self, index: int, frame: np.ndarray, new_shot: bool) -> list[Track]:
        """Track ``frame`` (RGB) number ``index``; ``new_shot``: it follows a cut. Returns the tracks found in it."""
        if self.mode == "one":
            return self._push_one(index, frame, new_shot)
        return self._push_all(index, frame, new_shot)

    # -- one person, MediaPipe's own choice ---------------------------------------------------------------------

    def _push_one(self, index: int, frame: np.ndarray, new_shot: bool) -> list[Track]:
        # A fresh graph at each cut: no tracking or landmark smoothing crosses it. A graph that has found nobody yet
        # holds neither and is kept (a cut after black leader or an empty shot), which saves building one (~80 ms).
        if self._whole_frame is None or (new_shot and self._whole_frame_found):
            if self._whole_frame is not None:
                self._whole_frame.close()
            self._whole_frame = self.new_pose()
            self._whole_frame_found = False
        found = self._whole_frame(frame)
        if found is None:
            return []
        self._whole_frame_found = True
        image, world, visibility = found
        box = landmark_box(image, visibility, self.size)
        current = self._live[0] if self._live else None
        if current is not None and not new_shot and not same_person(current.box, box):
            self._live.clear()  # someone else: a new track, the old one stays someone else's
            current = None
        if current is None:
            current = Track(len(self.tracks) + 1)
            self.tracks.append(current)
            self._live.append(current)
        current.add(index, image, world, visibility, box)
        return [current]

    # -- everyone: HOG people detector, a crop and a pose graph per person -------------------------------------

    def _push_all(self, index: int, frame: np.ndarray, new_shot: bool) -> list[Track]:
        if new_shot:
            for track in list(self._live):
                self._end(track)
        found: list[Track] = []
        for track in list(self._live):
            result = self._pose_in_crop(track, frame)
            if result is not None and same_person(track.box, result[3]):
                if any(_same_place(other.box, result[3]) for other in found):
                    self._end(track)  # two tracks on one person: the younger one ends
                    continue
                track.add(index, *result)
                found.append(track)
            elif index - track.last_frame > LOST_AFTER_S * self.fps:
                self._end(track)
        every = max(1, round(DETECT_EVERY_S * self.fps))
        if new_shot or index % every == 0:
            for box in self._detect(frame):
                if any(t.box is not None and _contains_centre(box, t.box) for t in self._live):
                    continue  # someone already followed (a detection box is looser than a landmark box)
                track = Track(len(self.tracks) + 1, box=box, pose=self.new_pose())
                track.last_frame = index
                result = self._pose_in_crop(track, frame)
                if result is None or any(_same_place(other.box, result[3]) for other in found):
                    track.pose.close()  # nobody there, or the person found is one already followed
                    continue
                track.add(index, *result)
                self.tracks.append(track)
                self._live.append(track)
                found.append(track)
        return found

    def _end(self, track: Track) -> None:
        if track.pose is not None:
            track.pose.close()
            track.pose = None
        if track in self._live:
            self._live.remove(track)

    def _pose_in_crop(
        self, track: Track, frame: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The track's person in a crop around its last box, in frame coordinates."""
        assert track.box is not None
        width, height = self.size
        box = track.box
        margin = CROP_MARGIN * (box[3] - box[1])
        x0, y0 = int(max(0, box[0] - margin)), int(max(0, box[1] - margin))
        x1, y1 = int(min(width, box[2] + margin)), int(min(height, box[3] + margin))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        found = track.pose(np.ascontiguousarray(frame[y0:y1, x0:x1]))
        if found is None:
            return None
        image, world, visibility = found
        crop_w, crop_h = x1 - x0, y1 - y0
        image = image.copy()
        image[:, 0] = (image[:, 0] * crop_w + x0) / width
        image[:, 1] = (image[:, 1] * crop_h + y0) / height
        image[:, 2] = image[:, 2] * crop_w / width
        return image, world, visibility, landmark_box(image, visibility, self.size)

    def _detect(self, frame: np.ndarray) -> list[np.ndarray]:
        """People boxes (x0, y0, x1, y1 pixels) by OpenCV's HOG detector, overlaps merged (best score kept)."""
        import cv2

        if self._hog is None:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
        scale = DETECTION_MIN_HEIGHT_PX / SMALLEST_PERSON_PX
        grey = cv2.cvtColor(cv2.resize(frame, None, fx=scale, fy=scale), cv2.COLOR_RGB2GRAY)
        rects, weights = self._hog.detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=1.05)
        order = np.argsort(-np.asarray(weights).ravel()) if len(rects) else np.zeros(0, dtype=np.intp)
        boxes: list[np.ndarray] = []
        for k in order:
            if float(np.ravel(weights)[k]) < DETECTION_MIN_WEIGHT:
                continue
            x, y, w, h = (float(v) / scale for v in rects[k])
            box = np.array([x, y, x + w, y + h])
            if all(_overlap_of_smaller(box, kept) < 0.5 for kept in boxes):
                boxes.append(box)
        return boxes

    # -- results -----------------------------------------------------------------------------------------------

    def default_track(self) -> int:
        """Index (0-based) of the largest person: the highest median box height among the tracks seen at least
        half as long as the longest one (a passer-by close to the camera for a moment is not the subject); -1
        when nobody was found."""
        if not self.tracks:
            return -1
        longest = max(len(t.frames) for t in self.tracks)
        main = [t for t in self.tracks if len(t.frames) >= longest / 2]
        return self.tracks.index(max(main, key=lambda t: (t.median_height_px, len(t.frames))))

    def arrays(self, count: int) -> dict[str, np.ndarray]:
        """``track_image_landmarks`` and ``track_world_landmarks`` float32 (T, N, 33, 3), ``track_visibility``
        (T, N, 33), ``track_boxes`` (T, N, 4) pixels, ``track_present`` bool (T, N); NaN where absent."""
        total = len(self.tracks)
        image = np.full((total, count, LANDMARK_COUNT, 3), np.nan, dtype=np.float32)
        world = np.full((total, count, LANDMARK_COUNT, 3), np.nan, dtype=np.float32)
        visibility = np.full((total, count, LANDMARK_COUNT), np.nan, dtype=np.float32)
        boxes = np.full((total, count, 4), np.nan, dtype=np.float32)
        present = np.zeros((total, count), dtype=bool)
        for t, track in enumerate(self.tracks):
            for frame, (i, w, v, b) in track.frames.items():
                image[t, frame], world[t, frame], visibility[t, frame], boxes[t, frame] = i, w, v, b
                present[t, frame] = True
        return {
            "track_image_landmarks": image,
            "track_world_landmarks": world,
            "track_visibility": visibility,
            "track_boxes": boxes,
            "track_present": present,
        }


def _same_place(box: np.ndarray | None, other: np.ndarray) -> bool:
    """Two people's boxes overlapping so much that they are one person (see :data:`DUPLICATE_IOU`)."""
    return box is not None and (iou(box, other) >= DUPLICATE_IOU or _contains_centre(box, other))


def _contains_centre(outer: np.ndarray, box: np.ndarray) -> bool:
    centre = (box[:2] + box[2:]) / 2
    return bool(outer[0] <= centre[0] <= outer[2] and outer[1] <= centre[1] <= outer[3])


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller if smaller > 0 else 0.0


def draw_track_number(canvas_rgb: np.ndarray, number: int, box: np.ndarray) -> np.ndarray:
    """``canvas_rgb`` with ``number`` written in white on black above ``box`` (x0, y0, x1, y1 pixels), in place."""
    import cv2

    x, y = int(box[0]), max(int(box[1]) - 6, 18)
    cv2.putText(canvas_rgb, str(number), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(canvas_rgb, str(number), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return canvas_rgb
