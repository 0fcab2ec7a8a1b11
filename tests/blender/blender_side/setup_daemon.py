"""*Set Up Daemon* from the preferences, then *Start* with no path typed, and the README's demo job.

Fresh HOME, no Daemon Python. A first run is cancelled while pip installs (nothing *Start* would use is left); a
second run builds the environment with the pose feature set from the package registries this machine reaches
(progress and log recorded as the preferences draw them); *Start* connects to a daemon from that environment; the
pose job on the README's video runs and its skeleton strip is inserted; a third run does nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import bpy
import harness


def wait_run(addon: Any, seen: dict[str, Any], timeout: float) -> Any:
    ui = addon.setup.daemon_setup_ui
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        run = ui.current_run()
        seen.setdefault("steps", [])
        if run.step not in seen["steps"]:
            seen["steps"].append(run.step)
            seen.setdefault("drawn", []).append(harness.draw_preferences())
        if run.state != "running":
            return run
        time.sleep(0.2)
    raise AssertionError(f"Set Up Daemon did not end within {timeout} s: {ui.current_run().log_tail(5)}")


def scenario(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    prefs = harness.preferences()
    prefs.device = "cpu"
    if args.data_dir:
        prefs.output_dir = args.data_dir
    record["python_before"] = list(addon.common.preferences.resolved_python())
    rt = addon.common.runtime.get()
    bpy.ops.vfxmocap.daemon_start()
    harness.pump_until(addon, lambda: rt.status.state == "error", "Start to say there is no daemon")
    record["start_without_env"] = rt.status.message
    record["feature_sets_drawn"] = [line for line in harness.draw_preferences() if "about" in line]

    assert bpy.ops.vfxmocap.setup_daemon() == {"FINISHED"}
    ui = addon.setup.daemon_setup_ui
    started = time.monotonic()
    while ui.current_run().step in ("Starting", "Creating the environment") and time.monotonic() - started < 120:
        time.sleep(0.1)
    record["cancel_poll_while_running"] = bpy.ops.vfxmocap.setup_daemon_cancel.poll()
    record["setup_poll_while_running"] = bpy.ops.vfxmocap.setup_daemon.poll()
    bpy.ops.vfxmocap.setup_daemon_cancel()
    cancelled = wait_run(addon, {}, 60)
    env = Path(addon.common.preferences.data_dir()) / "env"
    record["cancelled"] = {
        "state": cancelled.state,
        "step_when_cancelled": cancelled.step,
        "marker": (env / addon.bridge.daemon_setup.MARKER_NAME).exists(),
        "python_after": list(addon.common.preferences.resolved_python()),
    }

    seen: dict[str, Any] = {}
    first_started = time.monotonic()
    assert bpy.ops.vfxmocap.setup_daemon() == {"FINISHED"}
    done = wait_run(addon, seen, args.setup_timeout)
    record["setup"] = {
        "state": done.state,
        "message": done.message,
        "fraction": done.fraction,
        "steps": seen["steps"],
        "drawn_while_running": seen["drawn"][1] if len(seen["drawn"]) > 1 else [],
        "log_file": (Path(addon.common.preferences.daemon_settings().log_dir) / "setup.log").read_text()[-3000:],
        "seconds": time.monotonic() - first_started,
    }
    record["drawn_after"] = harness.draw_preferences()
    record["python_after"] = list(addon.common.preferences.resolved_python())
    record["daemon_python_preference"] = prefs.daemon_python

    bpy.ops.vfxmocap.daemon_start()
    harness.pump_until(addon, lambda: rt.status.state == "connected", "the set-up daemon to connect", timeout=90)
    record["connected_pid"] = rt.status.pid
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    source = addon.common.compat.new_movie_strip(editor, "Megamind", args.video, 1, 1)
    addon.common.compat.set_timing(source, "left_handle_offset", 30)
    addon.common.compat.set_timing(source, "duration", 6)
    editor.active_strip = source
    source.select = True
    state = scene.vfx_mocap
    bpy.ops.vfxmocap.choose_mode(mode="pose")
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    job_id = state.jobs[0].name
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the demo pose job", timeout=120)
    job = state.jobs[job_id]
    record["demo_job"] = {"state": job.state, "error": job.error, "frames": job.frame_count}
    harness.pump_until(addon, lambda: bool(job.result_strip), "the skeleton strip to be inserted", timeout=30)
    record["demo_strip"] = job.result_strip
    bpy.ops.vfxmocap.daemon_stop()
    harness.pump_until(addon, lambda: rt.status.state == "stopped", "the daemon to stop")

    again_started = time.monotonic()
    assert bpy.ops.vfxmocap.setup_daemon() == {"FINISHED"}
    again = wait_run(addon, {}, 120)
    record["again"] = {
        "state": again.state,
        "did_nothing": again.did_nothing,
        "message": again.message,
        "seconds": time.monotonic() - again_started,
    }


if __name__ == "__main__":
    arguments = harness.parse_args(("--setup-timeout", {"type": float, "default": 400.0}))
    harness.run_scenario(arguments, scenario)
