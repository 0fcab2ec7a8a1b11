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

from .image_header import check_pixels, image_size
from .runner import InvalidInput, Media

PREFETCH_FRAMES = 8
"""How many decoded frames may wait for the consumer. Bounded so a slow runner does not hold a whole video
in memory: 8 frames of 4K RGB are about 200 MB."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File extensions read as a still image; any other path is opened as a video."""

DEFAULT_IMAGE_FPS = 24.0
"""Frame rate given to image sequences and in-memory frames when the spec names none (Blender's default)."""


class VideoFile:
    """Frames ``frame_start, frame_start + step, ...`` before ``frame_end`` of a video file.

    Frame numbers are 0-based and ``frame_end`` is exclusive, as in ``range()``; ``None`` or a value past the
    last frame means "to the end". The file is opened once here to read its metadata, and opened again on
    the decoding thread by each call to :meth:`frames`.

    ``frame_count`` comes from the container's frame count. A damaged file may end early, in which case
    :meth:`frames` yields fewer frames than ``frame_count`` says.

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

    @property
    def frame_count(self) -> int:
        return len(range(self.frame_start, self.frame_end, self.step))

    @property
    def fps(self) -> float:
        """The file's frame rate; a ``step`` above 1 does not change it."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded frames, prefetched on a worker thread that stops when this generator is closed."""
        return _prefetched(self._decode, f"decode {self.path.name}")

    def _decode(self) -> Generator[np.ndarray, None, None]:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        try:
            if self.frame_start:
                capture.set(cv2.CAP_PROP_POS_FRAMES, self.frame_start)
            for index in range(self.frame_start, self.frame_end):
                if (index - self.frame_start) % self.step:
                    # grab() moves past a frame the step leaves out without converting or copying it.
                    if not capture.grab():
                        return
                    continue
                ok, bgr = capture.read()
                if not ok:
                    return
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

    def frames(self) -> Iterator[np.ndarray]:
        """Decoded images, prefetched on a worker thread that stops when this generator is closed."""
        return _prefetched(self._decode, f"decode {self.paths[0].parent.name}")

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

    def frames(self) -> Iterator[np.ndarray]:
        return iter(self.array)


def open_media(name: str, spec: Mapping[str, Any]) -> Media:
    """Turn the wire form of media input ``name`` into a :class:`Media`, checking it on the way.

    Accepted forms (the keys marked ``?`` are optional):

    - ``{"path": str, "frame_start"?: int, "frame_end"?: int, "step"?: int}``: a video file, or a single
      image (by extension, see ``IMAGE_SUFFIXES``) as one frame, which takes no range keys;
    - ``{"paths": [str, ...], "fps"?: float}``: an image sequence;
    - ``{"array": np.ndarray, "fps"?: float}``: frames in memory, see :class:`FrameArray`.

    Raises :class:`InvalidInput` with ``field == name`` for any other form, unknown keys, values of the
    wrong type, missing or undecodable files and empty frame ranges.
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput(name, f"must be a mapping with 'path', 'paths' or 'array', got {type(spec).__name__}")
    forms = [form for form in _FORMS if form.key in spec]
    if len(forms) != 1:
        found = ", ".join(sorted(map(str, spec))) or "nothing"
        raise InvalidInput(name, f"needs exactly one of 'path', 'paths' or 'array', got {found}")
    form = forms[0]
    unknown = sorted(str(key) for key in spec if key != form.key and key not in form.options)
    if unknown:
        allowed = ", ".join((form.key, *form.options))
        raise InvalidInput(name, f"unknown keys {', '.join(unknown)} for a '{form.key}' input (allowed: {allowed})")
    return form.build(name, spec)


@dataclass(frozen=True)
class _Form:
    key: str
    options: tuple[str, ...]
    build: Callable[[str, Mapping[str, Any]], Media]


def _open_path(name: str, spec: Mapping[str, Any]) -> Media:
    path = _path_value(name, "path", spec["path"])
    if _is_image(str(path)):
        range_keys = [key for key in ("frame_start", "frame_end", "step") if key in spec]
        if range_keys:
            raise InvalidInput(
                name, f"{', '.join(range_keys)} apply to video files only; {path.name} is a single image"
            )
        return ImageSequence([path], name=name)
    frame_end = spec.get("frame_end")
    return VideoFile(
        path,
        frame_start=_int_value(name, "frame_start", spec.get("frame_start", 0)),
        frame_end=None if frame_end is None else _int_value(name, "frame_end", frame_end),
        step=_int_value(name, "step", spec.get("step", 1)),
        name=name,
    )


def _open_paths(name: str, spec: Mapping[str, Any]) -> Media:
    paths = spec["paths"]
    if isinstance(paths, str | bytes) or not isinstance(paths, Sequence):
        raise InvalidInput(name, f"paths must be a list of image file paths, got {type(paths).__name__}")
    return ImageSequence(
        [_path_value(name, f"paths[{i}]", p) for i, p in enumerate(paths)],
        fps=_fps_value(name, spec),
        name=name,
    )


def _open_array(name: str, spec: Mapping[str, Any]) -> Media:
    return FrameArray(spec["array"], fps=_fps_value(name, spec), name=name)


_FORMS = (
    _Form("path", ("frame_start", "frame_end", "step"), _open_path),
    _Form("paths", ("fps",), _open_paths),
    _Form("array", ("fps",), _open_array),
)


def _is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _path_value(name: str, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidInput(name, f"{key} must be a non-empty file path, got {value!r}")
    return Path(value)


def _int_value(name: str, key: str, value: Any) -> int:
    # bool is an int subclass; True as a frame number is always a mistake on the client side.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"{key} must be a whole number of frames, got {value!r}")
    return value


def _fps_value(name: str, spec: Mapping[str, Any]) -> float:
    fps = spec.get("fps", DEFAULT_IMAGE_FPS)
    if isinstance(fps, bool) or not isinstance(fps, int | float):
        raise InvalidInput(name, f"fps must be a number of frames per second, got {fps!r}")
    return float(fps)


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
        raise InvalidInput(name, f"file not found: {text} (check the path, or re-export the strip)")


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


def _prefetched(
    decode: Callable[[], Generator[np.ndarray, None, None]], thread_name: str
) -> Generator[np.ndarray, None, None]:
    """Yield what ``decode()`` yields, running it on its own thread up to ``PREFETCH_FRAMES`` ahead.

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
