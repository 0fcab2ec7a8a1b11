"""Writing a job's output frames off the job thread: colour conversion and PNG encoding on a small thread pool,
files committed in frame order by one thread, with a bounded queue so a slow disk slows the job down instead
of filling memory.

Every runner that writes frames uses it the same way::

    writer = FrameWriter(ctx.output_dir)
    try:
        for index, frame in enumerate(frames):
            ...
            writer.write(index, rgb)        # returns at once unless MAX_PENDING frames are waiting
        writer.finish()                     # waits for every frame; raises FrameWriteError for a failed one
    finally:
        writer.close()                      # after finish: nothing; on cancel or error: stops the threads

OpenCV's conversion and encoder release the GIL, so the pool encodes while the job thread runs its model.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shared.png import IndexedImage, encode_indexed
from shared.pose_data import FRAMES_FOLDER, frame_file_name

MAX_PENDING = 8
"""Frames accepted but not yet on disk before :meth:`FrameWriter.write` waits (8 frames of 1080p: 50 MB)."""


def frame_path(output_dir: Path, index: int) -> Path:
    """Where frame ``index`` of a job's output lives."""
    return output_dir / FRAMES_FOLDER / frame_file_name(index)


def encode_png(image: np.ndarray | IndexedImage) -> bytes:
    """One frame as PNG bytes: RGB uint8 (height, width, 3) through OpenCV's colour conversion and encoder, a
    palette image (e.g. a skeleton on black) as an 8-bit palette PNG (:func:`shared.png.encode_indexed`)."""
    import cv2

    if isinstance(image, IndexedImage):
        return encode_indexed(image)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("the PNG encoder refused the frame")
    return data.tobytes()


def store_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class FrameWriteError(OSError):
    """A frame could not be encoded or written; ``index`` names it."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"could not write output frame {index}: {cause}")
        self.index = index


class FrameWriter:
    """Writes frames ``output_dir/frames/NNNNNN.png`` in the order they are given, off the calling thread.

    ``workers``: encoding threads (default: up to 4, one per CPU). ``store``: how bytes reach the disk
    (default :func:`store_atomically`; called on the writer's own thread, one frame at a time, in order).
    Methods are for one producer thread.
    """

    def __init__(
        self,
        output_dir: Path,
        workers: int | None = None,
        max_pending: int = MAX_PENDING,
        store: Callable[[Path, bytes], None] = store_atomically,
    ) -> None:
        (output_dir / "frames").mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self.written = 0
        """Frames on disk so far."""
        self._store = store
        self._pool = ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1), thread_name_prefix="frame-encode")
        self._pending: queue.Queue[tuple[int, Future[bytes]] | None] = queue.Queue(maxsize=max_pending)
        self._error: FrameWriteError | None = None
        self._open = True
        self._committer = threading.Thread(target=self._commit_in_order, name="frame-writer", daemon=True)
        self._committer.start()

    def write(self, index: int, image: np.ndarray | IndexedImage) -> None:
        """Queue frame ``index`` (RGB uint8, height x width x 3, or a palette image; not to be modified
        afterwards; see :func:`encode_png`). Waits while
        ``max_pending`` frames are queued; raises :class:`FrameWriteError` if an earlier frame failed."""
        self._queue(index, lambda: encode_png(image))

    def write_drawn(self, index: int, draw: Callable[[], np.ndarray | IndexedImage]) -> None:
        """As :meth:`write`, for a frame that ``draw()`` makes on an encoding thread (e.g. a skeleton drawing),
        so the drawing is off the calling thread too. ``draw`` must only read data nobody modifies later."""
        self._queue(index, lambda: encode_png(draw()))

    def _queue(self, index: int, encode: Callable[[], bytes]) -> None:
        if not self._open:
            raise RuntimeError("FrameWriter.write() after finish() or close()")
        self._raise_failure()
        future = self._pool.submit(encode)
        while True:
            try:
                self._pending.put((index, future), timeout=0.1)
                return
            except queue.Full:
                if self._error is not None:  # the committer stopped on an error: nothing will make room
                    future.cancel()
                    raise self._error from None

    def finish(self) -> None:
        """Wait until every queued frame is on disk; raises :class:`FrameWriteError` naming the first frame that
        could not be written (the frames before it are on disk)."""
        self.close()
        self._raise_failure()

    def close(self) -> None:
        """Stop: the frames already accepted (at most ``max_pending``) are stored, the threads are gone when
        this returns. Safe after :meth:`finish` and more than once; raises nothing, so a caller handling a
        cancel or another error keeps its own (a failed write is still reported by :meth:`finish`)."""
        if not self._open:
            return
        self._open = False
        while self._committer.is_alive():
            try:
                self._pending.put(None, timeout=0.1)  # the end marker, after every accepted frame
                break
            except queue.Full:
                continue
        self._committer.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is None:
            self.finish()
        else:
            self.close()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _commit_in_order(self) -> None:
        """The writer thread: takes frames in the order they were queued, waits for each encoding, stores it.
        Stops at the end marker or at the first failure."""
        while True:
            item = self._pending.get()
            if item is None:
                return
            index, future = item
            try:
                self._store(frame_path(self.output_dir, index), future.result())
            except Exception as exc:
                self._error = FrameWriteError(index, exc)
                self._drain()
                return
            self.written += 1

    def _drain(self) -> None:
        """After a failure: empty the queue so a producer waiting in :meth:`write` gets in and sees the error."""
        while True:
            try:
                if self._pending.get_nowait() is None:
                    return
            except queue.Empty:
                return
