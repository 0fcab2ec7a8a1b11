# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Saved settings of pose-to-armature: the scene's (target armature, smoothing, bake and live options) and each
armature's bone map (a built-in one, or the user's own, edited role by role). Main thread only.

``Scene.vfx_mocap_pose`` holds :class:`MocapPoseSettings`; ``Object.vfx_mocap_map`` holds
:class:`MocapArmatureMap`.
"""

from __future__ import annotations

import json

import bpy

from ..bridge.retarget import bone_maps
from ..bridge.retarget.bone_maps import BoneMap, BoneMapError, Switch
from ..bridge.retarget.filters import OneEuroParams
from ..bridge.retarget.rig_data import RigData
from ..bridge.retarget.solver import SolveOptions

MAP_SOURCES = (
    ("AUTO", "Detect", "Choose the built-in map from the bone names"),
    *((key, name, f"The built-in map for a {name}") for key, name in bone_maps.BUILTIN_MAPS.items()),
    ("CUSTOM", "Custom", "This armature's own map, edited below (saved with the file and as presets)"),
)
POINTS = (("head", "Head", "The bone's head"), ("tail", "Tail", "The bone's tail"), ("mid", "Middle", "Halfway"))


def _is_armature(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class MocapMapEntry(bpy.types.PropertyGroup):
    """One line of a custom map. ``name`` is the role (``upper_arm.L``), the chain link (``spine.1``) or the
    anchor (``anchor:index.L``)."""

    bone: bpy.props.StringProperty(name="Bone", description="The armature's bone that plays this part")
    point: bpy.props.EnumProperty(name="Point", items=POINTS, default="head", description="Anchors: where on the bone")

    @property
    def label(self) -> str:
        return self.name.removeprefix("anchor:").replace("_", " ")


class MocapArmatureMap(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Bone Map",
        items=MAP_SOURCES,
        default="AUTO",
        description="Which bone plays which part of the body",
    )
    map_name: bpy.props.StringProperty(name="Name", default="Custom", description="The custom map's name")
    entries: bpy.props.CollectionProperty(type=MocapMapEntry)
    switches_json: bpy.props.StringProperty(default="[]", description="Switches of the custom map, as JSON")

    def bone_map(self, rig: RigData) -> BoneMap:
        """The map to drive ``rig`` with. Raises BoneMapError when detection finds nothing or the map is bad."""
        if self.source == "AUTO":
            return bone_maps.detect_map(rig)
        if self.source != "CUSTOM":
            return bone_maps.builtin_map(self.source, rig)
        bones: dict[str, str] = {}
        chains: dict[str, list[str]] = {}
        anchors: dict[str, tuple[str, str]] = {}
        for entry in self.entries:
            if not entry.bone:
                continue
            if entry.name.startswith("anchor:"):
                anchors[entry.name.removeprefix("anchor:")] = (entry.bone, entry.point)
            elif entry.name.split(".")[0] in bone_maps.CHAIN_ROLES:
                chains.setdefault(entry.name.split(".")[0], []).append(entry.bone)
            else:
                bones[entry.name] = entry.bone
        return BoneMap(
            self.map_name or "Custom", bones, {k: tuple(v) for k, v in chains.items()}, anchors, self.switches()
        )

    def switches(self) -> tuple[Switch, ...]:
        """The custom map's switches, read from ``switches_json``. Raises BoneMapError naming the field."""
        what = f"The custom bone map's switches (vfx_mocap_map.switches_json of '{self.id_data.name}')"
        fix = 'write them as [["bone", "property", number], ...], or [] for none'
        try:
            value = json.loads(self.switches_json or "[]")
        except json.JSONDecodeError as exc:
            raise BoneMapError(f"{what} are not valid JSON (column {exc.colno}: {exc.msg}): {fix}") from None
        try:
            return bone_maps.switches_from_list(value, what)
        except BoneMapError as exc:
            raise BoneMapError(f"{exc}: {fix}") from None

    def set_custom(self, bone_map: BoneMap) -> None:
        """Make ``bone_map`` this armature's custom map: one entry per role, chain link and anchor (empty
        entries for the roles it lacks, so they can be filled in)."""
        self.entries.clear()
        for role in bone_maps.SINGLE_ROLES:
            entry = self.entries.add()
            entry.name, entry.bone = role, bone_map.bones.get(role, "")
        for chain in bone_maps.CHAIN_ROLES:
            links = bone_map.chains.get(chain, ())
            for number in range(1, max(len(links), 2) + 1):
                entry = self.entries.add()
                entry.name = f"{chain}.{number}"
                entry.bone = links[number - 1] if number <= len(links) else ""
        for anchor in bone_maps.ANCHORS:
            entry = self.entries.add()
            entry.name = f"anchor:{anchor}"
            bone, point = bone_map.anchors.get(anchor, ("", "head"))
            entry.bone, entry.point = bone, point
        self.switches_json = json.dumps([[s.bone, s.prop, s.value] for s in bone_map.switches])
        self.map_name = bone_map.name
        self.source = "CUSTOM"


class MocapPoseSettings(bpy.types.PropertyGroup):
    armature: bpy.props.PointerProperty(
        name="Armature", type=bpy.types.Object, poll=_is_armature, description="The rig poses are applied to"
    )
    use_smoothing: bpy.props.BoolProperty(
        name="Smooth",
        default=True,
        description="Smooth each bone's rotation and the root: bakes without lag (forward-backward), live with the "
        "One Euro filter",
    )
    min_cutoff: bpy.props.FloatProperty(
        name="Min Cutoff",
        default=OneEuroParams.min_cutoff,
        min=0.01,
        soft_max=10.0,
        unit="NONE",
        description="Hz: smoothing when still. Lower is smoother (and laggier when moving slowly)",
    )
    beta: bpy.props.FloatProperty(
        name="Speed Coefficient",
        default=OneEuroParams.beta,
        min=0.0,
        soft_max=5.0,
        description="How fast smoothing lets go as motion speeds up. Higher: less lag on fast moves, more jitter",
    )
    d_cutoff: bpy.props.FloatProperty(
        name="Speed Cutoff",
        default=OneEuroParams.d_cutoff,
        min=0.01,
        soft_max=10.0,
        description="Hz: smoothing of the speed estimate itself",
    )
    min_visibility: bpy.props.FloatProperty(
        name="Min Visibility",
        default=SolveOptions.min_visibility,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="Joints MediaPipe is less sure of than this are treated as unseen (held or interpolated)",
    )
    max_gap_frames: bpy.props.IntProperty(
        name="Interpolate Gaps Up To",
        default=SolveOptions.max_gap_frames,
        min=0,
        soft_max=60,
        description="Frames: shorter unseen stretches are interpolated, longer ones hold the last good pose",
    )
    root_motion: bpy.props.BoolProperty(
        name="Root Motion", default=True, description="Move the rig sideways as the person's hips move in the image"
    )
    keep_on_ground: bpy.props.BoolProperty(
        name="Feet on Ground", default=True, description="Keep the lowest foot on the rig's ground level"
    )
    root_depth: bpy.props.BoolProperty(
        name="Depth",
        default=SolveOptions.root_depth,
        description="Bakes: move the rig towards and away from the camera too, from how large the person looks",
    )
    root_vertical: bpy.props.BoolProperty(
        name="Jumps",
        default=SolveOptions.root_vertical,
        description="Bakes: lift the rig when both feet leave the floor",
    )
    lock_feet: bpy.props.BoolProperty(
        name="Lock Feet",
        default=SolveOptions.lock_feet,
        description="Bakes: keep a planted foot in place while it touches the floor (no sliding)",
    )
    fit_floor: bpy.props.BoolProperty(
        name="Fit Floor",
        default=SolveOptions.fit_floor,
        description="Bakes: fit the floor to where the feet touch it (a tilted camera, a slope); off: level",
    )
    person: bpy.props.IntProperty(
        name="Person",
        default=0,
        min=0,
        soft_max=20,
        description="Who to follow: 0 the largest person; 1, 2, ... the person with that number in the pose job "
        "(the numbers its skeleton overlay shows, with the pose option people = all)",
    )
    all_people: bpy.props.BoolProperty(
        name="One Armature per Person",
        default=False,
        description="Also bake every other person the pose job followed, each onto a copy of the armature named "
        "'<armature> person <number>'",
    )
    interpolation: bpy.props.EnumProperty(
        name="Interpolation",
        items=(("BEZIER", "Bezier", "Smooth curves through the keys"), ("LINEAR", "Linear", "Straight lines")),
        default="BEZIER",
    )
    reduce_keys: bpy.props.BoolProperty(
        name="Reduce Keys", default=False, description="Keep only the keys needed to stay within the tolerance"
    )
    reduce_tolerance: bpy.props.FloatProperty(
        name="Tolerance",
        default=0.5,
        min=0.01,
        soft_max=5.0,
        description="Degrees a reduced curve may deviate from the solved pose (keys become linear)",
    )
    live_source: bpy.props.EnumProperty(
        name="Source",
        items=(
            ("CAMERA", "Camera", "A camera the daemon's machine has"),
            ("FILE", "Video File", "A video file played at its own frame rate, looping (stands in for a camera)"),
        ),
        default="CAMERA",
    )
    camera_index: bpy.props.IntProperty(
        name="Camera", default=0, min=0, max=63, description="Camera number on the daemon's machine (0: the first)"
    )
    video_path: bpy.props.StringProperty(name="Video", subtype="FILE_PATH", description="Video file to play live")

    def solve_options(self) -> SolveOptions:
        smoothing = OneEuroParams(self.min_cutoff, self.beta, self.d_cutoff) if self.use_smoothing else None
        return SolveOptions(
            min_visibility=self.min_visibility,
            max_gap_frames=self.max_gap_frames,
            root_motion=self.root_motion,
            keep_on_ground=self.keep_on_ground,
            root_depth=self.root_depth,
            root_vertical=self.root_vertical,
            lock_feet=self.lock_feet,
            fit_floor=self.fit_floor,
            smoothing=smoothing,
        )


CLASSES = (MocapMapEntry, MocapArmatureMap, MocapPoseSettings)


def register() -> None:
    bpy.types.Scene.vfx_mocap_pose = bpy.props.PointerProperty(type=MocapPoseSettings)
    bpy.types.Object.vfx_mocap_map = bpy.props.PointerProperty(type=MocapArmatureMap)


def unregister() -> None:
    del bpy.types.Object.vfx_mocap_map
    del bpy.types.Scene.vfx_mocap_pose
