"""Frame capture for live sessions: a camera, or a video file played at its own frame rate.

A capture thread keeps only the newest frame (latest-only): inference never works through a backlog, so
latency stays one frame deep whatever the inference speed. On headless machines and in tests a video file
stands in for a camera.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.image_header import MAX_FRAME_PIXELS, check_pixels, image_size
from models.runner import InvalidInput
from shared import errors as e
from shared.errors import VfxError

LOST_AFTER_FAILED_READS = 30
"""A camera that returns this many empty reads in a row (about one second) counts as unplugged."""


@dataclass
class CapturedFrame:
    bgr: np.ndarray
    """As OpenCV decoded it; :meth:`rgb` converts on the consumer's thread, so frames that are dropped for a
    newer one never cost a conversion."""
    index: int
    captured_at: float
    """``time.monotonic()`` when the frame was read: the start of the latency measurement."""

    def rgb(self) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)  # ~20x faster than a reversed-axis copy


class CaptureError(VfxError):
    code = "capture_failed"


def parse_source(spec: Any) -> dict[str, Any]:
    """Validate a live source: ``{"camera": index}`` or ``{"path": "/abs/video.mp4", "loop": true}``."""
    if not isinstance(spec, dict):
        raise VfxError(
            "source must be a map: {'camera': 0} or {'path': '/abs/video.mp4'}",
            code=e.INVALID_INPUT,
            detail={"field": "source"},
        )
    if "camera" in spec:
        index = spec["camera"]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64:
            raise VfxError(
                "source.camera must be a camera index 0..63", code=e.INVALID_INPUT, detail={"field": "source.camera"}
            )
        return {"camera": index}
    if "path" in spec:
        path = spec["path"]
        if not isinstance(path, str) or not Path(path).is_absolute() or not _is_file(path):
            shown = repr(path) if len(repr(path)) <= 200 else f"{repr(path)[:100]}... ({len(repr(path))} characters)"
            raise VfxError(
                f"source.path: no video file at {shown} (an absolute path on the daemon's machine)",
                code=e.INVALID_INPUT,
                detail={"field": "source.path"},
            )
        _check_still_image(path)
        return {"path": path, "loop": bool(spec.get("loop", True))}
    raise VfxError("source needs 'camera' or 'path'", code=e.INVALID_INPUT, detail={"field": "source"})


def _check_still_image(path: str) -> None:
    """OpenCV decodes a still image given as a video source when it opens it: refuse one too big to decode."""
    try:
        size = image_size("source.path", Path(path))
    except InvalidInput:
        return  # not a still image: a video, whose frame size is checked once it is open
    try:
        check_pixels("source.path", *size, f"image {path}")
    except InvalidInput as exc:
        raise VfxError(f"source.path: {exc.message}", code=e.INVALID_INPUT, detail={"field": "source.path"}) from None


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # too long to look up, or a NUL byte: no file has that name
        return False


class FrameSource:
    """Opens the source at construction (raising :class:`CaptureError` for a missing camera) and captures on a
    thread once :meth:`start` is called. ``latest`` hands out each frame at most once."""

    def __init__(self, source: dict[str, Any], open_capture: Callable[[Any], Any] | None = None) -> None:
        """``open_capture(target)`` returns an object with OpenCV's ``VideoCapture`` methods (``isOpened``,
        ``read``, ``get``, ``set``, ``release``); OpenCV's own by default."""
        import cv2

        self.source = source
        self.is_file = "path" in source
        target = source["path"] if self.is_file else source["camera"]
        self._cv2 = cv2
        self._capture = (open_capture or cv2.VideoCapture)(target)
        if not self._capture.isOpened():
            self._capture.release()
            what = f"video file {target}" if self.is_file else f"camera {target}"
            raise CaptureError(
                f"could not open {what}: is it connected, not used by another program, and is the daemon "
                "allowed to use it (camera permission)?",
                detail={"field": "source"},
            )
        width, height = (int(self._capture.get(p) or 0) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > MAX_FRAME_PIXELS:
            self._capture.release()
            raise CaptureError(
                f"the frames of {target} are {width}x{height} pixels, more than a frame may have (8192x8192)",
                detail={"field": "source"},
            )
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self.error: CaptureError | None = None
        self.ended = False
        self.frames_read = 0
        self._latest: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vfx-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        read_since_rewind = 0
        period = 1.0 / self.fps
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.is_file:  # play at the file's own rate, as a camera would deliver it
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    next_due = max(next_due + period, time.monotonic() - period)
                ok, bgr = self._capture.read()
                if not ok:
                    if self.is_file and self.source.get("loop"):
                        if read_since_rewind == 0:  # a whole pass without one frame: it would spin forever
                            self.error = CaptureError(
                                f"video file {self.source['path']} has no frame OpenCV can decode: convert it to "
                                "MP4 (H.264) or MJPEG"
                            )
                            break
                        read_since_rewind = 0
                        self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    if self.is_file:
                        self.ended = True
                        break
                    failures += 1
                    if failures >= LOST_AFTER_FAILED_READS:
                        self.error = CaptureError(
                            f"camera {self.source['camera']} stopped delivering frames "
                            "(unplugged or taken by another program)"
                        )
                        break
                    self._stop.wait(0.03)
                    continue
                failures = 0
                read_since_rewind += 1
                frame = CapturedFrame(bgr, self.frames_read, time.monotonic())
                self.frames_read += 1
                with self._cond:
                    self._latest = frame
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._cond.notify_all()

    def latest(self, timeout: float) -> CapturedFrame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if self._latest is None and not self._done():
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    def _done(self) -> bool:
        return self.ended or self.error is not None or self._stop.is_set()

    @property
    def finished(self) -> bool:
        return self._done() and self._latest is None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._capture.release()
