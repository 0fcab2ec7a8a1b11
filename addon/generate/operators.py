# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Operators behind the panel's buttons. Main thread; none waits for the daemon.

Bad input is reported with ``self.report({'ERROR'}, message)`` and ``{'CANCELLED'}``, and the message is kept
as the panel's last error. Requests to the daemon are queued to the connection thread; their outcome
arrives through the pump (job list, daemon status, last error).
"""

from __future__ import annotations

import json
import os

import bpy

from ..common import preferences, requests, runtime, strips
from ..common.errors import UserError, fail
from ..common.properties import MocapJob

RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})


class VFXMOCAP_OT_daemon_start(bpy.types.Operator):
    """Start the daemon, or connect to the one already running"""

    bl_idname = "vfxmocap.daemon_start"
    bl_label = "Start Daemon"

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.get().connection.start_daemon(preferences.daemon_settings())
        return {"FINISHED"}


class VFXMOCAP_OT_daemon_stop(bpy.types.Operator):
    """Shut the daemon down; running jobs stop and can be retried later"""

    bl_idname = "vfxmocap.daemon_stop"
    bl_label = "Stop Daemon"

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.get().connection.stop_daemon()
        return {"FINISHED"}


class VFXMOCAP_OT_daemon_restart(bpy.types.Operator):
    """Stop the daemon and start it again (with the current preferences)"""

    bl_idname = "vfxmocap.daemon_restart"
    bl_label = "Restart Daemon"

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.get().connection.restart_daemon(preferences.daemon_settings())
        return {"FINISHED"}


class VFXMOCAP_OT_choose_mode(bpy.types.Operator):
    """Use this mode for the next job"""

    bl_idname = "vfxmocap.choose_mode"
    bl_label = "Choose Mode"
    bl_options = frozenset({"UNDO"})

    mode: bpy.props.StringProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        state = context.scene.vfx_mocap
        state.mode = self.mode
        state.sync_params(runtime.get().modes)
        return {"FINISHED"}


class VFXMOCAP_OT_generate(bpy.types.Operator):
    """Send the selected strip (and the reference) to the daemon with the chosen mode"""

    bl_idname = "vfxmocap.generate"
    bl_label = "Generate"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            request = requests.job_request(context.scene)
        except UserError as exc:
            return fail(self, exc, "generate")
        runtime.get().action_errors.pop("generate", None)
        requests.submit(context.scene, request)
        self.report({"INFO"}, f"Submitted {request.mode} job {request.job_id[:8]}")
        return {"FINISHED"}


class _JobOperator(bpy.types.Operator):
    """Base of the operators that act on one job of the scene's list. Each subclass defines
    ``act(context, job)``, which does its action or raises ``UserError`` with the reason."""

    job_id: bpy.props.StringProperty()

    def job(self, context: bpy.types.Context) -> MocapJob | None:
        return context.scene.vfx_mocap.jobs.get(self.job_id)

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self.job(context)
        if job is None:
            return fail(self, f"No job {self.job_id!r} in this scene")
        try:
            self.act(context, job)
        except UserError as exc:
            return fail(self, exc, job.name)
        runtime.get().action_errors.pop(job.name, None)
        return {"FINISHED"}


class VFXMOCAP_OT_job_cancel(_JobOperator):
    """Cancel this job"""

    bl_idname = "vfxmocap.job_cancel"
    bl_label = "Cancel Job"

    def act(self, context: bpy.types.Context, job: MocapJob) -> None:
        if job.is_final:
            raise UserError(f"Job {job.name[:8]} {job.state_text}: nothing to cancel")
        runtime.get().connection.cancel(job.name)


class VFXMOCAP_OT_job_retry(_JobOperator):
    """Run this job again with the same inputs and options"""

    bl_idname = "vfxmocap.job_retry"
    bl_label = "Retry Job"

    def act(self, context: bpy.types.Context, job: MocapJob) -> None:
        if job.state not in RETRYABLE:
            raise UserError(
                f"Job {job.name[:8]} {job.state_text}: only failed, cancelled or interrupted jobs can be retried"
            )
        job.error = ""
        if job.refused_at_submit:  # the daemon never took it: submit it again, as it was
            job.refused_at_submit = False
            job.state = "submitting"
            runtime.get().connection.submit(job.name, job.mode, job.params, json.loads(job.inputs_json))
            return
        runtime.get().connection.retry(job.name)


class VFXMOCAP_OT_job_insert(_JobOperator):
    """Insert this job's result into the sequencer above its source strip"""

    bl_idname = "vfxmocap.job_insert"
    bl_label = "Insert Result"
    bl_options = frozenset({"UNDO"})

    def act(self, context: bpy.types.Context, job: MocapJob) -> None:
        if job.state != "succeeded":
            raise UserError(f"Job {job.name[:8]} {job.state_text}: only a succeeded job has a result")
        strip = strips.insert_result_strip(context.scene, job)
        self.report({"INFO"}, f"Result of {job.mode} job {job.name[:8]} is strip '{strip.name}'")


class VFXMOCAP_OT_job_open_folder(_JobOperator):
    """Open this job's output folder in the file browser of the system"""

    bl_idname = "vfxmocap.job_open_folder"
    bl_label = "Open Output Folder"

    def act(self, context: bpy.types.Context, job: MocapJob) -> None:
        if not job.output_dir or not os.path.isdir(job.output_dir):
            raise UserError(
                f"The output folder of job {job.name[:8]} does not exist: {job.output_dir or 'not known yet'}"
            )
        bpy.ops.wm.path_open(filepath=job.output_dir)


class VFXMOCAP_OT_job_remove(_JobOperator):
    """Remove this job from the list (its files and any inserted strip stay)"""

    bl_idname = "vfxmocap.job_remove"
    bl_label = "Remove Job From List"
    bl_options = frozenset({"UNDO"})

    def act(self, context: bpy.types.Context, job: MocapJob) -> None:
        state = context.scene.vfx_mocap
        state.jobs.remove(state.jobs.find(job.name))
        state.active_job_index = min(state.active_job_index, max(0, len(state.jobs) - 1))


class VFXMOCAP_OT_clear_error(bpy.types.Operator):
    """Dismiss the last error"""

    bl_idname = "vfxmocap.clear_error"
    bl_label = "Dismiss Error"

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.get().last_error = ""
        return {"FINISHED"}


class VFXMOCAP_OT_clear_notice(bpy.types.Operator):
    """Dismiss the data folder message"""

    bl_idname = "vfxmocap.clear_notice"
    bl_label = "Dismiss Message"

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.get().notice = ""
        return {"FINISHED"}


CLASSES = (
    VFXMOCAP_OT_daemon_start,
    VFXMOCAP_OT_daemon_stop,
    VFXMOCAP_OT_daemon_restart,
    VFXMOCAP_OT_choose_mode,
    VFXMOCAP_OT_generate,
    VFXMOCAP_OT_job_cancel,
    VFXMOCAP_OT_job_retry,
    VFXMOCAP_OT_job_insert,
    VFXMOCAP_OT_job_open_folder,
    VFXMOCAP_OT_job_remove,
    VFXMOCAP_OT_clear_error,
    VFXMOCAP_OT_clear_notice,
)
