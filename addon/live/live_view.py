"""The live view: frames of a generative live mode (live face swap, live LivePortrait) shown in a Blender image,
and recorded into the sequencer on request.

- The live thread (:class:`~.live_client.LiveSessionThread`, ``vfx-mocap-live-view``) fetches the newest frame and
  turns it into what ``Image.pixels`` takes: float32 RGBA, rows bottom to top, in a buffer from a small pool that
  is reused frame after frame. While recording it also queues the frame for the recorder's thread.
- The main thread's timer (:func:`tick`) takes the newest converted frame, writes it into the image named
  :data:`IMAGE_NAME` with one bulk ``pixels.foreach_set`` and tags the Image Editors showing it for redraw. The
  image holds a float buffer marked sRGB, so the write is a copy and the frame shows with its own colours.

Measured per shown frame: the latency from the camera capturing it to the image holding it (both clocks are the
machine's monotonic clock: the daemon runs on the same machine), and the main thread's time for it.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..bridge.live_client import LiveError, LiveRequest, LiveSessionThread
from ..bridge.live_record import Recorder, Take
from ..bridge.requests import licences_text
from ..common import preferences, pump, runtime, strips
from ..common.errors import UserError

IMAGE_NAME = "VFX Live"
THREAD_NAME = "vfx-mocap-live-view"
TICK_S = 0.004
"""Timer interval: bounds the wait between a frame arriving and being shown; an idle tick costs a lock check."""
PANEL_REDRAW_S = 0.25
"""The panel's numbers are redrawn at most this often."""
OPTIONS_CHECK_S = 0.2
"""How often the panel's options are compared with those the session runs with."""
HISTORY = 240
"""Shown frames the readouts (frame rate, latency, main-thread time) are measured over."""
LIVE_VIEW_MODES = ("face_swap", "liveportrait")
"""Live modes whose results are frames (live pose drives an armature instead: see :mod:`.live_pose`)."""
REDRAW_SPACES = frozenset({"SEQUENCE_EDITOR", "VIEW_3D", "IMAGE_EDITOR"})


@dataclass
class LiveFrame:
    """One frame ready to show. ``pixels`` is float32 (height * width * 4,) RGBA bottom row first, a buffer of
    :class:`FramePool`. Times are ``time.monotonic()`` seconds."""

    pixels: np.ndarray
    width: int
    height: int
    seq: int
    frame_index: int
    captured_at: float
    process_ms: float
    data: dict[str, Any]


class FramePool:
    """Reusable pixel buffers by frame size, so converting a frame allocates nothing once running. Thread-safe."""

    KEEP = 4

    def __init__(self) -> None:
        self._free: dict[tuple[int, int], list[np.ndarray]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def acquire(self, width: int, height: int) -> np.ndarray:
        with self._lock:
            free = self._free[(width, height)]
            if free:
                return free.pop()
        return np.empty(width * height * 4, dtype=np.float32)

    def release(self, buffer: np.ndarray, width: int, height: int) -> None:
        with self._lock:
            free = self._free[(width, height)]
            if len(free) < self.KEEP:
                free.append(buffer)


def to_image_pixels(rgb: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write RGB uint8 (H, W, 3) into ``out`` (float32, H * W * 4) as ``Image.pixels`` wants it: RGBA in 0..1,
    opaque, rows bottom to top. A cast copy then one contiguous scale: about twice as fast as a strided multiply."""
    height, width = rgb.shape[:2]
    rgba = out.reshape(height, width, 4)
    np.copyto(rgba[..., :3], rgb[::-1], casting="unsafe")
    rgba *= np.float32(1.0 / 255.0)
    rgba[..., 3] = 1.0
    return out


def percentile(values: collections.deque[float] | list[float], fraction: float) -> float:
    """The ``fraction`` (0..1) quantile of ``values`` (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class LiveView:
    """A running live view: its thread, the image it writes, the readouts and a recording. Main thread, except
    :meth:`_prepare` and :meth:`_discard`, which the live thread calls."""

    def __init__(self, scene: bpy.types.Scene, request: LiveRequest, option_names: tuple[str, ...]) -> None:
        self.scene_name = scene.name
        self.mode = request.mode
        self.option_names = option_names
        self.sent_options = dict(request.params)
        self.shown = 0
        self.error = ""
        self.last_take: Take | None = None
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.main_thread_ms: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.shown_at: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self.last_frame: LiveFrame | None = None
        """The frame the image holds now (its pixel buffer is kept out of the pool until the next one)."""
        self.recorder: Recorder | None = None
        self.finishing: list[Recorder] = []
        """Recordings that were stopped and whose last frames are being written; inserted when done."""
        self.file_left = False
        """Another file was opened since the view started: its takes stay on disk, uninserted."""
        self._pool = FramePool()
        self._next_panel_redraw = 0.0
        self._next_options_check = 0.0
        self.session: LiveSessionThread[LiveFrame] = LiveSessionThread(
            request, self._prepare, THREAD_NAME, discard=self._discard
        )

    # -- the live thread ---------------------------------------------------------------------------------------

    def _prepare(self, result: Mapping[str, Any], arrays: dict[str, np.ndarray]) -> LiveFrame:
        rgb = arrays.get("frame")
        if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise LiveError(f"live {self.mode} sent no RGB frame (arrays: {', '.join(arrays) or 'none'})")
        recorder = self.recorder
        if recorder is not None:
            recorder.add(rgb, float(result["captured_at"]))
        height, width = rgb.shape[:2]
        pixels = to_image_pixels(rgb, self._pool.acquire(width, height))
        return LiveFrame(
            pixels,
            width,
            height,
            int(result["seq"]),
            int(result["frame_index"]),
            float(result["captured_at"]),
            float(result["process_ms"]),
            dict(result.get("data") or {}),
        )

    def _discard(self, frame: LiveFrame) -> None:
        self._pool.release(frame.pixels, frame.width, frame.height)

    # -- main thread -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.session.alive

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    @property
    def shown_fps(self) -> float:
        """Frames shown per second over the last :data:`HISTORY` frames."""
        if len(self.shown_at) < 2:
            return 0.0
        span = self.shown_at[-1] - self.shown_at[0]
        return (len(self.shown_at) - 1) / span if span > 0 else 0.0

    def tick(self) -> bool:
        """Show the newest frame, pass option changes on, finish stopped recordings; False once there is nothing
        left to do (the session ended and every recording is inserted). A tick that shows a frame is timed."""
        started = time.perf_counter()
        frame = self.session.take()
        if frame is not None:
            self.show(frame)
        now = time.monotonic()
        if self.running and now >= self._next_options_check:
            self._next_options_check = now + OPTIONS_CHECK_S
            self._send_changed_options()
        if self.recorder is not None and self.recorder.error:
            self.stop_recording()
        self._insert_finished_takes()
        if not self.running and self.recorder is not None:
            self.stop_recording()
        if not self.running and not self.error and self.session.error:
            self._fail(self.session.error)
        if now >= self._next_panel_redraw:
            self._next_panel_redraw = now + PANEL_REDRAW_S
            redraw(REDRAW_SPACES)
        if frame is not None:
            self.main_thread_ms.append((time.perf_counter() - started) * 1000.0)
        return self.running or bool(self.finishing)

    def show(self, frame: LiveFrame) -> None:
        """Write ``frame`` into the live image (one bulk copy) and measure its latency."""
        image = live_image(frame.width, frame.height)
        image.pixels.foreach_set(frame.pixels)
        image.update()
        shown = time.monotonic()
        previous, self.last_frame = self.last_frame, frame
        if previous is not None:
            self._pool.release(previous.pixels, previous.width, previous.height)
        self.shown += 1
        self.shown_at.append(shown)
        self.latencies_ms.append((shown - frame.captured_at) * 1000.0)
        redraw_image_editors(image)

    def options(self) -> dict[str, Any]:
        """The mode's live options as the panel sets them now."""
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            return self.sent_options
        return {p.name: p.value for p in scene.vfx_mocap.mode_params(self.mode) if p.name in self.option_names}

    def _send_changed_options(self) -> None:
        options = self.options()
        if options != self.sent_options:
            self.sent_options = options
            self.session.update(options)

    def start_recording(self, folder: Path, fps: float) -> Recorder:
        """Record the incoming frames into ``folder`` (a new take folder) at the timeline rate ``fps``."""
        if self.recorder is not None:
            raise LiveError("Already recording")
        take_id = folder.name
        take = Take(
            take_id,
            self.mode,
            str(folder),
            json.dumps(self.sent_options, sort_keys=True),
            0,
            fps,
            licences=licences_text(runtime.get().modes.get(self.mode, {})),
        )
        self.recorder = Recorder(folder, fps, take)
        return self.recorder

    def stop_recording(self) -> None:
        """Stop recording; the take is inserted as a strip at the current frame once its files are written."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.finish()
            self.finishing.append(recorder)

    def _insert_finished_takes(self) -> None:
        for recorder in [r for r in self.finishing if r.done]:
            self.finishing.remove(recorder)
            if recorder.error:
                self._fail(recorder.error)
            if recorder.frames:
                self._insert(recorder.finished_take())

    def _insert(self, take: Take) -> None:
        if self.file_left:
            self._fail(f"Another file was opened while the take was recorded: it stays in {take.output_dir}")
            return
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            self._fail(f"The scene '{self.scene_name}' is gone: the take stays in {take.output_dir}")
            return
        try:
            strip = strips.insert_result_strip(scene, take)
        except UserError as exc:
            self._fail(f"Cannot insert the take from {take.output_dir}: {exc}")
            return
        strip.name = f"Live {take.mode}"
        strip["vfx_live_fps"] = take.fps
        take.result_strip = strip.name
        self.last_take = take

    def stop(self, error: str = "") -> None:
        """Stop the session here and in the daemon without waiting (its thread winds down within about one
        poll, :attr:`stopping` meanwhile); a recording in progress is finished and inserted by later ticks."""
        self.stop_recording()
        self.session.stop(timeout=0)
        self._fail(error or self.session.error)

    @property
    def stopping(self) -> bool:
        return self.session.stopping

    def close(self) -> None:
        """Stop everything now, waiting for the thread (the add-on is going away): recordings are written but
        not inserted."""
        self.stop()
        self.session.stop()
        for recorder in self.finishing:
            recorder.close()
        self.finishing.clear()

    def _fail(self, error: str) -> None:
        if error:
            self.error = error
            runtime.get().last_error = error


def live_image(width: int, height: int) -> bpy.types.Image:
    """The image the live view writes, created (float buffer, sRGB) or resized to ``width`` x ``height``."""
    image = bpy.data.images.get(IMAGE_NAME)
    if image is None or not image.is_float:
        if image is not None:
            image.name = f"{IMAGE_NAME} (old)"
        image = bpy.data.images.new(IMAGE_NAME, width, height, alpha=True, float_buffer=True)
        image.colorspace_settings.name = "sRGB"  # the frames are sRGB: shown as they came, not as linear light
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    return image


def redraw_image_editors(image: bpy.types.Image) -> None:
    """Tag the Image Editors showing ``image`` for redraw."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR" and area.spaces.active.image == image:
                area.tag_redraw()


def redraw(spaces: frozenset[str]) -> None:
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        for area in window.screen.areas:
            if area.type in spaces:
                area.tag_redraw()


def show_in_image_editor(context: bpy.types.Context) -> bool:
    """Show the live image in the first Image Editor of the open windows; False if there is none."""
    image = bpy.data.images.get(IMAGE_NAME)
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                return True
    return False


def recording_folder(take_id: str) -> Path:
    """A new folder for a take: ``<output folder>/live/<take id>`` (the output folder of the preferences)."""
    return preferences.daemon_settings().data_dir / "live" / take_id


_view: LiveView | None = None


def current() -> LiveView | None:
    """The running (or last) live view."""
    return _view


def tick() -> float | None:
    """The live view's timer (main thread): the view's tick; None (unregister) once it has nothing left to do.

    Never raises (Blender would drop the timer and leave the session running unseen): an internal error stops
    the view, with the error in the panel; recorded frames stay on disk."""
    if _view is None:
        return None
    try:
        busy = _view.tick()
    except Exception as exc:
        view = _view
        recorders = [*view.finishing, *([view.recorder] if view.recorder else [])]
        folders = ", ".join(str(r.folder) for r in recorders)
        message = runtime.report_internal_error("The live view", exc)
        try:
            view.stop()  # does not wait: the session thread winds down on its own
            for recorder in view.finishing:
                recorder.close()
            view.finishing.clear()
        except Exception as cleanup:
            runtime.report_internal_error("Stopping the live view", cleanup)
        view._fail(message + (f". Recorded frames are in {folders}" if folders else ""))
        return None
    return TICK_S if busy else None


def start(scene: bpy.types.Scene, request: LiveRequest, option_names: tuple[str, ...]) -> LiveView:
    """Start a live view of ``request`` (plain data made by the caller). Raises LiveError when one runs."""
    global _view
    if _view is not None and _view.stopping:
        raise LiveError("The live view is still stopping: start it again in a moment")
    if _view is not None and (_view.running or _view.finishing):
        raise LiveError("The live view is already running: stop it first")
    _view = LiveView(scene, request, option_names)
    pump.start_ticker(tick)
    return _view


def new_take_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def stop() -> None:
    if _view is not None and _view.running and not _view.stopping:
        _view.stop()


FILE_LOADED = "Live view stopped: another file was opened (start it again in this one)"


@persistent
def stop_before_file_load(*_args: object) -> None:
    """``load_pre`` handler: stop the view of the file being left; a take it was recording is written to disk
    but not inserted into the next file (whose scene may only share the name)."""
    if _view is None:
        return
    _view.file_left = True
    if _view.running and not _view.stopping:
        _view.stop(FILE_LOADED)


def register() -> None:
    bpy.app.handlers.load_pre.append(stop_before_file_load)


def unregister() -> None:
    """Stop a running view and its session (both sides), end every thread, forget the view, remove the
    handler."""
    global _view
    if stop_before_file_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(stop_before_file_load)
    if _view is not None:
        _view.close()
        _view = None
    pump.stop_ticker(tick)
