"""Shot cuts in decoded frames: where the picture changes all at once.

A hard cut replaces the whole picture between two frames; motion, even fast, moves parts of it. The colour
content says which: each frame's hue-saturation-value histogram (16 x 8 x 8 bins, from a copy 160 px wide) is
compared with the previous frame's by the Bhattacharyya distance (0: the same colours, 1: none in common). Within
a shot consecutive frames stay far below :data:`CUT_DISTANCE` (Megamind.avi: 0.03 median, 0.06 at most); at its
cuts the distance jumps to 0.3-1.0. A frame whose distance to the previous one is at least :data:`CUT_DISTANCE`
starts a new shot.

Limits: a gradual transition (dissolve, fade) changes the picture a little per frame and is not a cut here; a
flash or an explosion that changes every colour at once is. OpenCV is imported by :class:`ShotCutDetector`
only, so the pose runner's module stays import-light.
"""

from __future__ import annotations

import numpy as np

CUT_DISTANCE = 0.2
"""Bhattacharyya distance between consecutive frames' colour histograms from which a frame starts a new shot."""
HISTOGRAM_WIDTH_PX = 160
HISTOGRAM_BINS = (16, 8, 8)


class ShotCutDetector:
    """Feed frames in order with :meth:`push`; it says whether each one starts a new shot (the first frame
    does). ``distances`` keeps each frame's distance to the one before (0 for the first), ``new_shot`` whether it
    starts a shot, ``shot_starts`` the frames that do.

    One thread may push (a decoding thread, ahead of the consumer) while another reads what was pushed."""

    def __init__(self, cut_distance: float = CUT_DISTANCE) -> None:
        self.cut_distance = cut_distance
        self.distances: list[float] = []
        self.new_shot: list[bool] = []
        self.shot_starts: list[int] = []
        self._previous: np.ndarray | None = None

    def cut_after(self, index: int) -> bool:
        """Whether a frame after frame ``index``, among those pushed so far, starts a shot."""
        starts = self.shot_starts
        return bool(starts) and starts[-1] > index

    def push(self, frame: np.ndarray) -> bool:
        """True when ``frame`` (H, W, 3 RGB uint8) starts a new shot."""
        histogram = colour_histogram(frame)
        if self._previous is None:
            distance = 0.0
        else:
            import cv2

            distance = float(cv2.compareHist(self._previous, histogram, cv2.HISTCMP_BHATTACHARYYA))
        starts = self._previous is None or distance >= self.cut_distance
        self._previous = histogram
        if starts:
            self.shot_starts.append(len(self.distances))
        self.distances.append(distance)
        self.new_shot.append(starts)
        return starts


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """The normalised HSV histogram (float32, sums to 1) of an RGB frame, from a copy 160 px wide."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, HISTOGRAM_WIDTH_PX / max(width, 1))
    small = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))))
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(HISTOGRAM_BINS), [0, 180, 0, 256, 0, 256])
    total = float(histogram.sum())
    return (histogram / total if total > 0 else histogram).astype(np.float32)
