"""The panel's settings and the selected strip as requests to the daemon: the one place a job or a live session
is built on the Blender side, and the one place a new job is recorded and sent.

Main thread only: it reads Blender data. The checks (daemon, mode, each input spec, readiness) are the bridge's
(:mod:`..bridge.requests`), in that order; sending is the connection thread's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import bpy

from ..bridge import requests as checked
from ..bridge.live_client import LiveRequest
from ..bridge.requests import JobRequest
from . import preferences, runtime
from .errors import UserError
from .properties import MocapJob
from .strips import reference_spec, selected_strip, strip_source


def job_request(scene: bpy.types.Scene, mode: str = "", params: Mapping[str, Any] | None = None) -> JobRequest:
    """The request for ``mode`` (default: the scene's chosen mode) with the panel's options and ``params`` on
    top. Raises UserError naming what to change.

    Each of the mode's media inputs is filled from the panel: a ``video`` input from the selected strip, the
    mode's first ``image`` input from the reference. Further optional image inputs (a face swap's target face,
    r2v's extra references) stay empty. Input problems are reported before a mode that is not ready, so the
    user learns everything the panel can fix first.
    """
    state = scene.vfx_mocap
    mode = mode or state.mode
    info = checked.mode_info(runtime.get().status, mode)
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
                raise UserError(
                    f"Mode '{mode}' needs a reference image: choose a file or an image strip under Reference"
                )
        elif slot["kind"] == "image" and slot.get("required", True):
            raise UserError(
                f"Mode '{mode}' needs a second image ('{slot['name']}') that the panel cannot set yet: "
                "submit it with `python -m daemon submit`"
            )
    defaults = {schema["name"]: schema.get("default") for schema in info.get("params", ())}
    values = {
        param.name: param.value
        for param in state.mode_params(mode)
        # An option without a default that the panel holds at 0 or "" was never set: the daemon picks its value.
        if defaults.get(param.name) is not None or param.kind == "bool" or param.value not in (0, "")
    }
    return checked.job_request(mode, info, {**values, **(params or {})}, inputs, source)


def submit(scene: bpy.types.Scene, request: JobRequest) -> MocapJob:
    """Add the job at the top of the scene's job list (state ``submitting``), make it the active one, and queue it
    for the connection thread, which sends it."""
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
    runtime.get().connection.submit(request.job_id, request.mode, request.params, request.inputs)
    return jobs[0]


def live_mode_info(mode: str) -> dict[str, Any]:
    """The daemon's description of ``mode``; UserError when it cannot run live now (not connected, no such mode,
    no live variant)."""
    return checked.mode_info(runtime.get().status, mode, live=True)


def live_request(
    mode: str,
    info: Mapping[str, Any],
    source: Mapping[str, Any],
    params: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
) -> LiveRequest:
    """A live session of ``mode`` (``info`` from :func:`live_mode_info`) to the daemon the add-on is connected
    to. Raises UserError naming what to change."""
    settings = preferences.daemon_settings()
    return checked.live_request(settings, runtime.get().status, mode, info, source, params, inputs or {})
