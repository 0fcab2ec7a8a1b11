"""What the live view scenarios share: pumping the view's timer, its threads, the daemon's session count, the
pixels of the "VFX Live" image and the readouts of the frames shown."""

from __future__ import annotations

from typing import Any

import bpy
import harness
import numpy as np

THREADS = ("vfx-mocap-live-view", "vfx-mocap-live-record")


def pump_live(addon: Any, predicate: Any, what: str, timeout: float = 60.0) -> float:
    """Run the add-on's pump and the live view's timer (the bpy module fires no timers) until ``predicate``
    holds; the seconds it took."""

    def step() -> bool:
        addon.live.live_view.tick()
        return predicate()

    return harness.pump_until(addon, step, what, timeout=timeout)


def pump_frames(addon: Any, view: Any, count: int, timeout: float = 90.0) -> float:
    """Pump until ``view`` has shown ``count`` frames in all; the seconds it took. A view that stops first fails at
    once with its error."""

    def shown_enough() -> bool:
        if view.shown >= count:
            return True
        assert view.running, f"the live view stopped after {view.shown} frames: {view.session.error!r}"
        return False

    return pump_live(addon, shown_enough, f"{count} live frames", timeout=timeout)


def live_threads() -> list[str]:
    return [name for name in harness.vfx_threads() if name in THREADS]


def daemon_live_sessions(connection_file: str) -> int:
    """The daemon's live session count, asked over a connection of its own."""
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    with client_module.Client.from_file(connection_file) as client:
        return int(client.health()["live_sessions"])


def image_rgb(image: Any) -> np.ndarray:
    """The image's pixels as RGB uint8, top row first (as the frame came)."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


def shown(addon: Any, view: Any, connection_file: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The "VFX Live" image's pixels (RGB uint8, top row first) and what the view shows: the image's format, the
    newest frame's index and data, whether the image holds that frame, the readouts and the daemon's sessions."""
    live_view = addon.live.live_view
    image = bpy.data.images[live_view.IMAGE_NAME]
    pixels = image_rgb(image)
    last = view.last_frame
    held = np.round(last.pixels.reshape(*pixels.shape[:2], 4)[::-1, :, :3] * 255)
    return pixels, {
        "count": view.shown,
        "frame_index": last.frame_index,
        "data": last.data,
        "image_size": list(image.size),
        "is_float": image.is_float,
        "colorspace": image.colorspace_settings.name,
        "image_is_last_frame": bool(np.array_equal(pixels, held)),
        "state": view.session.state,
        "shown_fps": view.shown_fps,
        "daemon_fps": view.session.daemon_fps,
        "latency_ms_p50": live_view.percentile(view.latencies_ms, 0.5),
        "main_thread_ms_p50": live_view.percentile(view.main_thread_ms, 0.5),
        "daemon_sessions": daemon_live_sessions(connection_file),
    }


def operator_record(operator: Any) -> dict[str, Any]:
    """Call an operator: its result, its error report and the live threads running afterwards."""
    result, error = harness.operator_report(operator)
    return {"result": sorted(result or ()), "error": error, "threads": live_threads()}
