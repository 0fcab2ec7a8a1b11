"""Data that survives: the data folder outside the extension, and results kept beside a saved .blend.

``--phase first`` (fresh HOME, no data folder configured): an older version's store inside the extension's folder
is moved to the platform data folder at enable; a pose job runs and its result is inserted; the file is saved into
a project folder (its results copied beside it); the extension is uninstalled with Blender's own operator and
installed again, and the daemon it starts still has the job history, the result and the weights.
``--phase reopen`` (another fresh HOME, the project folder moved elsewhere, no extension): the saved file opens
with every frame of its result strip found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import bpy
import harness

FRAMES = 4


def run_pose(addon: Any, video: str) -> Any:
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    source = addon.common.compat.new_movie_strip(editor, "source", video, 1, 1)
    addon.common.compat.set_timing(source, "left_handle_offset", 30)
    addon.common.compat.set_timing(source, "duration", FRAMES)
    editor.active_strip = source
    source.select = True
    state = scene.vfx_mocap
    state.auto_insert = False
    bpy.ops.vfxmocap.choose_mode(mode="pose")
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    job_id = state.jobs[0].name
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the pose job", timeout=120)
    job = state.jobs[job_id]
    assert job.state == "succeeded", job.error
    return job


def truncated_clip_job(addon: Any, video: str, cut: Path) -> dict[str, Any]:
    """A pose job on a copy of ``video`` cut short (its header still promises every frame)."""
    data = Path(video).read_bytes()
    cut.write_bytes(data[: len(data) // 12])
    scene = bpy.context.scene
    editor = scene.sequence_editor
    strip = addon.common.compat.new_movie_strip(editor, "cut", str(cut), 5, 1)
    for other in addon.common.compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    state = scene.vfx_mocap
    job_id = state.jobs[0].name
    harness.pump_until(addon, lambda: state.jobs[job_id].is_final, "the truncated clip's job", timeout=120)
    job = state.jobs[job_id]
    return {
        "state": job.state,
        "warning": job.warning,
        "jobs_panel": harness.draw_panel(addon.generate.panels.draw_jobs),
    }


def first_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    old = addon.common.preferences.old_store_dir()
    data = addon.common.preferences.data_dir()
    harness.disable_extension()
    (old / "jobs" / "older-job" / "outputs" / "frames").mkdir(parents=True)
    (old / "jobs" / "older-job" / "outputs" / "frames" / "000000.png").write_bytes(b"png")
    sqlite3.connect(old / "jobs.sqlite3").close()
    (old / "models").mkdir()
    (old / "models" / "weights.onnx").write_bytes(b"w" * 1000)
    addon = harness.enable_extension()
    record["data_dir"] = str(data)
    record["notice"] = addon.common.runtime.get().notice
    record["moved"] = {
        "old_gone": not old.exists(),
        "job_frame": (data / "jobs" / "older-job" / "outputs" / "frames" / "000000.png").is_file(),
        "weights": (data / "models" / "weights.onnx").is_file(),
    }
    record["inside_extension"] = str(data).startswith(str(Path(bpy.utils.extension_path_user(harness.MODULE))))

    harness.configure(args.daemon_python)
    harness.preferences().device = "cpu"
    rt = harness.start_daemon(addon)
    generate = harness.draw_panel(addon.generate.panels.draw_generate)
    record["face_swap_row"] = generate[generate.index("Face swap: needs a download (889 MB)") :][:3]
    result, error = harness.operator_report(bpy.ops.vfxmocap.fetch_models, mode="face_swap")
    assert result == {"FINISHED"}, error
    fetch = addon.setup.model_fetch_ui.run_for("face_swap")
    record["fetch_argv"] = fetch.argv
    assert fetch.wait(60), "the fetch (with no way to huggingface.co from here) ended"
    generate = harness.draw_panel(addon.generate.panels.draw_generate)
    row = generate.index("Face swap: needs a download (889 MB)")
    record["face_swap_after_fetch"] = generate[row : row + 5]
    record["fetch_state"] = fetch.state

    job = run_pose(addon, args.video)
    job_id = job.name
    record["finished_job"] = {"state": job.state, "stage": job.stage, "eta_s": job.eta_s}
    record["truncated"] = truncated_clip_job(addon, args.video, Path(args.project).parent / "cut.avi")
    bpy.context.scene.vfx_mocap.active_job_index = 0
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_insert, job_id=job_id)
    assert result == {"FINISHED"}, error
    (strip,) = [s for s in addon.common.compat.all_strips(bpy.context.scene.sequence_editor) if s.get("vfx_job_id")]
    record["inserted_directory"] = bpy.path.abspath(strip.directory)
    project = Path(args.project)
    project.mkdir(parents=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "shot.blend"))
    record["saved_directory"] = strip.directory
    record["kept_files"] = sorted(p.name for p in (project / "vfx_results" / job_id).iterdir())

    bpy.ops.vfxmocap.daemon_stop()
    harness.pump_until(addon, lambda: rt.status.state == "stopped", "the daemon to stop")
    repos = [r.module for r in bpy.context.preferences.extensions.repos]
    result = bpy.ops.extensions.package_uninstall(repo_index=repos.index("user_default"), pkg_id=harness.EXTENSION_ID)
    record["uninstalled"] = sorted(result) == ["FINISHED"] and harness.MODULE not in bpy.context.preferences.addons
    record["after_uninstall"] = {
        "database": (data / "jobs.sqlite3").is_file(),
        "job_frames": len(list((data / "jobs" / job_id / "outputs" / "frames").glob("*.png"))),
        "weights": (data / "models" / "weights.onnx").is_file(),
    }
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python)
    harness.preferences().device = "cpu"
    rt = harness.start_daemon(addon, "the reinstalled add-on's daemon")
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    connection = __import__(f"{harness.MODULE}.shared.connection", fromlist=["default_connection_file"])
    with client_module.Client.from_file(connection.default_connection_file()) as client:
        jobs, _ = client.jobs_page(limit=10)
    record["history_after_reinstall"] = [j["job_id"] for j in jobs]
    record["job_id"] = job_id
    bpy.ops.vfxmocap.daemon_stop()
    harness.pump_until(addon, lambda: rt.status.state == "stopped", "the daemon to stop")


def reopen_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    moved = Path(args.project).with_name("moved-project")
    shutil.move(args.project, moved)
    bpy.ops.wm.open_mainfile(filepath=str(moved / "shot.blend"))
    editor = bpy.context.scene.sequence_editor
    strips = [s for s in editor.sequences_all if s.type == "IMAGE"] if hasattr(editor, "sequences_all") else []
    strips = strips or [s for s in editor.strips_all if s.type == "IMAGE"]
    (strip,) = strips
    folder = bpy.path.abspath(strip.directory)
    record["reopened"] = {
        "directory": strip.directory,
        "inside_moved_project": os.path.realpath(folder).startswith(os.path.realpath(moved)),
        "frames_found": sum(os.path.isfile(os.path.join(folder, e.filename)) for e in strip.elements),
        "elements": len(strip.elements),
        "job_id": strip.get("vfx_job_id"),
    }


if __name__ == "__main__":
    arguments = harness.parse_args(("--phase", {"choices": ["first", "reopen"]}), ("--project", {"required": True}))
    harness.run_scenario(arguments, first_phase if arguments.phase == "first" else reopen_phase)
