"""Turn the panel's settings and the selected strip into a job request, and record the job in the scene.

Main thread only: it reads Blender data. Sending is the connection thread's business.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bpy

from .connection_thread import DaemonStatus
from .properties import MocapJob
from .strips import BadInput, StripSource, reference_spec, selected_strip, strip_source


@dataclass(frozen=True)
class JobRequest:
    """Everything ``Connection.submit`` sends, plus where the source strip was."""

    job_id: str
    mode: str
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    source: StripSource | None
    licences: str = ""
    """The mode's models and their licences, ``"model: licence; ..."``, from the daemon's health."""


def licences_text(mode_info: Mapping[str, Any]) -> str:
    """``"model: licence; ..."`` of a mode, from its entry in the daemon's health."""
    return "; ".join(f"{item['model']}: {item['licence']}" for item in mode_info.get("licences") or ())


def prepare(scene: bpy.types.Scene, status: DaemonStatus, mode: str = "") -> JobRequest:
    """Build the request for ``mode`` (default: the scene's chosen mode). Raises BadInput naming what to change.

    Each of the mode's media inputs is filled from the panel: a ``video`` input from the selected strip, the
    mode's first ``image`` input from the reference. Further optional image inputs (a face swap's target face,
    r2v's extra references) stay empty. Input problems are reported before a mode that is not ready, so the
    user learns everything the panel can fix first.
    """
    if status.state == "starting":
        raise BadInput("The daemon is still starting: try again in a moment")
    if status.state != "connected":
        reason = " (it failed: the Daemon panel says why)" if status.state == "error" else ""
        raise BadInput(f"The daemon is not running{reason}: start it in the Motion Capture panel")
    state = scene.vfx_mocap
    mode = mode or state.mode
    modes = (status.health or {}).get("modes", {})
    info = modes.get(mode)
    if info is None:
        raise BadInput(f"The daemon has no mode '{mode}'; it offers: {', '.join(sorted(modes)) or 'none'}")
    inputs: dict[str, dict[str, Any]] = {}
    source = None
    reference_used = False
    for slot in info.get("inputs", ()):
        if slot["kind"] == "video":
            source = strip_source(scene, selected_strip(scene))
            inputs[slot["name"]] = source.spec
        elif slot["kind"] == "image" and not reference_used:
            reference_used = True
            reference = reference_spec(scene)
            if reference is not None:
                inputs[slot["name"]] = reference
            elif slot.get("required", True):
                raise BadInput(
                    f"Mode '{mode}' needs a reference image: choose a file or an image strip under Reference"
                )
        elif slot["kind"] == "image" and slot.get("required", True):
            raise BadInput(
                f"Mode '{mode}' needs a second image ('{slot['name']}') that the panel cannot set yet: "
                "submit it with `python -m daemon submit`"
            )
    if not info.get("ready", False):
        missing = "; ".join(info.get("missing") or ()) or "the daemon did not say what"
        raise BadInput(f"Mode '{mode}' is not ready. Missing: {missing}")
    defaults = {schema["name"]: schema.get("default") for schema in info.get("params", ())}
    params = {
        param.name: param.value
        for param in state.mode_params(mode)
        # An option without a default that the panel holds at 0 or "" was never set: the daemon picks its value.
        if defaults.get(param.name) is not None or param.kind == "bool" or param.value not in (0, "")
    }
    return JobRequest(uuid.uuid4().hex, mode, params, inputs, source, licences_text(info))


def record(scene: bpy.types.Scene, request: JobRequest) -> MocapJob:
    """Add the job at the top of the scene's job list (state ``submitting``) and make it the active one."""
    jobs = scene.vfx_mocap.jobs
    job = jobs.add()
    job.name = request.job_id
    job.mode = request.mode
    job.params_json = json.dumps(request.params, sort_keys=True)
    job.licences = request.licences
    job.inputs_json = json.dumps(request.inputs, sort_keys=True)
    if request.source is not None:
        job.source_strip = request.source.strip_name
        job.source_channel = request.source.channel
        job.source_frame_start = request.source.frame_start
        job.source_frame_count = request.source.frame_count
        job.source_content_offset = request.source.content_offset
    jobs.move(len(jobs) - 1, 0)
    scene.vfx_mocap.active_job_index = 0
    return jobs[0]
