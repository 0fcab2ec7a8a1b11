"""The pose round trip on a real movie strip, in two Blender sessions.

``--phase first``: start the daemon from the add-on, run pose on a trimmed movie strip, insert the result
(twice), cancel a long job, submit one more job and save the file while it may still run; Blender then exits,
leaving the daemon to finish that job. ``--phase reopen``: a new Blender opens that file, inserts the first result
again without any daemon, then starts the daemon (or takes over the one still finishing), follows the last job to
its end and lets it auto-insert, then presses Retry on the job cancelled in the first phase and follows the
daemon's second run of it to its automatic insertion.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import harness

SOURCE_OFFSET = 30
"""Content frames trimmed off the source's start (the movie's first frame is black)."""
SOURCE_FRAMES = 12


def strip_record(addon: ModuleType, strip: Any) -> dict[str, Any]:
    return {
        "name": strip.name,
        "type": strip.type,
        "channel": strip.channel,
        "frame_final_start": addon.common.compat.timing(strip, "left_handle"),
        "frame_final_duration": addon.common.compat.timing(strip, "duration"),
        "directory": bpy.path.abspath(strip.directory),
        "first_file": strip.elements[0].filename,
        "elements": len(strip.elements),
        "props": {key: value for key, value in strip.items() if key.startswith("vfx_")},
    }


def result_strips(addon: ModuleType, job_id: str) -> list[Any]:
    editor = bpy.context.scene.sequence_editor
    return [s for s in addon.common.compat.all_strips(editor) if s.get("vfx_job_id") == job_id]


def select_only(editor: Any, addon: ModuleType, strip: Any) -> None:
    for other in addon.common.compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip


def generate(addon: ModuleType) -> Any:
    result, error = harness.operator_report(bpy.ops.vfxmocap.generate)
    assert result == {"FINISHED"}, error
    return bpy.context.scene.vfx_mocap.jobs[0]


def first_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python, args.data_dir)
    rt = harness.start_daemon(addon)
    record["pose_mode"] = dict(rt.modes.get("pose", {}))

    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    source = addon.common.compat.new_movie_strip(editor, "source", args.video, 1, 1)
    addon.common.compat.set_timing(source, "left_handle_offset", SOURCE_OFFSET)
    addon.common.compat.set_timing(source, "duration", SOURCE_FRAMES)
    blocker = addon.common.compat.new_movie_strip(editor, "blocker", args.video, 2, 35)  # overlaps the source
    addon.common.compat.set_timing(blocker, "duration", 5)
    far = addon.common.compat.new_movie_strip(editor, "far", args.video, 3, 100)  # channel 3, but later in time
    addon.common.compat.set_timing(far, "duration", 5)
    record["source"] = {
        "frame_final_start": addon.common.compat.timing(source, "left_handle"),
        "channel": source.channel,
    }

    state = scene.vfx_mocap
    state.auto_insert = False
    bpy.ops.vfxmocap.choose_mode(mode="pose")
    params = {param.name: param for param in state.mode_params("pose")}
    params["skeleton_background"].set_value("overlay")
    select_only(editor, addon, source)

    job = generate(addon)
    job_id = job.name
    record["job_state_after_generate"] = job.state
    seen: dict[str, Any] = {"fractions": [], "preview_size": None}

    def finished() -> bool:
        item = state.jobs[job_id]
        seen["fractions"].append(item.fraction)
        preview = rt.preview(job_id)
        if preview is not None:
            seen["preview_size"] = list(preview.image_size)
        return item.is_final

    record["pose_s"] = harness.pump_until(addon, finished, "the pose job", timeout=120)
    job = state.jobs[job_id]
    record["job"] = {
        "id": job_id,
        "state": job.state,
        "error": job.error,
        "frame_count": job.frame_count,
        "output_dir": job.output_dir,
        "max_fraction": max(seen["fractions"]),
        "preview_size": seen["preview_size"],
    }
    harness.pump_until(addon, lambda: bool(rt.status.health.get("loaded_models")), "the health to show the model")
    record["panels"] = {
        "generate": harness.draw_panel(addon.generate.panels.draw_generate),
        "jobs": harness.draw_panel(addon.generate.panels.draw_jobs),
        "daemon": harness.draw_panel(addon.generate.panels.draw_daemon),
    }
    record["strips_before_insert"] = len(result_strips(addon, job_id))
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_insert, job_id=job_id)
    assert result == {"FINISHED"}, error
    record["inserted"] = strip_record(addon, result_strips(addon, job_id)[0])
    harness.operator_report(bpy.ops.vfxmocap.job_insert, job_id=job_id)
    record["strips_after_second_insert"] = len(result_strips(addon, job_id))

    long_source = addon.common.compat.new_movie_strip(editor, "long", args.video, 6, 300)
    select_only(editor, addon, long_source)
    long_job_id = generate(addon).name
    harness.pump_until(
        addon,
        lambda: state.jobs[long_job_id].state == "running" and state.jobs[long_job_id].fraction > 0,
        "the long job to run",
        timeout=60,
    )
    record["cancel_at_fraction"] = state.jobs[long_job_id].fraction
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_cancel, job_id=long_job_id)
    assert result == {"FINISHED"}, error
    harness.pump_until(addon, lambda: state.jobs[long_job_id].is_final, "the cancel", timeout=60)
    record["cancelled"] = {
        "id": long_job_id,
        "state": state.jobs[long_job_id].state,
        "fraction": state.jobs[long_job_id].fraction,
        "source": {
            "frame_final_start": addon.common.compat.timing(long_source, "left_handle"),
            "frame_final_duration": addon.common.compat.timing(long_source, "duration"),
            "channel": long_source.channel,
        },
    }

    select_only(editor, addon, source)
    last_id = generate(addon).name
    harness.pump_until(addon, lambda: state.jobs[last_id].state != "submitting", "the last job's acknowledgement")
    record["last_job"] = {"id": last_id, "state_at_save": state.jobs[last_id].state}
    bpy.ops.wm.save_as_mainfile(filepath=args.blend)


def reopen_phase(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python, args.data_dir)
    rt = addon.common.runtime.get()
    bpy.ops.wm.open_mainfile(filepath=args.blend)
    scene = bpy.context.scene
    state = scene.vfx_mocap
    record["jobs"] = {job.name: {"state": job.state, "mode": job.mode} for job in state.jobs}
    first_id, last_id = args.first_job, args.last_job

    editor = scene.sequence_editor
    for strip in result_strips(addon, first_id):
        addon.common.compat.top_level_strips(editor).remove(strip)
    record["daemon_state_at_insert"] = rt.status.state
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_insert, job_id=first_id)
    assert result == {"FINISHED"}, error
    record["reinserted"] = strip_record(addon, result_strips(addon, first_id)[0])

    state.auto_insert = True
    bpy.ops.vfxmocap.daemon_start()
    harness.pump_until(addon, lambda: rt.status.state == "connected", "the daemon to connect")
    harness.pump_until(addon, lambda: state.jobs[last_id].is_final, "the last job's record", timeout=60)
    record["last_job_state_after_reopen"] = state.jobs[last_id].state
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    with client_module.Client.from_file(connection_file()) as client:
        attempts = client.job(last_id)["attempts"]
    record["last_job_final"] = {
        "state": state.jobs[last_id].state,
        "error": state.jobs[last_id].error,
        "attempts": attempts,
    }
    harness.pump_until(addon, lambda: bool(result_strips(addon, last_id)), "the automatic insertion")
    record["auto_inserted"] = strip_record(addon, result_strips(addon, last_id)[0])
    record["retry"] = retry_cancelled(addon, args.cancelled_job)


def retry_cancelled(addon: ModuleType, job_id: str) -> dict[str, Any]:
    """Press Retry on a cancelled job as a user would in the Jobs panel and follow the daemon's new run of it.

    The record says what happened; the test judges it. A wait that times out is recorded instead of raised, so the
    scenario's other records still reach their tests.
    """
    state = bpy.context.scene.vfx_mocap
    state.active_job_index = state.jobs.find(job_id)
    retry: dict[str, Any] = {"panel_before": harness.draw_panel(addon.generate.panels.draw_jobs)}
    result, error = harness.operator_report(bpy.ops.vfxmocap.job_retry, job_id=job_id)
    retry.update(result=sorted(result or ()), error=error, states=[state.jobs[job_id].state], timed_out=None)

    def seen(job: Any) -> Any:
        if job.state != retry["states"][-1]:
            retry["states"].append(job.state)
        return job

    try:
        harness.pump_until(addon, lambda: seen(state.jobs[job_id]).state != "cancelled", "the retry to be taken", 30)
        harness.pump_until(addon, lambda: seen(state.jobs[job_id]).is_final, "the retried job", 180)
        harness.pump_until(addon, lambda: bool(result_strips(addon, job_id)), "the retried job's insertion")
    except AssertionError as exc:
        retry["timed_out"] = str(exc)
    job = state.jobs[job_id]
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    with client_module.Client.from_file(connection_file()) as client:
        retry["daemon"] = {key: client.job(job_id)[key] for key in ("state", "attempts")}
    strips = result_strips(addon, job_id)
    retry.update(
        final={"state": job.state, "error": job.error, "frame_count": job.frame_count, "fraction": job.fraction},
        inserted=strip_record(addon, strips[0]) if strips else None,
        panel_after=harness.draw_panel(addon.generate.panels.draw_jobs),
    )
    return retry


def connection_file() -> Path:
    return Path(os.environ["VFXMOCAP_RUNTIME_DIR"]) / "daemon.json"


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    (first_phase if args.phase == "first" else reopen_phase)(args, record)


if __name__ == "__main__":
    harness.run_scenario(
        harness.parse_args(
            ("--phase", {"choices": ("first", "reopen"), "required": True}),
            ("--blend", {"required": True}),
            ("--first-job", {"default": ""}),
            ("--last-job", {"default": ""}),
            ("--cancelled-job", {"default": ""}),
        ),
        main,
    )
