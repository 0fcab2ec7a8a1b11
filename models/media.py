"""Media inputs for runners: video files, image sequences and in-memory frames.

Each class implements the :class:`models.runner.Media` protocol: RGB ``uint8`` frames of shape
(height, width, 3), decoded lazily. :func:`open_media` turns the plain dict a job carries on the wire into one
of them and checks it first, so a bad input fails before the job is queued, with an error that names the
input and says how to fix it.

Files are decoded on a worker thread a few frames ahead of the consumer (see :func:`_prefetched`), so a
runner's inference overlaps decoding. OpenCV (``cv2``) is imported inside the functions that decode: the
daemon may import this module without paying for it.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.inputs import DEFAULT_FPS, MEDIA_FORMS, parse_input

from .image_header import check_pixels, image_size
from .runner import InvalidInput, Media

PREFETCH_FRAMES = 8
"""How many decoded frames may wait for the consumer. Bounded so a slow runner does not hold a whole video
in memory: 8 frames of 4K RGB are about 200 MB."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File extensions read as a still image; any other path is opened as a video."""

DEFAULT_IMAGE_FPS = DEFAULT_FPS
"""Frame rate given to image sequences and in-memory frames when the spec names none (Blender's default)."""


class VideoFile:
    """Frames ``frame_start, frame_start + step, ...`` before ``frame_end`` of a video file.

    Frame numbers are 0-based and ``frame_end`` is exclusive, as in ``range()``; ``None`` or a value past the
    last frame means "to the end". The file is opened once here to read its metadata, and opened again on
    the decoding thread by each call to :meth:`frames`.

    ``frame_count`` comes from the container's frame count. A damaged file may end early, in which case
    :meth:`frames` yields fewer frames than ``frame_count`` says, and :meth:`shortfall` says so afterwards.

    Raises :class:`InvalidInput` (field ``name``) if the file is missing, cannot be decoded, or the range
    holds no frame.
    """

    def __init__(
        self,
        path: Path | str,
        frame_start: int = 0,
        frame_end: int | None = None,
        step: int = 1,
        *,
        name: str = "media",
    ) -> None:
        import cv2

        self.path = Path(path)
        self.name = name
        _require_file(name, self.path)
        if frame_start < 0:
            raise InvalidInput(name, f"frame_start must be 0 or more, got {frame_start}")
        if step < 1:
            raise InvalidInput(name, f"step must be 1 or more, got {step}")
        capture = cv2.VideoCapture(str(self.path))
        try:
            total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            if total <= 0:
                raise InvalidInput(
                    name,
                    f"could not decode {self.path}: is it a video OpenCV can read? "
                    "Convert it to MP4 (H.264) or export the strip as an image sequence.",
                )
            fps = float(capture.get(cv2.CAP_PROP_FPS))
            # Some containers (raw MJPEG or H.264 streams) carry no frame rate; OpenCV then reports 0.
            self._fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_IMAGE_FPS
            self._size = (
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
            check_pixels(name, *self._size, f"each frame of {self.path.name}")
        finally:
            capture.release()
        end = total if frame_end is None else min(frame_end, total)
        if frame_start >= end:
            asked = f"{frame_start}..{'the end' if frame_end is None else frame_end}"
            raise InvalidInput(
                name,
                f"the frame range {asked} is empty: {self.path.name} has {total} frames, "
                f"numbered 0..{total - 1}, and frame_end is exclusive",
            )
        self.frame_start = frame_start
        self.frame_end = end
        self.step = step
        self._decoded_short: int | None = None
        """Frames the last decoding yielded when it ended before ``frame_end``; None when it did not."""

    @property
    def frame_count(self) -> int:
        return len(range(self.frame_start, self.frame_end, self.step))

    def shortfall(self) -> str | None:
        """A warning when the last :meth:`frames` ended early (a truncated or damaged file), else None."""
        if self._decoded_short is None:
            return None
        return (
            f"{self.name}: {self.path.name} promises {self.frame_count} frames but only {self._decoded_short} could "
            f"be decoded (a truncated or damaged file); the result covers those {self._decoded_short}"
        )

    @property
    def fps(self) -> float:
        """The file's frame rate; a ``step`` above 1 does not change it."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def frames(self, on_decoded: Callable[[np.ndarray], object] | None = None) -> Iterator[np.ndarray]:
        """Decoded frames, prefetched on a worker thread that stops when this generator is closed (``on_decoded``
        as in :meth:`models.runner.Media.frames`, on that thread)."""
        return _prefetched(self._decode, f"decode {self.path.name}", on_decoded)

    def _decode(self) -> Generator[np.ndarray, None, None]:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        decoded = 0
        self._decoded_short = None
        try:
            if self.frame_start:
                capture.set(cv2.CAP_PROP_POS_FRAMES, self.frame_start)
            for index in range(self.frame_start, self.frame_end):
                if (index - self.frame_start) % self.step:
                    # grab() moves past a frame the step leaves out without converting or copying it.
                    if not capture.grab():
                        self._decoded_short = decoded
                        return
                    continue
                ok, bgr = capture.read()
                if not ok:
                    self._decoded_short = decoded
                    return
                decoded += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


class ImageSequence:
    """Still images read in the order given, one frame each; all must have the first image's size.

    Only the first image's header is read here (its pixel count checked against ``MAX_FRAME_PIXELS``): nothing
    is decoded where the sequence is opened, which is the daemon's request thread. A later image that is missing,
    unreadable, too big or of another size raises :class:`InvalidInput` (field ``name``) when :meth:`frames`
    reaches it.
    """

    def __init__(self, paths: Sequence[Path | str], fps: float = DEFAULT_IMAGE_FPS, *, name: str = "media"):
        if not paths:
            raise InvalidInput(name, "the image sequence is empty: give at least one image path")
        self.paths = [Path(p) for p in paths]
        self.name = name
        for path in self.paths:
            _require_file(name, path)
        self._fps = _check_fps(name, fps)
        check_pixels(name, *image_size(name, self.paths[0]), f"image {self.paths[0]}")
        self._size: tuple[int, int] | None = None

    @property
    def frame_count(self) -> int:
        return len(self.paths)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        """The first image's size as decoded (its orientation tag may turn the header's), decoded on first use."""
        if self._size is None:
            height, width = _read_image(self.name, self.paths[0]).shape[:2]
            self._size = (width, height)
        return self._size

    def frames(self, on_decoded: Callable[[np.ndarray], object] | None = None) -> Iterator[np.ndarray]:
        """Decoded images, prefetched on a worker thread that stops when this generator is closed (``on_decoded``
        as in :meth:`models.runner.Media.frames`, on that thread)."""
        return _prefetched(self._decode, f"decode {self.paths[0].parent.name}", on_decoded)

    def _decode(self) -> Generator[np.ndarray, None, None]:
        for path in self.paths:
            rgb = _read_image(self.name, path)
            if self._size is None:
                self._size = (rgb.shape[1], rgb.shape[0])
            if (rgb.shape[1], rgb.shape[0]) != self._size:
                width, height = self._size
                raise InvalidInput(
                    self.name,
                    f"{path} is {rgb.shape[1]}x{rgb.shape[0]} but the sequence started at {width}x{height}: "
                    "all images of a sequence must have the same size",
                )
            yield rgb


class FrameArray:
    """Frames already in memory, as one ``uint8`` array of shape (frames, height, width, 3), RGB.

    Frames are yielded as views into the array, without copying.
    """

    def __init__(self, array: np.ndarray, fps: float = DEFAULT_IMAGE_FPS, *, name: str = "media") -> None:
        if not isinstance(array, np.ndarray):
            raise InvalidInput(name, f"array must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.uint8:
            raise InvalidInput(
                name, f"array must have dtype uint8 (0..255), got {array.dtype}: convert with clip and astype"
            )
        if array.ndim != 4 or array.shape[3] != 3 or 0 in array.shape:
            raise InvalidInput(
                name,
                f"array must have shape (frames, height, width, 3) with RGB channels and at least one frame, "
                f"got {array.shape}",
            )
        check_pixels(name, int(array.shape[2]), int(array.shape[1]), "each frame")
        self.array = array
        self.name = name
        self._fps = _check_fps(name, fps)

    @property
    def frame_count(self) -> int:
        return int(self.array.shape[0])

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.array.shape[2]), int(self.array.shape[1]))

    def frames(self, on_decoded: Callable[[np.ndarray], object] | None = None) -> Iterator[np.ndarray]:
        if on_decoded is None:
            return iter(self.array)
        return _each_then_yield(iter(self.array), on_decoded)


def open_media(name: str, spec: Mapping[str, Any]) -> Media:
    """Turn the wire form of media input ``name`` into a :class:`Media`, checking it on the way.

    Accepts the ``path``, ``paths`` and ``array`` forms of :mod:`shared.inputs` (a single image path is one
    frame and takes no range keys). Raises :class:`InvalidInput` with ``field == name`` for any other form,
    unknown keys, values of the wrong type, missing or undecodable files and empty frame ranges.
    """
    parsed = parse_input(name, spec, MEDIA_FORMS)
    if parsed.form == "paths":
        return ImageSequence([Path(p) for p in parsed.value], fps=parsed.fps, name=name)
    if parsed.form == "array":
        return FrameArray(parsed.value, fps=parsed.fps, name=name)
    path = Path(parsed.value)
    if _is_image(str(path)):
        range_keys = [key for key in ("frame_start", "frame_end", "step") if key in spec]
        if range_keys:
            raise InvalidInput(
                name, f"{', '.join(range_keys)} apply to video files only; {path.name} is a single image"
            )
        return ImageSequence([path], name=name)
    return VideoFile(path, frame_start=parsed.frame_start, frame_end=parsed.frame_end, step=parsed.step, name=name)


def _is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _check_fps(name: str, fps: float) -> float:
    if not (math.isfinite(fps) and fps > 0):
        raise InvalidInput(name, f"fps must be a positive number of frames per second, got {fps}")
    return float(fps)


def _require_file(name: str, path: Path) -> None:
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long to look up, or with a NUL byte, names no file
        found = False
    if not found:
        text = str(path) if len(str(path)) <= 200 else f"{str(path)[:100]}... ({len(str(path))} characters)"
        raise InvalidInput(
            name,
            f"file not found: {text} (check the path, or re-export the strip; a daemon on another machine reads "
            "inputs at the same path there, on a shared drive)",
        )


def _read_image(name: str, path: Path) -> np.ndarray:
    """Decode one image, after its header has shown it is not too big to decode."""
    import cv2

    check_pixels(name, *image_size(name, path), f"image {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        formats = ", ".join(sorted(s.lstrip(".").upper() for s in IMAGE_SUFFIXES))
        raise InvalidInput(name, f"could not read image {path}: is it one of {formats}?")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class _End:
    """Put on the queue after the last frame."""


@dataclass(frozen=True)
class _Failure:
    """Put on the queue when decoding raised; the consumer re-raises ``error`` on its own thread."""

    error: BaseException


def _each_then_yield(
    frames: Iterator[np.ndarray], on_decoded: Callable[[np.ndarray], object]
) -> Generator[np.ndarray, None, None]:
    for frame in frames:
        on_decoded(frame)
        yield frame


def _prefetched(
    decode: Callable[[], Generator[np.ndarray, None, None]],
    thread_name: str,
    on_decoded: Callable[[np.ndarray], object] | None = None,
) -> Generator[np.ndarray, None, None]:
    """Yield what ``decode()`` yields, running it on its own thread up to ``PREFETCH_FRAMES`` ahead; that thread
    also calls ``on_decoded`` (if given) with each frame before queueing it.

    The thread starts at the first ``next()``. However the consumer stops (end of frames, ``break``,
    ``close()``, an exception, garbage collection), the ``finally`` below asks the thread to stop and joins
    it, so no thread outlives the generator. An exception raised by ``decode`` is re-raised here.
    """
    pending: queue.Queue[np.ndarray | _End | _Failure] = queue.Queue(maxsize=PREFETCH_FRAMES)
    stop = threading.Event()

    def offer(item: np.ndarray | _End | _Failure) -> bool:
        # A timed put lets the thread notice ``stop`` while the consumer is not taking frames.
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        frames = decode()
        try:
            for frame in frames:
                if on_decoded is not None:
                    on_decoded(frame)
                if not offer(frame):
                    return
            offer(_End())
        except BaseException as error:
            offer(_Failure(error))
        finally:
            frames.close()

    thread = threading.Thread(target=work, name=thread_name, daemon=True)
    thread.start()
    try:
        while True:
            item = pending.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
