"""The "Motion Capture" sidebar tab, in the Sequencer and in the 3D viewport (the same panels in both).

Draw code only reads: the daemon status and last error from :mod:`.runtime`, the rest from the scene.
Main thread, called by Blender whenever a region redraws; the pump tags regions for redraw on changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy

from ..bridge.cluster_status import cluster_lines
from ..common import compat, runtime, ui
from ..common.properties import MocapJob
from ..setup import model_fetch_ui
from .operators import RETRYABLE

STATE_ICONS = {
    "stopped": "RADIOBUT_OFF",
    "starting": "SORTTIME",
    "connected": "CHECKMARK",
    "error": "ERROR",
}
JOB_ICONS = {
    "submitting": "EXPORT",
    "queued": "SORTTIME",
    "running": "PLAY",
    "succeeded": "CHECKMARK",
    "failed": "ERROR",
    "cancelled": "CANCEL",
    "interrupted": "PAUSE",
}
MODE_TITLES = {
    "pose": "Pose",
    "face_swap": "Face swap",
    "liveportrait": "LivePortrait",
    "vace_pose": "VACE from a pose video",
    "vace_motion": "VACE from a motion video",
    "r2v": "VACE from reference images",
}
"""Modes by the names artists know; a ``_14b`` variant adds "(14B)", other modes show their id."""


def mode_title(mode: str) -> str:
    if mode.endswith("_14b"):
        return f"{mode_title(mode.removesuffix('_14b'))} (14B)"
    return MODE_TITLES.get(mode, mode.replace("_", " ").capitalize())


def _bytes(size: Any) -> str:
    return f"{size / 2**30:.1f} GiB" if isinstance(size, int | float) else "?"


def _draw_health(layout: bpy.types.UILayout, health: Mapping[str, Any]) -> None:
    column = layout.column(align=True)
    device = health.get("device")
    if device:
        column.label(text=f"Device: {device.get('name', '?')} ({device.get('kind', '?')})")
    else:
        column.label(text=f"Device: {health.get('device_status', 'unknown')}")
    device = device or {}
    if device.get("kind") not in (None, "cpu") and device.get("free_memory") is not None:
        column.label(text=f"GPU memory free: {_bytes(device['free_memory'])} of {_bytes(device.get('total_memory'))}")
    memory = health.get("memory") or {}
    column.label(text=f"Memory: {_bytes(memory.get('available'))} free of {_bytes(memory.get('total'))}")
    models = health.get("loaded_models") or []
    names = [str(m.get("mode", "?")) if isinstance(m, Mapping) else str(m) for m in models]
    column.label(text=f"Loaded models: {', '.join(names) or 'none'}")
    queue = health.get("queue") or {}
    running = queue.get("running") or []
    column.label(
        text=f"Queue: {queue.get('depth', 0)} waiting, {len(running) if isinstance(running, list) else running} running"
    )
    cluster = cluster_lines(health.get("executor"))
    if cluster:
        box = layout.box()
        for line in cluster:
            ui.wrapped(box, line)


def draw_daemon(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Daemon panel: status with its reason, health, start/stop/restart, the last error."""
    rt = runtime.get()
    status = rt.status
    where = f" (pid {status.pid}{', started here' if status.owned else ''})" if status.pid else ""
    layout.label(text=f"{status.state.capitalize()}{where}", icon=STATE_ICONS.get(status.state, "QUESTION"))
    if status.message:
        ui.wrapped(layout.box(), status.message)
    if status.state == "connected" and status.health:
        _draw_health(layout, status.health)
    row = layout.row(align=True)
    row.operator("vfxmocap.daemon_start", text="Start", icon="PLAY")
    row.operator("vfxmocap.daemon_stop", text="Stop", icon="SNAP_FACE")
    row.operator("vfxmocap.daemon_restart", text="Restart", icon="FILE_REFRESH")
    if rt.notice:
        box = layout.box()
        header = box.row()
        header.label(text="Data folder", icon="INFO")
        header.operator("vfxmocap.clear_notice", text="", icon="X", emboss=False)
        ui.wrapped(box, rt.notice)
    if rt.last_error:
        box = layout.box()
        header = box.row()
        header.label(text="Last error", icon="ERROR")
        header.operator("vfxmocap.clear_error", text="", icon="X", emboss=False)
        ui.wrapped(box, rt.last_error)


def draw_generate(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Generate panel: modes (ready ones enabled), the chosen mode's options and inputs, Generate."""
    scene = context.scene
    state = scene.vfx_mocap
    modes = runtime.get().modes
    if not modes:
        layout.label(text="Connect to the daemon to see its modes", icon="INFO")
    for name, info in sorted(modes.items()):
        if info.get("ready"):
            layout.operator("vfxmocap.choose_mode", text=mode_title(name), depress=name == state.mode).mode = name
        elif info.get("download"):
            model_fetch_ui.draw_needs_download(layout, name, mode_title(name), info)
        else:
            missing = "; ".join(info.get("missing") or ())
            fix = "; ".join(info.get("fix") or ())
            text = f"{mode_title(name)}: missing {missing}" + (f". Fix: {fix}" if fix else "")
            ui.wrapped(layout, text, icon="ERROR")
    mode_info = modes.get(state.mode, {})
    if mode_info.get("description"):
        ui.wrapped(layout, mode_info["description"], icon="INFO")
    licences = dict.fromkeys(item["licence"] for item in mode_info.get("licences") or ())
    if licences:
        ui.wrapped(layout, f"Licences: {'; '.join(licences)}")
    for param in state.mode_params(state.mode):
        layout.prop(param, param.value_attr, text=param.name.replace("_", " ").capitalize())
    _draw_inputs(layout, scene, mode_info)
    layout.prop(state, "auto_insert")
    row = layout.row()
    row.scale_y = 1.4
    row.enabled = bool(mode_info.get("ready"))
    row.operator("vfxmocap.generate", icon="RENDER_ANIMATION")
    failed = runtime.get().action_errors.get("generate")
    if failed:
        ui.wrapped(layout, failed, icon="ERROR")


def _draw_inputs(layout: bpy.types.UILayout, scene: bpy.types.Scene, mode_info: Mapping[str, Any]) -> None:
    kinds = {slot.get("kind") for slot in mode_info.get("inputs", ())}
    editor = scene.sequence_editor
    if "video" in kinds:
        strip = editor.active_strip if editor is not None else None
        if strip is not None and strip.select:
            layout.label(text=f"Source: {strip.name}", icon="SEQUENCE")
        else:
            layout.label(text="Source: select a strip in the Sequencer", icon="SEQUENCE")
    if "image" in kinds:
        state = scene.vfx_mocap
        layout.prop(state, "reference_source", expand=True)
        if state.reference_source == "FILE":
            layout.prop(state, "reference_path", text="")
        elif state.reference_source == "STRIP" and editor is not None:
            layout.prop_search(state, "reference_strip", editor, compat.ALL_STRIPS_ATTR, text="")


def draw_jobs(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The Jobs panel: the list, then the active job's progress, error, preview and buttons."""
    state = context.scene.vfx_mocap
    layout.template_list("VFXMOCAP_UL_jobs", "", state, "jobs", state, "active_job_index", rows=3)
    if not 0 <= state.active_job_index < len(state.jobs):
        return
    job = state.jobs[state.active_job_index]
    eta = f", {job.eta_s:.0f} s left" if job.eta_s >= 0 and not job.is_final else ""
    layout.progress(factor=job.fraction, type="BAR", text=f"{job.stage or job.state} {job.fraction:.0%}{eta}")
    if job.error:
        ui.wrapped(layout.box(), job.error, icon="ERROR")
    if job.warning:
        ui.wrapped(layout.box(), f"Warning: {job.warning}", icon="ERROR")
    preview = runtime.get().preview(job.name)
    if preview is not None:
        layout.template_icon(icon_value=preview.icon_id, scale=6.0)
    row = layout.row(align=True)
    for operator, label, icon_name, usable in (
        ("vfxmocap.job_cancel", "Cancel", "CANCEL", not job.is_final),
        ("vfxmocap.job_retry", "Retry", "FILE_REFRESH", job.state in RETRYABLE),
        ("vfxmocap.job_insert", "Insert", "SEQ_SEQUENCER", job.state == "succeeded" and not job.result_strip),
        ("vfxmocap.job_open_folder", "", "FILE_FOLDER", True),
        ("vfxmocap.job_remove", "", "TRASH", True),
    ):
        button = row.row(align=True)
        button.enabled = usable  # greyed out where it cannot work (the operator still says why if run)
        button.operator(operator, text=label, icon=icon_name).job_id = job.name
    failed = runtime.get().action_errors.get(job.name)
    if failed:
        ui.wrapped(layout, failed, icon="ERROR")


class VFXMOCAP_UL_jobs(bpy.types.UIList):
    """One row per job: mode, state, progress."""

    def draw_item(self, context, layout, data, item: MocapJob, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=f"{item.mode} {item.name[:6]}", icon=JOB_ICONS.get(item.state, "QUESTION"))
        text = f"{item.fraction:.0%}" if item.state == "running" else item.state
        text += " (warning)" if item.warning else ""
        row.label(text=text)


PANELS = (("daemon", "Daemon", draw_daemon), ("generate", "Generate", draw_generate), ("jobs", "Jobs", draw_jobs))


CLASSES = (VFXMOCAP_UL_jobs, *(cls for key, label, draw in PANELS for cls in ui.sidebar_panels(key, label, draw)))
