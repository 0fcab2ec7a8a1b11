"""Live camera to armature: the daemon captures and tracks, a background thread here solves, the main thread
applies.

- The session runs on a :class:`~.live_client.LiveSessionThread` (thread ``vfx-mocap-live-pose``, its own client,
  latest-only, stopped with the daemon's session; if Blender dies, the daemon's TTL drops it). Its ``prepare``
  step, :class:`PoseSolver`, solves every fetched result on that thread, so only the newest solved pose is kept.
- :class:`LiveDriver` lives on the main thread: its timer applies the newest solved pose to the armature and,
  while recording, keeps it; when recording stops the kept poses are written as keys in bulk, at the timeline
  frames they were captured at (from the frame recording started on, at the scene's frame rate).
- Opening another file stops live pose first (:func:`stop_before_file_load`), and so does disabling the add-on.
- With Hands & Face on, the session tracks them too: the fingers and wrists join the armature's pose, the face's
  values set the face mesh's shape keys, and a recording writes both (one action each).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..bridge.live_client import LiveError, LiveSessionThread
from ..bridge.retarget.face_scores import arkit_values
from ..bridge.retarget.face_shapes import ARKIT_SHAPES, FaceValues, LiveFace
from ..bridge.retarget.finger_maps import detect_finger_map
from ..bridge.retarget.fingers import HandSolver, LiveHands
from ..bridge.retarget.head import HeadFromFace, LiveHead
from ..bridge.retarget.solver import PoseFrames, Retargeter
from ..common import pump, requests, runtime
from . import armature_io, bake, shape_key_bake

THREAD_NAME = "vfx-mocap-live-pose"
APPLY_INTERVAL_S = 0.004
"""How often the main-thread timer looks for a new pose: it bounds the wait between solved and applied."""
LATENCY_HISTORY = 2000


@dataclass(frozen=True)
class SolvedFrame:
    """One solved live frame. Times are ``time.monotonic()`` seconds (the daemon's clock is the same one on the
    same machine): ``captured_at`` when the camera frame was read, ``processed_at`` when the daemon had its
    landmarks, ``solved_at`` when its pose was ready here."""

    pose: PoseFrames
    seq: int
    frame_index: int
    present: bool
    captured_at: float
    processed_at: float
    solved_at: float
    solve_ms: float
    """How long the solve took on the live thread."""
    face: np.ndarray | None = None
    """The face's 52 ARKit values (under ``ARKIT_SHAPES``), when the session drives a face."""
    face_source: str | None = None
    """Where ``face`` came from, as the daemon says: "model" (MediaPipe's blendshape scores) or "landmarks"."""


class PoseSolver:
    """The live thread's ``prepare`` step: daemon results to solved poses. Keeps the stream's state (held bones,
    filters), so one solver serves one session, on its thread only."""

    def __init__(
        self,
        retargeter: Retargeter,
        hands: LiveHands | None = None,
        face: LiveFace | None = None,
        head: LiveHead | None = None,
    ) -> None:
        self.retargeter = retargeter
        self._live = retargeter.live()
        self._hands = hands
        self._face = face
        self._head = head

    def __call__(self, result: Mapping[str, Any], arrays: dict[str, np.ndarray]) -> SolvedFrame:
        data = result["data"]
        started = time.monotonic()
        captured_at = float(result["captured_at"])
        size = (float(data["width"]), float(data["height"]))
        pose = self._live.push(
            arrays["world_landmarks"],
            arrays["visibility"],
            bool(data["present"]),
            captured_at,
            arrays["image_landmarks"],
            size,
        )
        if self._hands is not None and "hand_landmarks" in arrays:
            pose = self._hands.push(pose, arrays["hand_landmarks"], arrays["hand_present"], size, captured_at)
        face = None
        if self._face is not None and "face_landmarks" in arrays:
            face_present = bool(arrays["face_present"])
            if "face_blendshapes" in arrays:
                scores = arkit_values(arrays["face_blendshapes"])
                usable = face_present and bool(np.isfinite(scores).all())
                face = self._face.push_scores(scores if usable else None, captured_at).copy()
            else:
                face = self._face.push(arrays["face_landmarks"], face_present, size, captured_at).copy()
            if self._head is not None:
                pose = self._head.push(pose, arrays["face_landmarks"], face_present, size, captured_at)
        solved = time.monotonic()
        return SolvedFrame(
            pose,
            int(result["seq"]),
            int(result["frame_index"]),
            bool(data["present"]),
            float(result["captured_at"]),
            float(result["processed_at"]),
            solved,
            (solved - started) * 1000.0,
            face,
            data.get("face_source") if face is not None else None,
        )


@dataclass
class _Recording:
    start_frame: int
    """The timeline frame that was current when recording started: the first key's."""
    fps: float
    frames: list[SolvedFrame] = field(default_factory=list)


class LiveDriver:
    """Applies a session's poses to an armature on the main thread, and records them on request."""

    def __init__(
        self,
        scene: bpy.types.Scene,
        armature: bpy.types.Object,
        session: LiveSessionThread[SolvedFrame],
        retargeter: Retargeter,
        face_mesh: str = "",
        shape_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.scene_name = scene.name
        self.armature_name = armature.name
        self.face_mesh = face_mesh
        """The mesh whose shape keys the face drives ("" for none)."""
        self.shape_keys = dict(shape_keys or {})
        """ARKit name -> the face mesh's shape key it drives."""
        self.session = session
        self.retargeter = retargeter
        self.applied = 0
        self.last_seq = 0
        """The daemon's sequence number of the pose applied last (it counts every result the daemon made)."""
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_HISTORY)
        """Capture to applied, per applied pose (milliseconds)."""
        self.stages_ms: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=LATENCY_HISTORY)
        """Per applied pose: (capture to landmarks in the daemon, to solved here, to applied) in milliseconds."""
        self.solve_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_HISTORY)
        """Per applied pose: its solve's duration on the live thread (milliseconds)."""
        self.last_bake: bake.BakeReport | None = None
        self.last_face_bake: shape_key_bake.ShapeKeyReport | None = None
        self.face_source: str | None = None
        """Where the face's values come from (:attr:`SolvedFrame.face_source` of the last applied face)."""
        self.error = ""
        self._recording: _Recording | None = None
        self._stopped = False

    @property
    def recording(self) -> bool:
        return self._recording is not None

    @property
    def running(self) -> bool:
        return self.session.alive and not self._stopped

    def tick(self) -> float | None:
        """Timer: apply the newest solved pose; stop when the session is over. Returns the next interval. Once
        stopped it applies nothing (a pose solved just before the stop may still be waiting)."""
        if self._stopped:
            return None
        frame = self.session.take()
        if frame is not None:
            obj = bpy.data.objects.get(self.armature_name)
            if obj is None:
                self.stop(f"The armature '{self.armature_name}' is gone: live pose stopped")
                return None
            try:
                armature_io.apply_pose(obj, frame.pose)
            except Exception as exc:  # raised in the timer, it would stop the timer and leave the session running
                self.stop(self._posing_failed(obj, frame.pose, exc))
                return None
            if frame.face is not None:
                self._apply_face(frame.face)
                self.face_source = frame.face_source
            self.applied += 1
            self.last_seq = frame.seq
            applied_at = time.monotonic()
            self.latencies_ms.append((applied_at - frame.captured_at) * 1000.0)
            self.solve_ms.append(frame.solve_ms)
            self.stages_ms.append(
                (
                    (frame.processed_at - frame.captured_at) * 1000.0,
                    (frame.solved_at - frame.processed_at) * 1000.0,
                    (applied_at - frame.solved_at) * 1000.0,
                )
            )
            if self._recording is not None:
                self._recording.frames.append(frame)
            _redraw_viewports()
        if not self.session.alive:
            self.stop(self.session.error)
            return None
        return APPLY_INTERVAL_S

    def _apply_face(self, values: np.ndarray) -> None:
        mesh = bpy.data.objects.get(self.face_mesh)
        keys = mesh.data.shape_keys if mesh is not None and mesh.type == "MESH" else None
        if keys is None:
            return
        for shape, name in self.shape_keys.items():
            block = keys.key_blocks.get(name)
            if block is not None:
                block.value = float(values[ARKIT_SHAPES.index(shape)])

    def _posing_failed(self, obj: bpy.types.Object, pose: PoseFrames, exc: Exception) -> str:
        missing = bake.missing_bones(obj, pose.bones)
        if missing:
            return (
                f"Armature '{obj.name}' has no bones {', '.join(repr(b) for b in missing)} any more (renamed or "
                "deleted): live pose stopped. Start it again to drive the bones it has now"
            )
        return f"Posing '{obj.name}' failed ({type(exc).__name__}: {exc}): live pose stopped"

    def start_recording(self) -> None:
        scene = bpy.data.scenes[self.scene_name]
        self._recording = _Recording(scene.frame_current, scene.render.fps / scene.render.fps_base)

    def stop_recording(self) -> bake.BakeReport | None:
        """Write what was recorded as keys (one per timeline frame: the newest pose captured in it). Raises
        BakeError (the recording is dropped) when the armature lost a driven bone since live pose started."""
        recording, self._recording = self._recording, None
        if recording is None or not recording.frames:
            return None
        obj = bpy.data.objects.get(self.armature_name)
        if obj is None:
            return None
        first = recording.frames[0].captured_at
        by_frame: dict[int, SolvedFrame] = {}
        for frame in recording.frames:
            by_frame[recording.start_frame + round((frame.captured_at - first) * recording.fps)] = frame
        timeline = sorted(by_frame)
        poses = [by_frame[f].pose for f in timeline]
        pose = PoseFrames(
            poses[0].bones,
            np.concatenate([p.rotations for p in poses]),
            poses[0].root_bone,
            np.concatenate([p.root_location for p in poses]),
            np.concatenate([p.measured for p in poses]),
        )
        self.last_bake = bake.bake_pose(
            obj, pose, np.array(timeline, dtype=np.float64), root_scale=self.retargeter.rig_leg_length or 1.0
        )
        faces = [by_frame[f].face for f in timeline]
        mesh = bpy.data.objects.get(self.face_mesh)
        if mesh is not None and all(face is not None for face in faces):
            values = np.stack(faces)  # type: ignore[arg-type]
            face = FaceValues(values, np.ones(len(values), dtype=bool), ())
            try:
                self.last_face_bake = shape_key_bake.bake_face(mesh, face, np.array(timeline), self.shape_keys)
            except shape_key_bake.ShapeKeyBakeError as exc:
                self.error = str(exc)
        bake.push_undo_step(f"Record Live Pose on {obj.name}")
        return self.last_bake

    def stop(self, error: str = "") -> None:
        """Write a recording in progress, stop the session (and the daemon's), keep ``error`` for the panel. Only
        the first call does anything, so the first reason is the one kept."""
        if self._stopped:
            return
        self._stopped = True
        if self.recording:
            try:
                self.stop_recording()
            except bake.BakeError as exc:
                error = f"{error} The recording was not written." if error else f"The recording was not written: {exc}"
        self.session.stop(timeout=0)  # the thread winds down on its own; the main thread never waits for it
        self.error = error or self.session.error
        if self.error:
            runtime.get().last_error = self.error
        pump.stop_ticker(tick)
        _redraw_viewports()


def _redraw_viewports() -> None:
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR"}:
                area.tag_redraw()


_driver: LiveDriver | None = None


def current() -> LiveDriver | None:
    """The running (or last) live driver."""
    return _driver


def tick() -> float | None:
    """The live timer (main thread): the driver's tick; None (unregister) once there is no driver."""
    return _driver.tick() if _driver is not None else None


def live_params(scene: bpy.types.Scene) -> dict[str, Any]:
    """The pose mode's live options as set in the panel, with the parts Hands & Face asks for (those the daemon
    lists for live pose)."""
    names = {p["name"] for p in (runtime.get().modes.get("pose", {}).get("live") or ())}
    values = {param.name: param.value for param in scene.vfx_mocap.mode_params("pose") if param.name in names}
    return values | {name: value for name, value in scene.vfx_mocap_parts.pose_params().items() if name in names}


def start(scene: bpy.types.Scene) -> LiveDriver:
    """Start live pose onto the scene's chosen armature. Raises LiveError or ArmatureError (bad input) or
    BoneMapError (no usable map); the thread reports camera errors through the driver."""
    global _driver
    if _driver is not None and _driver.running:
        raise LiveError("Live pose is already running: stop it first")
    settings = scene.vfx_mocap_pose
    obj = armature_io.require_armature(settings.armature)
    rig = armature_io.read_rig(obj)
    bone_map = obj.vfx_mocap_map.bone_map(rig)
    retargeter = Retargeter(rig, bone_map, settings.solve_options())
    parts = scene.vfx_mocap_parts
    hands = HandSolver(retargeter, detect_finger_map(rig, bone_map)).live() if parts.use_hands else None
    face, head, face_mesh, shape_keys = None, None, "", {}
    if parts.wants_face():
        options = parts.face_options()
        shape_keys = shape_key_bake.driven_shape_keys(parts.face_mesh, options.name_map)
        if not shape_keys:
            raise LiveError(
                f"Face Mesh '{parts.face_mesh.name}' has no shape key named as ARKit's or in the Name Map: choose "
                "another mesh, map its keys, or turn Face off"
            )
        face, head, face_mesh = LiveFace(options), HeadFromFace(retargeter).live(), parts.face_mesh.name
    if settings.live_source == "FILE":
        path = bpy.path.abspath(settings.video_path) if settings.video_path else ""
        if not path or not Path(path).is_file():
            raise LiveError(f"No video file at '{path or settings.video_path}': choose one, or use a camera")
        source: dict[str, Any] = {"path": str(Path(path).resolve()), "loop": True}
    else:
        source = {"camera": settings.camera_index}
    request = requests.live_request("pose", requests.live_mode_info("pose"), source, live_params(scene))
    armature_io.apply_switches(obj, bone_map)
    session = LiveSessionThread(request, PoseSolver(retargeter, hands, face, head), THREAD_NAME)
    _driver = LiveDriver(scene, obj, session, retargeter, face_mesh, shape_keys)
    pump.start_ticker(tick)
    return _driver


def stop() -> None:
    if _driver is not None and _driver.running:
        _driver.stop()


FILE_LOADED = "Live pose stopped: another file was opened (start it again to drive an armature of this one)"


@persistent
def stop_before_file_load(*_args: object) -> None:
    """``load_pre`` handler: the file about to be replaced holds the armature live pose drives. Stop (writing a
    recording in progress into the file being left, as a stop always does) so that the session never drives an
    armature of the next file that happens to have the same name."""
    if _driver is not None and _driver.running:
        _driver.stop(FILE_LOADED)


def register() -> None:
    bpy.app.handlers.load_pre.append(stop_before_file_load)


def unregister() -> None:
    """Stop a running session (writing a recording in progress), forget the driver, remove the handler."""
    global _driver
    if stop_before_file_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(stop_before_file_load)
    if _driver is not None:
        if _driver.running or _driver.recording:
            _driver.stop()
        _driver.session.stop()  # the add-on is going away: wait for the thread to end
        _driver = None
    pump.stop_ticker(tick)
