"""Operators' reports on bad input, against a daemon started outside Blender (found through its
connection file, as the preferences allow) with the test modes of ``plugins/vfx_test_modes.py``."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import bpy
import harness

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def start_foreign_daemon(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen, str]:
    """A daemon as a user would start it from a terminal; returns it and its connection file."""
    process = subprocess.Popen(
        [
            args.daemon_python,
            "-m",
            "daemon",
            "serve",
            "--runtime-dir",
            str(folder / "run"),
            "--data-dir",
            args.data_dir,
            "--device",
            "cpu",
            "--plugin",
            "vfx_test_modes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS)},
    )
    line = process.stdout.readline().strip()
    assert line.startswith("ready "), f"the daemon did not start: {line!r}"
    return process, line.removeprefix("ready ")


def generate_error() -> str:
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result is None, "generate should have refused"
    return error


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bad-", dir="/tmp"))
    daemon, connection_file = start_foreign_daemon(args, folder)
    try:
        check_reports(args, record, folder, daemon, connection_file)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        shutil.rmtree(folder, ignore_errors=True)


def check_reports(
    args: argparse.Namespace, record: dict[str, Any], folder: Path, daemon: subprocess.Popen, connection_file: str
) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(connection_file=connection_file)
    rt = addon.common.runtime.get()
    scene = bpy.context.scene
    state = scene.vfx_mocap

    record["daemon_not_running"] = generate_error()
    bpy.ops.vfxmocap.daemon_start()
    harness.pump_until(addon, lambda: rt.status.state == "connected", "the foreign daemon to connect")
    record["connected"] = {"owned": rt.status.owned, "pid": rt.status.pid, "daemon_pid": daemon.pid}
    record["modes"] = {name: bool(info.get("ready")) for name, info in rt.modes.items()}

    record["no_strip"] = generate_error()
    editor = scene.sequence_editor_create()
    moved_video = folder / "moved.avi"
    shutil.copy(args.video, moved_video)
    missing = addon.common.compat.new_movie_strip(editor, "missing", str(moved_video), 1, 1)
    missing.select = False
    editor.active_strip = missing
    record["strip_not_selected"] = generate_error()
    missing.select = True
    moved_video.unlink()
    record["file_missing"] = generate_error()

    broken = folder / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    still = addon.common.compat.new_image_strip(editor, "broken", str(broken), 2, 1)
    missing.select = False
    still.select = True
    editor.active_strip = still
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    record["unreadable_submit"] = {"result": sorted(result or ()), "error": error}
    job_id = state.jobs[0].name
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the daemon to refuse the broken image")
    record["unreadable_job"] = {"state": state.jobs[job_id].state, "error": state.jobs[job_id].error}
    record["last_error_after_unreadable"] = rt.last_error
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_retry, job_id=job_id)
    record["retry_sent_state"] = state.jobs[job_id].state
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the resubmitted job", timeout=60)
    record["retried_refused_job"] = {
        "result": sorted(result or ()),
        "state": state.jobs[job_id].state,
        "error": state.jobs[job_id].error,
        "stage": state.jobs[job_id].stage,
    }

    source = addon.common.compat.new_movie_strip(editor, "source", args.video, 3, 1)
    addon.common.compat.set_timing(source, "left_handle_offset", 40)
    addon.common.compat.set_timing(source, "duration", 3)
    still.select = False
    source.select = True
    editor.active_strip = source
    bpy.ops.vfxmocap.choose_mode(mode="reference_overlay")
    record["reference_none"] = generate_error()
    state.reference_source = "FILE"
    state.reference_path = str(folder / "no_such_reference.png")
    record["reference_file_missing"] = generate_error()
    state.reference_source = "STRIP"
    state.reference_strip = "no such strip"
    record["reference_strip_missing"] = generate_error()
    state.reference_source = "FILE"
    state.reference_path = args.reference
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    job_id = state.jobs[0].name
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the reference job", timeout=60)
    record["reference_job"] = {"state": state.jobs[job_id].state, "error": state.jobs[job_id].error}

    bpy.ops.vfxmocap.choose_mode(mode="needs_missing_package")
    record["mode_not_ready"] = generate_error()
    record["generate_panel_after_error"] = harness.draw_panel(addon.generate.panels.draw_generate)
    record["insert_unfinished"] = harness.operator_report(bpy.ops.vfxmocap.job_insert, job_id=state.jobs[1].name)[1]
    record["last_error_in_panel"] = rt.last_error
    record["panels"] = {
        "daemon": harness.draw_panel(addon.generate.panels.draw_daemon),
        "generate": harness.draw_panel(addon.generate.panels.draw_generate),
        "jobs": harness.draw_panel(addon.generate.panels.draw_jobs),
    }

    # A malformed update (a bug on either side) is reported in the panel; the pump goes on with the rest.
    updates = __import__(f"{harness.MODULE}.addon.bridge.connection_thread", fromlist=["JobUpdate"])
    messages = __import__(f"{harness.MODULE}.shared.messages", fromlist=["JobView"])
    bad = updates.JobUpdate(messages.JobView(state.jobs[0].name, "reference_overlay", "half-done"))
    rt.connection._updates.put(bad)
    rt.connection._updates.put(updates.RequestFailed("cancel", "applied after the bad update", state.jobs[1].name))
    first_interval = addon.common.pump.tick()
    applied_after = state.jobs[1].error
    rt.connection._updates.put(bad)
    record["malformed_update"] = {
        "intervals": [first_interval, addon.common.pump.tick()],
        "applied_after": applied_after,
        "last_error": rt.last_error,
    }

    bpy.ops.vfxmocap.daemon_stop()
    harness.pump_until(addon, lambda: rt.status.state == "stopped", "the daemon to stop")
    record["foreign_daemon_exit"] = daemon.wait(timeout=15)


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(("--reference", {"required": True})), main)
