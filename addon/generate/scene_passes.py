"""Control passes rendered from the scene's active camera: pose, depth and layout, as PNG image sequences that are
inserted as strips, so the artist sees what a Generate from Scene job sends. Main thread only.

The shot is the scene's frame range, or its preview range when that is on (the marked range). Every pass renders
each frame once with Workbench into an uncompressed multilayer OpenEXR (the Z pass and the combined image), read
back by :mod:`.scene_control.exr`. Workbench renders without a display: on a GPU, or through software OpenGL
(Mesa) on a headless machine; it is also the fastest of Blender's engines. Eevee needs minutes to compile its
shaders headless and Cycles' Z pass is the same measure, so neither is used.

- ``pose``: each humanoid armature (one its bone map recognises) drawn as the OpenPose skeleton of the pose
  mode, joints projected through the camera; a joint more than ``occlusion_margin`` behind the Z pass at its
  pixel is hidden (not drawn), so a wall or another body in front of it hides it. ``keypoints.json`` beside the
  images holds every drawn point.
- ``depth``: the Z pass as inverse depth, nearest white and farthest black over the whole shot.
- ``layout``: Workbench's flat grey shading with object outlines: the set's shapes without its look.

The render settings the passes need are set for the render and put back afterwards; the scene's sequencer and
compositor are switched off meanwhile, so the camera's view is what gets rendered. :class:`PassRender` renders
one frame per step (what the operators' modal loop drives) and can be cancelled between steps.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..bridge.live_record import write_png
from ..bridge.retarget.bone_maps import BoneMap, BoneMapError, detect_map
from ..bridge.scene_control import body_joints, depth, skeleton_drawing
from ..bridge.scene_control.exr import read_exr_channels
from ..bridge.scene_control.framing import QUALITY_AREAS, Framing, fit_camera, generation_size, round_to_multiple
from ..bridge.scene_control.projection import project_points
from ..common import compat, preferences
from ..common.errors import UserError
from ..common.strips import first_free_channel
from ..pose import armature_io

PASSES = ("pose", "depth", "layout")
PASS_PROP = "vfx_scene_pass"
SCENE_PROP = "vfx_scene"
CAMERA_PROP = "vfx_camera"
FRAMES_PROP = "vfx_scene_frames"
FRAMING_PROP = "vfx_framing"


@dataclass(frozen=True)
class Shot:
    """What a pass shows: ``frame_count`` frames from ``frame_start`` through ``camera``, framed by ``framing``."""

    scene: str
    camera: str
    frame_start: int
    frame_count: int
    framing: Framing

    @property
    def frames(self) -> range:
        return range(self.frame_start, self.frame_start + self.frame_count)

    def strip_props(self, pass_name: str) -> dict[str, Any]:
        """The custom properties that record the shot on a pass strip and on the result strip."""
        return {
            PASS_PROP: pass_name,
            SCENE_PROP: self.scene,
            CAMERA_PROP: self.camera,
            FRAMES_PROP: f"{self.frame_start}-{self.frame_start + self.frame_count - 1}",
            FRAMING_PROP: self.framing.describe(),
        }


@dataclass
class RenderedPass:
    """A pass on disk: ``files`` in frame order, one per frame of ``shot``."""

    name: str
    shot: Shot
    folder: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def shot_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    """The scene's active camera; UserError if it has none."""
    camera = scene.camera
    if camera is None:
        raise UserError(
            f"Scene '{scene.name}' has no active camera: add a camera and make it the active one "
            "(View > Cameras > Set Active Object as Camera)"
        )
    if camera.type != "CAMERA":
        raise UserError(f"The active camera of scene '{scene.name}', '{camera.name}', is a {camera.type.lower()}")
    return camera


def camera_aspect(scene: bpy.types.Scene) -> float:
    """Width / height of the frame the scene's camera renders (resolution and pixel aspect)."""
    render = scene.render
    return (render.resolution_x * render.pixel_aspect_x) / (render.resolution_y * render.pixel_aspect_y)


def plan_shot(scene: bpy.types.Scene, quality: str = "standard", width: int = 0, height: int = 0) -> Shot:
    """The shot of the scene's camera over its frame range (the preview range when it is on), at the size a VACE
    job of ``quality`` makes for the camera's aspect, or at ``width`` x ``height`` when given (0: from quality)."""
    camera = shot_camera(scene)
    if scene.use_preview_range:
        start, end = scene.frame_preview_start, scene.frame_preview_end
    else:
        start, end = scene.frame_start, scene.frame_end
    aspect = camera_aspect(scene)
    if width and height:
        size = (width, height)
    elif width:
        size = (width, round_to_multiple(width / aspect))
    elif height:
        size = (round_to_multiple(height * aspect), height)
    else:
        size = generation_size(aspect, QUALITY_AREAS.get(quality, QUALITY_AREAS["standard"]))
    try:
        framing = fit_camera(aspect, *size)
    except ValueError as exc:
        raise UserError(f"Generation size: {exc}") from None
    return Shot(scene.name, camera.name, start, end - start + 1, framing)


def humanoid_armatures(scene: bpy.types.Scene) -> list[tuple[bpy.types.Object, BoneMap]]:
    """The armatures the pose pass draws: those the render shows whose bones a built-in bone map recognises.
    UserError naming each armature's problem when there is none to draw."""
    armatures = [obj for obj in scene.objects if obj.type == "ARMATURE" and not obj.hide_render]
    if not armatures:
        raise UserError(
            f"Scene '{scene.name}' has no armature to render: the pose pass draws the skeletons of humanoid rigs "
            "(Rigify, Mixamo or common bone names). Add one, or use the depth or layout pass"
        )
    found, problems = [], []
    for obj in armatures:
        try:
            bone_map = detect_map(armature_io.read_rig(obj))
        except (BoneMapError, armature_io.ArmatureError) as exc:
            problems.append(str(exc))
            continue
        missing = [role for role in body_joints.REQUIRED_ROLES if role not in bone_map.bones]
        if missing:
            problems.append(f"rig '{obj.name}' ({bone_map.name}) has no bone for {', '.join(missing)}")
            continue
        found.append((obj, bone_map))
    if not found:
        raise UserError("No armature of the scene can be drawn as a skeleton: " + "; ".join(problems))
    return found


def _joint_bone(obj: bpy.types.Object, bone_map: BoneMap, role: str) -> str:
    """The bone whose head is the joint of ``role``. A generated Rigify rig's FK controls stay put while its IK
    controls move the limbs; its ORG- bones follow whichever is active, so the joints are read from those."""
    name = bone_map.bones[role]
    follower = "ORG-" + name.replace("_fk", "")
    return follower if name.endswith(("_fk.L", "_fk.R")) and follower in obj.pose.bones else name


def posed_body(obj: bpy.types.Object, bone_map: BoneMap, depsgraph: bpy.types.Depsgraph) -> body_joints.PosedBody:
    """The armature's joints in world space at the depsgraph's current frame (constraints and drivers applied)."""
    evaluated = obj.evaluated_get(depsgraph)
    world = np.array(evaluated.matrix_world)
    bones = evaluated.pose.bones

    def to_world(point: Any) -> np.ndarray:
        return world[:3, :3] @ np.array(point) + world[:3, 3]

    joints = {role: to_world(bones[_joint_bone(obj, bone_map, role)].head) for role in body_joints.REQUIRED_ROLES}
    head = bones[bone_map.bones["head"]]
    forward, left = body_joints.face_axes_at_rest(np.array(obj.data.bones[head.name].matrix_local))
    axes = body_joints.head_axes(world @ np.array(head.matrix), forward, left)
    length = float(np.linalg.norm(to_world(head.tail) - joints["head"]))
    return body_joints.PosedBody(joints, axes, length)


def _switch_render_settings(
    scene: bpy.types.Scene, framing: Framing, layout: bool
) -> tuple[bpy.types.ViewLayer, Callable[[], None]]:
    """Set what a pass render needs; return the view layer that is rendered and the function that puts every
    setting, and the current frame, back."""
    render, shading = scene.render, scene.display.shading
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    settings: list[tuple[Any, str, Any]] = [
        (render, "engine", "BLENDER_WORKBENCH"),
        (render, "resolution_x", framing.render_size[0]),
        (render, "resolution_y", framing.render_size[1]),
        (render, "resolution_percentage", 100),
        (render, "pixel_aspect_x", 1.0),
        (render, "pixel_aspect_y", 1.0),
        (render, "use_border", False),
        (render, "use_sequencer", False),
        (render, "use_compositing", False),
        (render, "use_multiview", False),
        (render, "use_file_extension", True),
        (render, "film_transparent", False),
        (render, "filepath", render.filepath),
        (scene.display, "render_aa", "OFF"),
        (view_layer, "use_pass_z", True),
    ]
    for layer in scene.view_layers:
        settings.append((layer, "use", layer == view_layer))
    if layout:
        settings += [
            (shading, "light", "STUDIO"),
            (shading, "color_type", "SINGLE"),
            (shading, "single_color", (0.8, 0.8, 0.8)),
            (shading, "show_cavity", False),
            (shading, "show_shadows", False),
            (shading, "show_object_outline", True),
        ]
    image = render.image_settings
    image_attrs = [name for name in ("media_type", "file_format", "color_mode", "color_depth", "exr_codec")]
    saved_image = [(name, getattr(image, name)) for name in image_attrs if name in image.bl_rna.properties]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in settings]
    saved_frame = scene.frame_current

    def restore() -> None:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
        for name, value in saved_image:
            setattr(image, name, value)
        scene.frame_set(saved_frame)

    try:
        for owner, name, value in settings:
            setattr(owner, name, value)
        compat.use_multilayer_exr(image)
        image.color_depth = "32"
        image.exr_codec = "NONE"
    except BaseException:
        restore()
        raise
    return view_layer, restore


def _render_frame(scene: bpy.types.Scene, frame: int, path: Path, view_layer: str) -> dict[str, np.ndarray]:
    """Render ``frame`` into the EXR ``path`` (without its extension) and return its channels by pass
    (``Depth.Z``, ``Combined.R``...), for the rendered view layer."""
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    written = path.with_suffix(".exr")
    if not written.is_file():
        raise UserError(f"Blender did not render frame {frame} of scene '{scene.name}' (nothing written to {written})")
    prefix = f"{view_layer}."
    channels = read_exr_channels(written)
    return {name[len(prefix) :]: values for name, values in channels.items() if name.startswith(prefix)}


def _crop(values: np.ndarray, framing: Framing) -> np.ndarray:
    return values[framing.top : framing.top + framing.height, framing.left : framing.left + framing.width]


def _linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    value = np.clip(linear, 0.0, 1.0)
    encoded = np.where(value <= 0.0031308, value * 12.92, 1.055 * np.power(value, 1 / 2.4) - 0.055)
    return np.clip(np.rint(encoded * 255.0), 0, 255).astype(np.uint8)


def pass_folder(scene: bpy.types.Scene, pass_name: str, camera: str) -> Path:
    """A new folder for a pass: beside the saved .blend (``<name>_scene_passes/``) so the file and its passes
    travel together, else in the add-on's output folder; named after the scene, camera, pass and the time."""
    if bpy.data.filepath:
        blend = Path(bpy.data.filepath)
        base = blend.parent / f"{blend.stem}_scene_passes"
    else:
        base = preferences.daemon_settings().data_dir / "scene_passes"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = bpy.path.clean_name(f"{scene.name}_{camera}_{pass_name}_{stamp}_{uuid.uuid4().hex[:6]}")
    folder = base / name
    folder.mkdir(parents=True)
    return folder


class PassRender:
    """A pass being rendered into a new :func:`pass_folder`, ``000000.png`` upward, one step at a time, so the
    caller decides what happens between frames (a modal operator lets Blender redraw and take Esc).

    Creating it checks the pass name, the camera and, for the pose pass, the armatures before anything is written
    (UserError), makes the folder and switches the scene's render settings for the pass. Each :meth:`step` renders
    one frame of the shot (the depth pass then takes as many steps again to write its pictures, on the shot's
    scale known only once every frame is rendered). Every ending puts the settings and the current frame back:
    the last step (the pass is complete on disk), :meth:`cancel` (the partial folder is removed), or an error
    raised by a step (cleaned up as by :meth:`cancel`, then raised).

    ``occlusion_margin`` (Blender units): how far behind the Z pass a joint may be and still be drawn, so joints
    inside their own body's mesh stay visible; a negative margin turns hiding off.
    """

    def __init__(self, scene: bpy.types.Scene, pass_name: str, shot: Shot, occlusion_margin: float = 0.25) -> None:
        if pass_name not in PASSES:
            raise UserError(f"Unknown pass '{pass_name}': choose one of {', '.join(PASSES)}")
        self.scene = scene
        self.camera = shot_camera(scene)
        self.bodies = humanoid_armatures(scene) if pass_name == "pose" else []
        self.occlusion_margin = occlusion_margin
        self.rendered = RenderedPass(pass_name, shot, pass_folder(scene, pass_name, self.camera.name))
        self.steps_done = 0
        self.step_count = shot.frame_count * (2 if pass_name == "depth" else 1)
        self.ended = False
        self._keypoints: list[dict[str, Any]] = []
        self._nearest, self._farthest = np.inf, 0.0
        self._scratch = tempfile.TemporaryDirectory(prefix="vfx-pass-")
        try:
            self._view_layer, self._restore = _switch_render_settings(scene, shot.framing, pass_name == "layout")
        except BaseException:
            self._end(keep=False)
            raise

    @property
    def progress(self) -> float:
        """The fraction of the pass done, 0 to 1."""
        return self.steps_done / self.step_count

    @property
    def frames_rendered(self) -> int:
        return min(self.steps_done, self.rendered.shot.frame_count)

    def step(self) -> bool:
        """Render (or, for the depth pass's second half, write) the next frame; True once the pass is complete
        on disk and the settings are back. UserError (or any error) ends the render as :meth:`cancel` does."""
        if self.ended:
            raise RuntimeError("the pass render has ended")
        try:
            frame_count = self.rendered.shot.frame_count
            if self.steps_done < frame_count:
                self._render(self.steps_done)
            else:
                self._write_depth(self.steps_done - frame_count)
            self.steps_done += 1
            if self.steps_done == self.step_count:
                self._complete()
                return True
        except BaseException:
            self.cancel()
            raise
        return False

    def cancel(self) -> None:
        """Stop: put the settings and the frame back and remove the partial pass folder. Does nothing once ended."""
        if not self.ended:
            self._end(keep=False)

    def _end(self, keep: bool) -> None:
        self.ended = True
        try:
            restore = getattr(self, "_restore", None)
            if restore is not None:
                restore()
        except ReferenceError:
            pass  # the scene is gone (another file was opened): nothing to put back
        finally:
            self._scratch.cleanup()
            if not keep:
                shutil.rmtree(self.rendered.folder, ignore_errors=True)

    def _render(self, index: int) -> None:
        scene, shot, framing = self.scene, self.rendered.shot, self.rendered.shot.framing
        frame = shot.frame_start + index
        channels = _render_frame(scene, frame, Path(self._scratch.name) / f"{index:06d}", self._view_layer.name)
        z = _crop(channels["Depth.Z"], framing)
        path = self.rendered.folder / f"{index:06d}.png"
        if self.rendered.name == "pose":
            write_png(path, self._draw_pose(frame, z))
        elif self.rendered.name == "layout":
            rgb = np.stack([_crop(channels[f"Combined.{c}"], framing) for c in "RGB"], axis=2)
            write_png(path, _linear_to_srgb(rgb))
        else:
            np.save(Path(self._scratch.name) / f"{index:06d}.npy", z)
            try:
                low, high = depth.shot_range([z])
                self._nearest, self._farthest = min(self._nearest, low), max(self._farthest, high)
            except ValueError:
                pass  # a frame that sees nothing is black; the shot as a whole is checked before writing
        self.rendered.files.append(path)

    def _draw_pose(self, frame: int, z: np.ndarray) -> np.ndarray:
        framing = self.rendered.shot.framing
        render_width, render_height = framing.render_size
        depsgraph = bpy.context.evaluated_depsgraph_get()
        camera = self.camera.evaluated_get(depsgraph)
        view = np.array(camera.matrix_world.inverted())
        projection = np.array(camera.calc_matrix_camera(depsgraph, x=render_width, y=render_height))
        canvas = np.zeros((framing.height, framing.width, 3), np.uint8)
        frame_record = []
        for obj, bone_map in self.bodies:
            points = body_joints.keypoints_world(posed_body(obj, bone_map, depsgraph))
            pixels, point_depth = project_points(points, view, projection, framing)
            visible, hidden = body_joints.hide_occluded(
                pixels, point_depth, z if self.occlusion_margin >= 0 else None, self.occlusion_margin
            )
            keypoints = body_joints.add_neck(visible)
            canvas = skeleton_drawing.draw_openpose(canvas, keypoints)
            frame_record.append(
                {
                    "armature": obj.name,
                    "bone_map": bone_map.name,
                    "keypoints": [[None if np.isnan(v) else float(v) for v in p] for p in keypoints],
                    "projected": [[None if np.isnan(v) else float(v) for v in p] for p in pixels],
                    "depth": [float(d) for d in point_depth],
                    "hidden": [bool(h) for h in hidden],
                }
            )
        self._keypoints.append({"frame": frame, "bodies": frame_record})
        return canvas

    def _write_depth(self, index: int) -> None:
        if not np.isfinite(self._nearest):
            shot = self.rendered.shot
            raise UserError(
                f"Camera '{self.camera.name}' sees no surface in frames {shot.frame_start}-"
                f"{shot.frame_start + shot.frame_count - 1}: the depth pass would be black"
            )
        z = np.load(Path(self._scratch.name) / f"{index:06d}.npy")
        write_png(self.rendered.files[index], depth.depth_picture(z, self._nearest, self._farthest))

    def _complete(self) -> None:
        framing = self.rendered.shot.framing
        if self.rendered.name == "depth":
            self.rendered.notes.append(
                f"depth from {self._nearest:.3g} (white) to {self._farthest:.3g} (black) Blender units"
            )
        if self.rendered.name == "pose":
            record = {"width": framing.width, "height": framing.height, "frames": self._keypoints}
            (self.rendered.folder / "keypoints.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        self._end(keep=True)


def render_pass(scene: bpy.types.Scene, pass_name: str, shot: Shot, occlusion_margin: float = 0.25) -> RenderedPass:
    """Render the whole pass at once (see :class:`PassRender`); UserError as it raises."""
    render = PassRender(scene, pass_name, shot, occlusion_margin)
    while not render.step():
        pass
    return render.rendered


def insert_pass_strip(scene: bpy.types.Scene, rendered: RenderedPass) -> bpy.types.ImageStrip:
    """Insert the pass as an image strip at the shot's frames, on the first channel free there, with the shot
    recorded on it (pass, scene, camera, frames, framing); it becomes the active, only selected strip."""
    editor = scene.sequence_editor_create()
    shot = rendered.shot
    channel = first_free_channel(editor, 0, shot.frame_start, shot.frame_start + shot.frame_count)
    name = f"{rendered.name} pass {shot.camera}"
    strip = compat.new_image_strip(editor, name, str(rendered.files[0]), channel, shot.frame_start)
    for path in rendered.files[1:]:
        strip.elements.append(path.name)
    for key, value in shot.strip_props(rendered.name).items():
        strip[key] = value
    for other in compat.all_strips(editor):
        other.select = False
    strip.select = True
    editor.active_strip = strip
    return strip
