"""The "Pose to Armature" and "Live Pose" panels of the Motion Capture tab (3D viewport and Sequencer).

Draw code only reads: the scene's settings, the armature's map, the last bake (:mod:`.mocap_tasks`) and the live
driver's state (:mod:`.live_pose`). Detecting a map reads the armature, so its result is cached per armature
and bone count.
"""

from __future__ import annotations

import bpy

from ..bridge.retarget.bone_maps import BoneMapError
from ..common import ui
from . import armature_io, bake_report, live_pose, mocap_tasks

_detected: dict[tuple[str, int, str], str] = {}
"""(armature name, bone count, map source) -> the map's name, or the reason none fits."""


def _map_summary(obj: bpy.types.Object) -> str:
    key = (obj.name, len(obj.data.bones), obj.vfx_mocap_map.source)
    if key not in _detected:
        try:
            bone_map = obj.vfx_mocap_map.bone_map(armature_io.read_rig(obj))
            _detected[key] = f"{bone_map.name}: {len(bone_map.driven_bones())} bones driven"
        except (BoneMapError, armature_io.ArmatureError) as exc:
            _detected[key] = f"No map: {exc}"
    return _detected[key]


def _draw_map(layout: bpy.types.UILayout, obj: bpy.types.Object) -> None:
    state = obj.vfx_mocap_map
    box = layout.box()
    row = box.row(align=True)
    row.prop(state, "source", text="Map")
    row.operator("vfxmocap.bone_map_load_preset", text="", icon="IMPORT")
    row.operator("vfxmocap.bone_map_save_preset", text="", icon="EXPORT")
    if state.source != "CUSTOM":
        ui.wrapped(box, _map_summary(obj), icon="INFO")
        box.operator("vfxmocap.bone_map_edit", icon="GREASEPENCIL")
        return
    box.prop(state, "map_name")
    column = box.column(align=True)
    for entry in state.entries:
        row = column.row(align=True)
        row.prop_search(entry, "bone", obj.data, "bones", text=entry.label)
        if entry.name.startswith("anchor:"):
            row.prop(entry, "point", text="")


class PoseToArmaturePanel(ui.PanelDrawing):
    """The Pose to Armature panel (its classes: :data:`CLASSES`)."""

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.vfx_mocap_pose
        layout.prop(settings, "armature")
        obj = settings.armature
        if obj is not None:
            _draw_map(layout, obj)
        column = layout.column(heading="Smoothing")
        column.prop(settings, "use_smoothing")
        sub = column.column(align=True)
        sub.enabled = settings.use_smoothing
        sub.prop(settings, "min_cutoff")
        sub.prop(settings, "beta")
        sub.prop(settings, "d_cutoff")
        column = layout.column(align=True)
        column.prop(settings, "min_visibility")
        column.prop(settings, "max_gap_frames")
        row = layout.row(align=True)
        row.prop(settings, "person")
        row.prop(settings, "all_people", text="Each", toggle=True)
        row = layout.row(align=True)
        row.prop(settings, "root_motion", toggle=True)
        row.prop(settings, "keep_on_ground", toggle=True)
        row = layout.row(align=True)
        row.prop(settings, "root_depth", toggle=True)
        row.prop(settings, "root_vertical", toggle=True)
        row.prop(settings, "lock_feet", toggle=True)
        row.prop(settings, "fit_floor", toggle=True)
        row = layout.row(align=True)
        row.prop(settings, "interpolation", text="")
        row.prop(settings, "reduce_keys", toggle=True)
        if settings.reduce_keys:
            row.prop(settings, "reduce_tolerance")
        row = layout.row()
        row.scale_y = 1.3
        row.operator("vfxmocap.bake_pose", icon="ARMATURE_DATA")
        layout.operator("vfxmocap.pose_control_video", icon="SEQ_SEQUENCER")
        if mocap_tasks.busy():
            layout.label(text="Solving / waiting for the pose job...", icon="SORTTIME")
        if mocap_tasks.finished:
            done = mocap_tasks.finished[-1]
            if done.report is not None:
                report = done.report
                text = f"Baked frames {report.frame_start}-{report.frame_end} into '{report.action}'"
                ui.wrapped(layout, text, icon="CHECKMARK")
                if done.quality is not None:
                    box = layout.box()
                    box.label(text=f"Quality of '{done.armature}'", icon="INFO")
                    for line in bake_report.summary_lines(done.quality):
                        ui.wrapped(box, line)
            else:
                ui.wrapped(layout, done.error, icon="ERROR")


class LivePosePanel(ui.PanelDrawing):
    """The Live Pose panel (its classes: :data:`CLASSES`)."""

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.vfx_mocap_pose
        driver = live_pose.current()
        running = driver is not None and driver.running
        column = layout.column()
        column.enabled = not running
        column.prop(settings, "live_source", expand=True)
        if settings.live_source == "CAMERA":
            column.prop(settings, "camera_index")
        else:
            column.prop(settings, "video_path")
        row = layout.row(align=True)
        row.scale_y = 1.3
        if driver is not None and driver.running:
            row.operator("vfxmocap.live_stop", icon="PAUSE")
            row.operator(
                "vfxmocap.live_record",
                text="Stop Recording" if driver.recording else "Record",
                icon="REC",
                depress=driver.recording,
            )
            session = driver.session
            latency = sorted(driver.latencies_ms)
            median = f", {latency[len(latency) // 2]:.0f} ms" if latency else ""
            layout.label(text=f"{session.state.capitalize()}: {session.daemon_fps:.1f} fps{median}", icon="PLAY")
            if driver.face_source:
                layout.label(text=bake_report.FACE_SOURCE_WORDS.get(driver.face_source, driver.face_source))
        else:
            row.operator("vfxmocap.live_start", icon="PLAY")
        if driver is not None and driver.error:
            ui.wrapped(layout, driver.error, icon="ERROR")
        if driver is not None and driver.last_bake is not None:
            bake = driver.last_bake
            layout.label(text=f"Recorded frames {bake.frame_start}-{bake.frame_end}", icon="CHECKMARK")


CLASSES = (
    *ui.sidebar_panels("posetoarmature", "Pose to Armature", PoseToArmaturePanel, closed=True),
    *ui.sidebar_panels("livepose", "Live Pose", LivePosePanel, closed=True),
)


def unregister() -> None:
    _detected.clear()
