# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Hands and face in a bake or a live take: their settings (``Scene.vfx_mocap_parts``) and the Hands & Face
panel under Pose to Armature. Main thread only.

Hands drive the armature's finger bones (and its wrists); the face drives the shape keys of a chosen mesh (ARKit
names, or names mapped to them): MediaPipe's blendshape scores when the daemon has that model (the pose option Face
Shapes, shown here too, can force the estimate), else estimated from the face mesh relative to a neutral read from
the take itself.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..bridge.retarget.face_shapes import DEFAULT_MIN_CUTOFF_HZ, GROUPS, FaceOptions, parse_name_map
from ..common import ui


def _has_shape_keys(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


class MocapPartsSettings(bpy.types.PropertyGroup):
    use_hands: bpy.props.BoolProperty(
        name="Hands",
        default=True,
        description="Track both hands with the body and drive the armature's finger bones and wrists",
    )
    use_face: bpy.props.BoolProperty(
        name="Face",
        default=True,
        description="Track the face with the body and drive the Face Mesh's shape keys (when one is chosen)",
    )
    face_mesh: bpy.props.PointerProperty(
        name="Face Mesh",
        type=bpy.types.Object,
        poll=_has_shape_keys,
        description="The mesh whose shape keys the face drives (ARKit names, or names mapped below)",
    )
    shape_key_names: bpy.props.StringProperty(
        name="Name Map",
        default="",
        description="Shape keys not named as ARKit's: 'jawOpen=MouthOpen, eyeBlinkLeft=Blink_L' (ARKit=key)",
    )
    neutral: bpy.props.EnumProperty(
        name="Neutral",
        description="Where the resting face is, for the estimate from the face mesh (the blendshape model needs none)",
        items=(
            ("FIRST", "First Frames", "The first frames of the take show the resting face"),
            ("MARKERS", "Markers", "Timeline markers named 'neutral' mark frames showing the resting face"),
        ),
        default="FIRST",
    )
    neutral_frames: bpy.props.IntProperty(
        name="Neutral Frames",
        default=FaceOptions.neutral_frames,
        min=1,
        max=1000,
        description="How many of the first frames with a face make the neutral",
    )
    gain_eyes: bpy.props.FloatProperty(name="Eyes", default=1.0, min=0.0, soft_max=3.0, description="Gain")
    gain_brows: bpy.props.FloatProperty(name="Brows", default=1.0, min=0.0, soft_max=3.0, description="Gain")
    gain_mouth: bpy.props.FloatProperty(
        name="Mouth", default=1.0, min=0.0, soft_max=3.0, description="Gain of the mouth, jaw, cheeks and nose"
    )
    smooth_eyes: bpy.props.FloatProperty(
        name="Eyes",
        default=DEFAULT_MIN_CUTOFF_HZ["eyes"],
        min=0.0,
        soft_max=20.0,
        description="Hz: minimum cutoff (lower is smoother; 0 turns smoothing off): bakes without lag, live One Euro",
    )
    smooth_brows: bpy.props.FloatProperty(
        name="Brows",
        default=DEFAULT_MIN_CUTOFF_HZ["brows"],
        min=0.0,
        soft_max=20.0,
        description="Hz: minimum cutoff (lower is smoother; 0 turns smoothing off): bakes without lag, live One Euro",
    )
    smooth_mouth: bpy.props.FloatProperty(
        name="Mouth",
        default=DEFAULT_MIN_CUTOFF_HZ["mouth"],
        min=0.0,
        soft_max=20.0,
        description="Hz: minimum cutoff (lower is smoother; 0 turns smoothing off): bakes without lag, live One Euro",
    )

    def wants_face(self) -> bool:
        return self.use_face and self.face_mesh is not None

    def pose_params(self) -> dict[str, Any]:
        """The pose-mode parameters a take needs for the parts switched on."""
        params = {}
        if self.use_hands:
            params["hands"] = True
        if self.wants_face():
            params["face"] = True
        return params

    def face_options(self, neutral_frames: tuple[int, ...] = ()) -> FaceOptions:
        """The face solve's options; ``neutral_frames`` (take frame indices) override the first frames. The pose
        option Face Shapes set to landmarks also holds for jobs made with the model's scores."""
        pose_params = self.id_data.vfx_mocap.mode_params("pose")
        source = next((p.value for p in pose_params if p.name == "face_shapes"), "auto")
        return FaceOptions(
            gains={group: getattr(self, f"gain_{group}") for group in GROUPS},
            min_cutoff_hz={group: getattr(self, f"smooth_{group}") for group in GROUPS},
            neutral_frames=self.neutral_frames,
            neutral_indices=neutral_frames,
            name_map=parse_name_map(self.shape_key_names),
            use_model=source != "landmarks",
        )


class HandsFacePanel(ui.PanelDrawing):
    """The Hands & Face panel, under Pose to Armature (its classes: :data:`CLASSES`)."""

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        parts = context.scene.vfx_mocap_parts
        layout.prop(parts, "use_hands")
        layout.prop(parts, "use_face")
        column = layout.column()
        column.enabled = parts.use_face
        column.prop(parts, "face_mesh")
        column.prop(parts, "shape_key_names")
        source = next((p for p in context.scene.vfx_mocap.mode_params("pose") if p.name == "face_shapes"), None)
        if source is not None:  # a pose option the daemon describes
            column.prop(source, source.value_attr, text="Face Shapes")
        column.prop(parts, "neutral")
        if parts.neutral == "FIRST":
            column.prop(parts, "neutral_frames")
        column.label(text="Gain")
        row = column.row(align=True)
        for group in GROUPS:
            row.prop(parts, f"gain_{group}")
        column.label(text="Smoothing (Hz)")
        row = column.row(align=True)
        for group in GROUPS:
            row.prop(parts, f"smooth_{group}")


CLASSES = (
    MocapPartsSettings,
    *ui.sidebar_panels("handsface", "Hands & Face", HandsFacePanel, closed=True, parent="posetoarmature"),
)


def register() -> None:
    bpy.types.Scene.vfx_mocap_parts = bpy.props.PointerProperty(type=MocapPartsSettings)


def unregister() -> None:
    del bpy.types.Scene.vfx_mocap_parts
