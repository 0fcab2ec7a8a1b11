"""Pose on a movie strip through a daemon on another machine: set its connection file and this Blender's key file
in the preferences, connect, run the job, and let the result insert itself from the copy the add-on downloads
(the daemon's own job folder cannot be read from here)."""

from __future__ import annotations

import argparse
from typing import Any

import bpy
import harness

SOURCE_OFFSET = 30
"""Content frames trimmed off the source's start (the movie's first frame is black)."""
SOURCE_FRAMES = 6


def scenario(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(data_dir=args.data_dir, connection_file=args.connection_file)
    harness.preferences().client_key_file = args.key_file
    record["preferences"] = harness.draw_preferences()
    rt = harness.start_daemon(addon, "the remote daemon to connect")

    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    source = addon.common.compat.new_movie_strip(editor, "source", args.video, 1, 1)
    addon.common.compat.set_timing(source, "left_handle_offset", SOURCE_OFFSET)
    addon.common.compat.set_timing(source, "duration", SOURCE_FRAMES)
    editor.active_strip = source
    source.select = True
    state = scene.vfx_mocap
    record["auto_insert"] = state.auto_insert
    bpy.ops.vfxmocap.choose_mode(mode="pose")
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    job_id = state.jobs[0].name

    def inserted() -> bool:
        return any(s.get("vfx_job_id") == job_id for s in addon.common.compat.all_strips(editor))

    try:
        harness.pump_until(addon, inserted, "the result strip", timeout=120)
    finally:
        job = state.jobs[job_id]
        record["job"] = {"id": job_id, "state": job.state, "error": job.error, "output_dir": job.output_dir}
    strip = next(s for s in addon.common.compat.all_strips(editor) if s.get("vfx_job_id") == job_id)
    record["strip"] = {
        "directory": bpy.path.abspath(strip.directory),
        "files": [element.filename for element in strip.elements],
        "start": addon.common.compat.timing(strip, "left_handle"),
    }
    record["source_start"] = addon.common.compat.timing(source, "left_handle")
    record["status"] = rt.status.state

    # Saved with Keep Results With the .blend (on by default): the copy goes beside the file as well.
    record["keep_results_with_blend"] = harness.preferences().keep_results_with_blend
    bpy.ops.wm.save_as_mainfile(filepath=args.blend)
    record["saved_strip"] = {
        "directory": strip.directory,
        "absolute": bpy.path.abspath(strip.directory),
        "files": [element.filename for element in strip.elements],
    }

    # Create Client Key: a key pair in the data folder, set as the preference; pressed again, the same one.
    presses = []
    for _ in range(2):
        result, error = harness.operator_report(bpy.ops.vfxmocap.create_client_key)
        assert result == {"FINISHED"}, error
        presses.append(harness.preferences().client_key_file)
    record["created_key"] = {"preference": presses, "preferences_drawn": harness.draw_preferences()}


if __name__ == "__main__":
    harness.run_scenario(
        harness.parse_args(
            ("--connection-file", {"required": True}),
            ("--key-file", {"required": True}),
            ("--blend", {"required": True}),
        ),
        scenario,
    )
