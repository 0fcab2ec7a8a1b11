"""Recording a live view: the incoming frames written as a PNG image sequence on a background thread.

Frames are placed on the timeline by when the camera captured them, not by how many arrived: frame ``n`` of the
take is the newest frame captured in timeline frame ``n`` since recording started (at the scene's frame rate).
A timeline frame that no frame reached repeats the previous file (a hard link where the file system allows, a
copy otherwise), so a take plays back at the speed it was performed whatever the live output rate was.

The files are ``<folder>/frames/000000.png`` upward, the layout of a job's results, so the take is inserted
with the job strip insertion (:func:`.strips.insert_result_strip`). Nothing here imports ``bpy``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...shared.png import encode_rgb

QUEUE_FRAMES = 64
"""Frames waiting to be written at most; beyond it frames are dropped (and counted), never the live view."""


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``rgb`` as a PNG at ``path`` atomically (a temporary name, then rename)."""
    partial = path.with_suffix(".png.part")
    partial.write_bytes(encode_rgb(rgb))
    partial.replace(path)


@dataclass
class Take:
    """A finished recording, shaped as the job record that :func:`.strips.insert_result_strip` reads: ``name`` is
    the take's id (stored on the strip as its job id), ``output_dir`` the folder holding ``frames/``. A take has no
    source strip, so it is inserted at the current frame."""

    name: str
    mode: str
    output_dir: str
    params_json: str
    frame_count: int
    fps: float
    result_strip: str = ""
    source_strip: str = ""
    source_frame_count: int = 0
    licences: str = ""
    """The mode's models and their licences, ``"model: licence; ..."``, stored on the strip."""
    strip_props_json: str = "{}"

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)


class Recorder:
    """Writes one take. :meth:`add` may be called from any thread (the live thread calls it for every frame it
    receives); the files are written on the recorder's own thread (``vfx-mocap-live-record``).

    ``frames`` counts the timeline frames written so far, ``dropped`` the frames not written because the disk
    could not keep up, ``error`` says why writing stopped (empty while all is well). ``first_capture`` and
    ``last_capture`` are the capture times of the first and last frames written (None before the first).
    """

    def __init__(self, folder: Path, fps: float, take: Take) -> None:
        if fps <= 0:
            raise ValueError(f"the timeline frame rate must be positive, got {fps}")
        self.folder = folder / "frames"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.take = take
        self.frames = 0
        self.dropped = 0
        self.error = ""
        self.first_capture: float | None = None
        self.last_capture: float | None = None
        self._accepting = True
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name="vfx-mocap-live-record", daemon=True)
        self._thread.start()

    def add(self, rgb: np.ndarray, captured_at: float) -> None:
        """Queue a frame (RGB uint8, kept as it is: do not change it afterwards) captured at ``captured_at``
        (seconds, the daemon's monotonic clock). Ignored once :meth:`finish` was called."""
        with self._lock:
            if not self._accepting:
                return
            try:
                self._queue.put_nowait((rgb, captured_at))
            except queue.Full:
                self.dropped += 1

    def finish(self) -> None:
        """Accept no more frames; the thread writes what is queued, then ends (see :attr:`done`)."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
        self._queue.put(None)

    @property
    def done(self) -> bool:
        """True once :meth:`finish` was called and every queued frame is on disk (or writing failed)."""
        return not self._accepting and not self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Finish and wait up to ``timeout`` seconds for the queued frames to be written."""
        self.finish()
        self._thread.join(timeout)

    def finished_take(self) -> Take:
        """The take, with the number of timeline frames written. Call once :attr:`done`."""
        self.take.frame_count = self.frames
        return self.take

    def _run(self) -> None:
        last_slot = -1
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error:
                continue  # drain without writing: the take ends where the disk failed
            rgb, captured_at = item
            if self.first_capture is None:
                self.first_capture = captured_at
            slot = max(last_slot, round((captured_at - self.first_capture) * self.fps), 0)
            try:
                for gap in range(last_slot + 1, slot):
                    self._repeat(last_slot, gap)
                write_png(self._path(slot), rgb)
            except OSError as exc:
                self.error = f"Recording stopped: cannot write {self.folder}: {exc}"
                continue
            last_slot = slot
            self.last_capture = captured_at
            self.frames = slot + 1

    def _path(self, slot: int) -> Path:
        return self.folder / f"{slot:06d}.png"

    def _repeat(self, previous: int, slot: int) -> None:
        """Timeline frame ``slot`` shows the file of ``previous`` again."""
        if previous < 0:
            return
        try:
            os.link(self._path(previous), self._path(slot))
        except OSError:
            shutil.copyfile(self._path(previous), self._path(slot))
