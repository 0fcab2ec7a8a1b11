"""Live LivePortrait in real Blender, through the Live View panel's operators: a video of black frames stands in
for the camera, the daemon (started by the test with random LivePortrait weights at the official shapes) animates
the reference portrait, and the add-on shows its frames in the "VFX Live" image. No reference; a reference
without a face; start; paste-back switched off in the panel while running; stop.

The camera sees no face, so the daemon outputs the portrait unanimated (the whole image, or its face crop without
paste-back) without rendering: a rendered frame costs about 10 s on a 2-core CPU at these sizes (the daemon's
own test animates one). What the image held is saved to ``--data-dir`` for the pytest side to compare with what
the daemon outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import bpy
import harness
import numpy as np
from live_common import daemon_live_sessions, live_threads, operator_record, pump_frames, pump_live, shown


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir, connection_file=args.connection_file)
    rt = harness.start_daemon(addon)
    draw = addon.live.live_view_ui.draw_live_view
    scene = bpy.context.scene
    settings = scene.vfx_mocap_live
    settings.mode, settings.source, settings.video_path = "liveportrait", "FILE", args.video
    record["panel_ready"] = harness.draw_panel(draw)

    # 1. No reference: Start refuses, naming the field.
    record["without_reference"] = operator_record(bpy.ops.vfxmocap.live_view_start)

    # 2. A reference without a face: the daemon fails the session; the reason reaches the panel.
    scene.vfx_mocap.reference_source, scene.vfx_mocap.reference_path = "FILE", args.faceless_reference
    started = operator_record(bpy.ops.vfxmocap.live_view_start)
    assert started["result"] == ["FINISHED"], started
    failed = addon.live.live_view.current()
    pump_live(addon, lambda: not failed.running, "the session to fail on the faceless reference", timeout=90)
    addon.live.live_view.tick()
    record["faceless_reference"] = {
        "state": failed.session.state,
        "error": failed.error,
        "last_error": rt.last_error,
        "panel": harness.draw_panel(draw),
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(args.connection_file),
    }

    # 3. The portrait: the daemon's frames reach the image.
    scene.vfx_mocap.reference_path = args.reference
    record["start"] = operator_record(bpy.ops.vfxmocap.live_view_start)
    view = addon.live.live_view.current()
    record["mode_sent"] = view.session.request.mode
    pump_frames(addon, view, 5)
    pixels, record["pasted"] = shown(addon, view, args.connection_file)
    np.save(Path(args.data_dir) / "pasted.npy", pixels)
    record["panel_running"] = harness.draw_panel(draw)

    # 4. Paste-back switched off in the panel: the image becomes the portrait's face crop.
    options = {param.name: param for param in scene.vfx_mocap.mode_params("liveportrait")}
    options["paste_back"].set_value(False)
    shown_before = view.shown
    pump_live(
        addon,
        lambda: view.shown > shown_before and view.last_frame.width != record["pasted"]["image_size"][0],
        "a frame without paste-back",
        timeout=60,
    )
    pixels, record["cropped"] = shown(addon, view, args.connection_file)
    np.save(Path(args.data_dir) / "cropped.npy", pixels)
    record["sent_options"] = view.sent_options
    record["update_error"] = view.session.update_error

    # 5. Stop: the thread ends and the daemon lets go of the session.
    record["stop"] = operator_record(bpy.ops.vfxmocap.live_view_stop)
    pump_live(addon, lambda: not view.running, "the live thread to end", timeout=30)
    record["after_stop"] = {
        "threads": live_threads(),
        "state": view.session.state,
        "error": view.error,
        "daemon_sessions": daemon_live_sessions(args.connection_file),
        "timer_after_tick": addon.live.live_view.tick(),
    }


if __name__ == "__main__":
    harness.run_scenario(
        harness.parse_args(
            ("--connection-file", {"required": True}),
            ("--reference", {"required": True}),
            ("--faceless-reference", {"required": True}),
        ),
        main,
    )
