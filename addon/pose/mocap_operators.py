# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Operators of pose to armature: bake a pose job onto an armature, insert the pose control video, edit and
save bone maps, and live pose (start, stop, record). Main thread; none waits for the daemon or a solve.

Bad input is reported with ``self.report({'ERROR'}, message)`` and ``{'CANCELLED'}`` and kept as the panel's last
error. A strip without a pose result gets a pose job first; the bake (or the strip insertion) follows when it
succeeds (:mod:`.mocap_tasks`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy

from ..bridge.retarget import bone_maps
from ..bridge.retarget.bone_maps import BoneMapError
from ..bridge.retarget.finger_maps import detect_finger_map
from ..common import compat, preferences, requests, strips
from ..common.errors import UserError, fail
from ..common.properties import MocapJob
from . import armature_io, live_pose, mocap_tasks, pose_people

CONTROL_VIDEO_PARAMS = {"render_skeleton": True, "skeleton_background": "black", "face": True}
"""The pose control video of the generative modes: OpenPose-coloured body skeletons with the face's points on black,
as VACE's default pose annotator draws them (hands stay optional: the pose mode's ``hands`` option)."""


def target_armature(context: bpy.types.Context) -> bpy.types.Object:
    """The scene's chosen armature, or the active object if it is an armature."""
    chosen = context.scene.vfx_mocap_pose.armature
    if chosen is None and context.active_object is not None and context.active_object.type == "ARMATURE":
        chosen = context.active_object
    return armature_io.require_armature(chosen)


def presets_dir() -> Path:
    """Where bone map presets are saved: the extension's user folder, ``bone_maps``."""
    return Path(bpy.utils.extension_path_user(preferences.ADDON_ID, path="bone_maps", create=True))


# -- pose jobs --------------------------------------------------------------------------------------------------


def _selected_strip(scene: bpy.types.Scene) -> Any | None:
    editor = scene.sequence_editor
    strip = editor.active_strip if editor is not None else None
    return strip if strip is not None and strip.select else None


def _matches(job: MocapJob, params: dict[str, Any]) -> bool:
    job_params = job.params
    return all(job_params.get(name) == value for name, value in params.items())


def find_pose_job(scene: bpy.types.Scene, job_id: str = "", params: dict[str, Any] | None = None) -> MocapJob | None:
    """The pose job to use: ``job_id``; else the selected strip's (a pose result strip, or the newest pose job
    made from it whose parameters include ``params``, succeeded ones first); else the active job of the list if
    it is a pose job. None when the selected strip has none yet. Raises UserError when nothing is chosen."""
    jobs = scene.vfx_mocap.jobs
    if job_id:
        job = jobs.get(job_id)
        if job is None or job.mode != "pose":
            raise UserError(f"No pose job {job_id!r} in this scene")
        return job
    strip = _selected_strip(scene)
    if strip is not None:
        result_of = jobs.get(strip.get(strips.JOB_ID_PROP, ""))
        if result_of is not None and result_of.mode == "pose":
            return result_of
        made = [j for j in jobs if j.mode == "pose" and j.source_strip == strip.name and _matches(j, params or {})]
        usable = [j for j in made if j.state == "succeeded"] or [j for j in made if not j.is_final]
        return usable[0] if usable else None
    index = scene.vfx_mocap.active_job_index
    if 0 <= index < len(jobs) and jobs[index].mode == "pose":
        return jobs[index]
    raise UserError(
        "Nothing to capture: select the strip in the Sequencer (or its pose result), or a pose job in the Jobs list"
    )


def submit_pose_job(scene: bpy.types.Scene, params: dict[str, Any]) -> MocapJob:
    """Send the selected strip to the daemon's pose mode with the panel's pose options and ``params`` on top."""
    return requests.submit(scene, requests.job_request(scene, "pose", params))


def control_video_params(scene: bpy.types.Scene) -> dict[str, Any]:
    """:data:`CONTROL_VIDEO_PARAMS` for the panel's pose options: without the face points when they track every
    person (``people`` all), as the pose mode tracks the face of one person only."""
    people = next((p.value for p in scene.vfx_mocap.mode_params("pose") if p.name == "people"), "one")
    return CONTROL_VIDEO_PARAMS if people != "all" else {**CONTROL_VIDEO_PARAMS, "face": False}


def result_frame_start(scene: bpy.types.Scene, job: MocapJob) -> int:
    """The timeline frame of the job's first result frame: where its source's first visible frame is now (where
    it was, if the source strip is gone), as :func:`strips.insert_result_strip` places result strips."""
    editor = scene.sequence_editor
    source = compat.all_strips(editor).get(job.source_strip) if editor is not None else None
    if source is not None:
        return round(compat.timing(source, "content_start") + job.source_content_offset)
    return job.source_frame_start


def bake_job(scene: bpy.types.Scene, job: MocapJob, armature_name: str) -> None:
    """Start solving the succeeded pose ``job`` for the armature; the keys are written when it is solved. With
    One Armature per Person, every other person the job followed gets an armature of its own, baked too. Fingers
    and face go onto the job's main person only (the pose mode tracks no one else's); a Face Mesh with another
    Person chosen is refused."""
    obj = armature_io.require_armature(bpy.data.objects.get(armature_name))
    settings = scene.vfx_mocap_pose
    parts = scene.vfx_mocap_parts
    face_mesh = parts.face_mesh.name if parts.wants_face() else ""
    neutral: tuple[int, ...] = ()
    if face_mesh and parts.neutral == "MARKERS":
        start = result_frame_start(scene, job)
        neutral = tuple(sorted(m.frame - start for m in scene.timeline_markers if m.name.lower() == "neutral"))
        if not neutral:
            raise UserError("Neutral is set to Markers but no timeline marker is named 'neutral'")
    summary = pose_people.read_summary(job.output_dir)
    if face_mesh and not pose_people.is_main_person(summary, settings.person):
        main = pose_people.default_person(summary)
        raise UserError(
            f"The face is tracked for the pose job's main person only (Person {main}): set Person to 0 or {main}, "
            f"or clear the Face Mesh to bake Person {settings.person}"
        )
    targets = [(obj, settings.person)]
    if settings.all_people:
        followed = settings.person or pose_people.default_person(summary)
        others = [k for k in range(1, pose_people.track_count(summary) + 1) if k != followed]
        targets = [(obj, followed)] + [(pose_people.person_armature(obj, k), k) for k in others]
    for index, (target, person) in enumerate(targets):
        rig = armature_io.read_rig(target)
        bone_map = target.vfx_mocap_map.bone_map(rig)
        missing = bone_map.missing_in(rig)
        if missing:
            raise BoneMapError(f"Bone map '{bone_map.name}' names bones '{target.name}' lacks: {', '.join(missing)}")
        # Hands and face are tracked for the job's main person only: the other people are baked without them.
        with_parts = index == 0 and pose_people.is_main_person(summary, person)
        mocap_tasks.start_bake(
            mocap_tasks.BakeRequest(
                armature=target.name,
                job_id=job.name,
                output_dir=job.output_dir,
                frame_start=result_frame_start(scene, job),
                fps=scene.render.fps / scene.render.fps_base,
                rig=rig,
                bone_map=bone_map,
                options=settings.solve_options(),
                interpolation=settings.interpolation,
                reduce_tolerance_deg=settings.reduce_tolerance if settings.reduce_keys else None,
                finger_map=detect_finger_map(rig, bone_map) if parts.use_hands and with_parts else None,
                face_mesh=face_mesh if with_parts else "",
                face_options=parts.face_options(neutral) if face_mesh and with_parts else None,
                person=person,
            )
        )


def _bake_follow_up(armature_name: str):
    def run(scene: bpy.types.Scene, job: MocapJob) -> None:
        bake_job(scene, job, armature_name)

    return run


def _insert_follow_up(scene: bpy.types.Scene, job: MocapJob) -> None:
    strips.insert_result_strip(scene, job)


class VFXMOCAP_OT_bake_pose(bpy.types.Operator):
    """Bake the pose of the selected strip (or pose job) onto the armature as keys aligned with the strip; runs
    pose on the strip first if it has no pose result yet"""

    bl_idname = "vfxmocap.bake_pose"
    bl_label = "Bake Pose to Armature"
    bl_options = frozenset({"UNDO"})

    job_id: bpy.props.StringProperty(name="Pose Job", description="Job id; empty: from the selection")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            obj = target_armature(context)
            wanted = scene.vfx_mocap_parts.pose_params()
            job = find_pose_job(scene, self.job_id, params=wanted)
            if job is None:
                job = submit_pose_job(scene, wanted)
                mocap_tasks.after_job(scene, job.name, "bake", _bake_follow_up(obj.name))
                self.report({"INFO"}, f"Running pose on the strip first (job {job.name[:8]}); baking follows")
            elif job.state == "succeeded":
                bake_job(scene, job, obj.name)
                self.report({"INFO"}, f"Solving pose job {job.name[:8]} for '{obj.name}'")
            elif not job.is_final:
                mocap_tasks.after_job(scene, job.name, "bake", _bake_follow_up(obj.name))
                self.report({"INFO"}, f"Pose job {job.name[:8]} {job.state_text}; baking follows")
            else:
                raise UserError(f"Pose job {job.name[:8]} {job.state_text}: retry it, then bake")
        except UserError as exc:
            return fail(self, exc)
        return {"FINISHED"}


class VFXMOCAP_OT_pose_control_video(bpy.types.Operator):
    """Insert the selected strip's pose as a control video (OpenPose-coloured skeletons on black) above it;
    runs pose on the strip first if needed"""

    bl_idname = "vfxmocap.pose_control_video"
    bl_label = "Insert Pose Control Video"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        try:
            if _selected_strip(scene) is None:
                raise UserError("No strip selected: select the strip to make a pose control video of")
            params = control_video_params(scene)
            job = find_pose_job(scene, params=params)
            if job is not None and job.state == "succeeded":
                strip = strips.insert_result_strip(scene, job)
                self.report({"INFO"}, f"Pose control video is strip '{strip.name}'")
            else:
                job = job or submit_pose_job(scene, params)
                mocap_tasks.after_job(scene, job.name, "insert the pose control video", _insert_follow_up)
                self.report({"INFO"}, f"Pose job {job.name[:8]} is running; the control video is inserted after it")
        except UserError as exc:
            return fail(self, exc)
        return {"FINISHED"}


# -- bone maps --------------------------------------------------------------------------------------------------


class VFXMOCAP_OT_bone_map_edit(bpy.types.Operator):
    """Copy the armature's current bone map (detected or built-in) into an editable custom map"""

    bl_idname = "vfxmocap.bone_map_edit"
    bl_label = "Edit Bone Map"
    bl_options = frozenset({"UNDO"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            obj = target_armature(context)
            state = obj.vfx_mocap_map
            rig = armature_io.read_rig(obj)
            if state.source == "CUSTOM":
                raise UserError(f"'{obj.name}' already has a custom map: edit it below")
            state.set_custom(state.bone_map(rig))
        except UserError as exc:
            return fail(self, exc)
        return {"FINISHED"}


class VFXMOCAP_OT_bone_map_save_preset(bpy.types.Operator):
    """Save the armature's bone map as a JSON preset"""

    bl_idname = "vfxmocap.bone_map_save_preset"
    bl_label = "Save Bone Map Preset"

    preset_name: bpy.props.StringProperty(name="Name", description="Preset name (a file in the presets folder)")
    filepath: bpy.props.StringProperty(subtype="FILE_PATH", description="Save here instead of the presets folder")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        obj = context.scene.vfx_mocap_pose.armature or context.active_object
        if not self.preset_name and obj is not None:
            self.preset_name = obj.name
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            obj = target_armature(context)
            bone_map = obj.vfx_mocap_map.bone_map(armature_io.read_rig(obj))
            if self.filepath:
                path = Path(bpy.path.abspath(self.filepath))
            else:
                name = re.sub(r"[^A-Za-z0-9_. -]+", "_", self.preset_name).strip(" .") or "bone_map"
                path = presets_dir() / f"{name}.json"
            bone_maps.save_preset(bone_map, path)
        except OSError as exc:
            return fail(self, f"Cannot save the preset: {exc}")
        except UserError as exc:
            return fail(self, exc)
        self.report({"INFO"}, f"Saved bone map '{bone_map.name}' to {path}")
        return {"FINISHED"}


class VFXMOCAP_OT_bone_map_load_preset(bpy.types.Operator):
    """Load a JSON bone map preset as the armature's custom map"""

    bl_idname = "vfxmocap.bone_map_load_preset"
    bl_label = "Load Bone Map Preset"
    bl_options = frozenset({"UNDO"})

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filepath = str(presets_dir()) + "/"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            obj = target_armature(context)
            bone_map = bone_maps.load_preset(bpy.path.abspath(self.filepath))
            missing = bone_map.missing_in(armature_io.read_rig(obj))
            obj.vfx_mocap_map.set_custom(bone_map)
        except UserError as exc:
            return fail(self, exc)
        if missing:
            self.report({"WARNING"}, f"'{obj.name}' lacks bones the preset names: {', '.join(missing)}")
        else:
            self.report({"INFO"}, f"Loaded bone map '{bone_map.name}'")
        return {"FINISHED"}


# -- live -------------------------------------------------------------------------------------------------------


class VFXMOCAP_OT_live_start(bpy.types.Operator):
    """Drive the armature from the camera (or a video file) through the daemon, live"""

    bl_idname = "vfxmocap.live_start"
    bl_label = "Start Live Pose"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            live_pose.start(context.scene)
        except UserError as exc:
            return fail(self, exc)
        return {"FINISHED"}


class VFXMOCAP_OT_live_stop(bpy.types.Operator):
    """Stop live pose (a recording in progress is written as keys)"""

    bl_idname = "vfxmocap.live_stop"
    bl_label = "Stop Live Pose"

    def execute(self, context: bpy.types.Context) -> set[str]:
        live_pose.stop()
        return {"FINISHED"}


class VFXMOCAP_OT_live_record(bpy.types.Operator):
    """Start recording the live pose, or stop and write what was recorded as keys from the current frame"""

    bl_idname = "vfxmocap.live_record"
    bl_label = "Record Live Pose"

    def execute(self, context: bpy.types.Context) -> set[str]:
        driver = live_pose.current()
        if driver is None or not driver.running:
            return fail(self, "Live pose is not running: start it first")
        if not driver.recording:
            driver.start_recording()
            return {"FINISHED"}
        try:
            report = driver.stop_recording()
        except UserError as exc:
            return fail(self, exc)
        if report is None:
            self.report({"WARNING"}, "Nothing was recorded")
        else:
            self.report({"INFO"}, f"Recorded frames {report.frame_start}-{report.frame_end} into '{report.action}'")
        return {"FINISHED"}


CLASSES = (
    VFXMOCAP_OT_bake_pose,
    VFXMOCAP_OT_pose_control_video,
    VFXMOCAP_OT_bone_map_edit,
    VFXMOCAP_OT_bone_map_save_preset,
    VFXMOCAP_OT_bone_map_load_preset,
    VFXMOCAP_OT_live_start,
    VFXMOCAP_OT_live_stop,
    VFXMOCAP_OT_live_record,
)
