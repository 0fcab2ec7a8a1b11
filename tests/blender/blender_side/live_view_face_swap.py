"""Live face swap in real Blender: the sample video, played at its frame rate, stands in for a camera; the daemon
(started by the test with tiny face models) swaps the faces and the add-on's live view shows them in the
"VFX Live" image. Start, change an option, record into the sequencer, stop; bad input; a camera that is not
there; disabling the add-on while the view runs.

The bpy module fires no timers: the scenario runs the add-on's pump and the live view's timer itself, as Blender
would. What the image held is saved to ``--data-dir`` for the pytest side to compare with the offline swap.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import bpy
import harness
import numpy as np
from live_common import daemon_live_sessions, live_threads, operator_record, pump_frames, pump_live, shown


def strip_record(addon: Any, strip: Any) -> dict[str, Any]:
    directory = Path(bpy.path.abspath(strip.directory))
    return {
        "name": strip.name,
        "type": strip.type,
        "channel": strip.channel,
        "start": addon.common.compat.timing(strip, "left_handle"),
        "duration": addon.common.compat.timing(strip, "duration"),
        "elements": len(strip.elements),
        "directory": str(directory),
        "files": sorted(p.name for p in directory.glob("*.png")),
        "props": {key: value for key, value in strip.items() if key.startswith("vfx_")},
    }


def start_recording(addon: Any, frames: int, before: str) -> Any:
    """Start the live view and record until ``frames`` frames are written; the running view."""
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_start)
    assert result == {"FINISHED"}, error
    view = addon.live.live_view.current()
    pump_frames(addon, view, frames, timeout=60)
    bpy.ops.vfxmocap.live_view_record()
    pump_live(addon, lambda: view.recorder.frames >= frames, f"recorded frames before {before}")
    return view


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir, connection_file=args.connection_file)
    rt = harness.start_daemon(addon)
    record["panels"] = sorted(name for name in dir(bpy.types) if name.endswith("_live_view"))

    scene = bpy.context.scene
    settings = scene.vfx_mocap_live
    settings.mode, settings.source, settings.video_path = "face_swap", "FILE", args.video
    options = {param.name: param for param in scene.vfx_mocap.mode_params("face_swap")}
    options["detect_every"].set_value(1)  # each frame swapped on its own: comparable with the offline mode

    # 1. Bad input is refused by the operator with the reason.
    record["without_reference"] = operator_record(bpy.ops.vfxmocap.live_view_start)
    scene.vfx_mocap.reference_source, scene.vfx_mocap.reference_path = "FILE", args.reference
    settings.video_path = str(Path(args.data_dir) / "no-such-video.avi")
    record["missing_video"] = operator_record(bpy.ops.vfxmocap.live_view_start)
    settings.video_path = args.video
    settings.target_face_path = args.reference  # set, but unused while Target is 'all'

    # 2. Start: swapped frames reach the image.
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_start)
    assert result == {"FINISHED"}, error
    view = addon.live.live_view.current()
    record["threads_running"] = live_threads()
    record["start_s"] = pump_frames(addon, view, 20)
    pixels, record["shown"] = shown(addon, view, args.connection_file)
    np.save(Path(args.data_dir) / "shown.npy", pixels)
    record["panel_running"] = harness.draw_panel(addon.live.live_view_ui.draw_live_view)
    record["second_start"] = operator_record(bpy.ops.vfxmocap.live_view_start)

    # 3. An option changed in the panel reaches the running session.
    def change_option(name: str, value: Any) -> dict[str, Any]:
        options[name].set_value(value)
        pump_live(addon, lambda: view.sent_options.get(name) == value, f"the view to send {name}")
        received = view.session.received  # the panel is read every OPTIONS_CHECK_S: count frames from the send
        pump_live(addon, lambda: view.session.received >= received + 5, f"frames after setting {name}")
        return {"sent": view.sent_options.get(name), "refused": view.session.update_error, "state": view.session.state}

    record["option_change"] = change_option("mouth_mask", True)
    # The target face was sent at start, so switching to matching can work.
    record["switch_to_matching"] = {**change_option("target", "matching"), "error": view.error}
    options["target"].set_value("all")

    # 4. Record about two seconds from frame 10: a strip of the take at the current frame.
    scene.frame_set(10)
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_record)
    assert result == {"FINISHED"}, error
    recorder = view.recorder
    record["recording_threads"] = live_threads()
    started = time.monotonic()
    pump_live(addon, lambda: time.monotonic() - started > 2.0, "two seconds of recording", timeout=10)
    scene.frame_set(30)
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_record)
    recorded_s = time.monotonic() - started
    assert result == {"FINISHED"}, error
    pump_live(addon, lambda: view.last_take is not None, "the take to be inserted", timeout=30)
    take = view.last_take
    strip = addon.common.compat.all_strips(scene.sequence_editor)[take.result_strip]
    record["take"] = {
        "frames": take.frame_count,
        "fps": take.fps,
        "recorded_s": recorded_s,
        "captured_span_s": recorder.last_capture - recorder.first_capture,
        "dropped": recorder.dropped,
        "error": recorder.error,
        "recording_after": view.recording,
        "strip": strip_record(addon, strip),
        "scene_fps": scene.render.fps / scene.render.fps_base,
    }

    # 5. Stop: the operator returns at once (the UI never waits); then the thread and the daemon's session go.
    # The thread's last step (stopping the daemon's session) waits for `checked`, so the checks made while it
    # stops cannot race a thread that happens to end within the operator call (a start then really starts).
    checked = threading.Event()
    stop_remote = view.session._stop_remote
    view.session._stop_remote = lambda client: (checked.wait(30), stop_remote(client))
    started = time.perf_counter()
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_stop)
    record["stop_operator_ms"] = (time.perf_counter() - started) * 1000
    assert result == {"FINISHED"}, error
    record["while_stopping"] = {
        "stopping": view.stopping,
        "panel": harness.draw_panel(addon.live.live_view_ui.draw_live_view),
        "start": harness.operator_report(bpy.ops.vfxmocap.live_view_start)[1],
        "same_view": addon.live.live_view.current() is view,
    }
    checked.set()
    pump_live(addon, lambda: not view.running, "the live thread to end", timeout=15)
    record["after_stop"] = {
        "threads": live_threads(),
        "running": view.running,
        "state": view.session.state,
        "error": view.error,
        "daemon_sessions": daemon_live_sessions(args.connection_file),
        "timer_after_tick": addon.live.live_view.tick(),
    }

    # 6. A camera that is not there: the error reaches the panel; nothing is left running.
    settings.source, settings.camera_index = "CAMERA", 7
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_start)
    assert result == {"FINISHED"}, error
    camera = addon.live.live_view.current()
    pump_live(addon, lambda: not camera.running, "the camera error", timeout=30)
    addon.live.live_view.tick()
    record["camera"] = {
        "state": camera.session.state,
        "error": camera.error,
        "last_error": rt.last_error,
        "panel": harness.draw_panel(addon.live.live_view_ui.draw_live_view),
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(args.connection_file),
    }

    # 7. An internal error in the view's timer stops the view with the error in the panel, nothing left running.
    settings.source = "FILE"
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_view_start)
    assert result == {"FINISHED"}, error
    broken = addon.live.live_view.current()
    pump_frames(addon, broken, 2, timeout=60)

    def fail(frame: Any) -> None:
        raise RuntimeError("injected fault")

    broken.show = fail
    pump_live(addon, lambda: broken.session.take() is None and not broken.running, "the view to stop", timeout=30)
    record["internal_error"] = {
        "timer_after_fault": addon.live.live_view.tick(),
        "error": broken.error,
        "last_error": rt.last_error,
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(args.connection_file),
    }

    # 8. Opening another file while the view runs and records: it stops; the take stays on disk, not inserted there.
    blend = Path(args.data_dir) / "before_live.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    strips_saved = sorted(s.name for s in addon.common.compat.all_strips(bpy.context.scene.sequence_editor))
    leaving = start_recording(addon, frames=2, before="opening a file")
    take_folder = leaving.recorder.folder
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    pump_live(addon, lambda: not leaving.running and not leaving.finishing, "the view to stop", timeout=30)
    scene, settings = bpy.context.scene, bpy.context.scene.vfx_mocap_live
    editor = scene.sequence_editor
    record["file_opened"] = {
        "error": leaving.error,
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(args.connection_file),
        "strips_added": sorted(set(s.name for s in addon.common.compat.all_strips(editor)) - set(strips_saved)),
        "take_files": len(list(take_folder.glob("*.png"))),
    }
    settings.mode, settings.source, settings.video_path = "face_swap", "FILE", args.video

    # 9. Disabling the add-on while the view runs and records stops both sides.
    last_view = start_recording(addon, frames=3, before="disabling")
    record["disabled_session"] = last_view.session.session_id
    harness.disable_extension()
    record["after_disable"] = {
        "threads": live_threads(),
        "timer_registered": bpy.app.timers.is_registered(addon.live.live_view.tick),
        "scene_property": hasattr(bpy.types.Scene, "vfx_mocap_live"),
    }


if __name__ == "__main__":
    harness.run_scenario(
        harness.parse_args(
            ("--connection-file", {"required": True}),
            ("--reference", {"required": True}),
        ),
        main,
    )
