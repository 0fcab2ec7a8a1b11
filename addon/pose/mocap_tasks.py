"""Pose-to-armature work that outlives an operator call: clips solved on a worker thread, and follow-ups waiting
for a pose job to finish (bake it, or insert its skeleton video). The pump's ticker :func:`tick` writes finished
solves on the main thread; a follow-up runs when the pump sees its job finish (:func:`pump.when_job_final`).

The worker gets plain data only (the rig description, the map, the options and the job's folder); it reads the
landmark arrays and solves there, so Blender's main thread never does more than write the keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import bpy
import numpy as np

from ..bridge.retarget.bone_maps import BoneMap
from ..bridge.retarget.face_scores import solve_scores
from ..bridge.retarget.face_shapes import FaceError, FaceOptions, FaceValues, solve_face
from ..bridge.retarget.finger_maps import FingerMap
from ..bridge.retarget.fingers import HandSolver
from ..bridge.retarget.head import HeadFromFace
from ..bridge.retarget.rig_data import RigData
from ..bridge.retarget.solver import PoseFrames, Retargeter, SolveOptions
from ..common import pump, runtime
from ..common.errors import UserError
from . import armature_io, bake, bake_report, pose_people, shape_key_bake

INTERVAL_S = 0.1
POSE_ARRAYS = ("world_landmarks", "visibility", "present", "image_landmarks")
PART_ARRAYS = ("hand_landmarks", "hand_present", "face_landmarks", "face_present", "face_blendshapes")
"""Arrays a pose job has when it tracked hands or face (see the pose mode); ``face_blendshapes`` only when the
daemon had MediaPipe's blendshape model (then the face's values are its scores, else estimated from the mesh)."""


class PoseResultError(UserError):
    """A pose job's result cannot be read; the message says which file and what to do."""


@dataclass(frozen=True)
class BakeRequest:
    """Everything a bake needs, as plain data (made on the main thread)."""

    armature: str
    job_id: str
    output_dir: str
    frame_start: int
    fps: float
    rig: RigData
    bone_map: BoneMap
    options: SolveOptions
    interpolation: str
    reduce_tolerance_deg: float | None
    finger_map: FingerMap | None = None
    """The fingers to drive from the job's hands (None: no fingers; the job must have tracked hands)."""
    face_mesh: str = ""
    """The mesh whose shape keys the job's face drives ("": no face; the job must have tracked the face)."""
    face_options: FaceOptions | None = None
    person: int = 0
    """Which person of the job to follow: 0 the largest, k the track numbered k (:mod:`.pose_people`). Fingers and
    face need the job's main person (0 or its number): the pose mode tracks hands and face for that one only."""


@dataclass(frozen=True)
class BakeDone:
    """A finished bake as the panel shows it (and tests read it): its report, or the error that stopped it."""

    job_id: str
    armature: str
    report: bake.BakeReport | None
    error: str = ""
    frames_measured: int = 0
    """Frames in which at least one bone was seen."""
    face: shape_key_bake.ShapeKeyReport | None = None
    """What the face wrote onto the face mesh's shape keys, when it was asked for."""
    quality: dict | None = None
    """The bake's quality report (:mod:`.bake_report`)."""
    quality_kept: str = ""
    """Where the report was kept in the job's folder, or why it could not be."""


@dataclass(frozen=True)
class _FollowUp:
    scene: str
    job_id: str
    what: str
    """In words, for messages: "bake", "insert the pose control video"."""
    run: Callable[[bpy.types.Scene, bpy.types.PropertyGroup], None]
    """Called on the main thread with the scene and the succeeded job; raises UserError."""


_executor: ThreadPoolExecutor | None = None
_solving: list[tuple[BakeRequest, Future[tuple[PoseFrames, float, FaceValues | None, dict]]]] = []
_follow_ups: list[_FollowUp] = []
finished: list[BakeDone] = []
"""Bakes done since the add-on was enabled, oldest first (the panel shows the last)."""


def load_pose_arrays(output_dir: str) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and summary a pose job published. Raises PoseResultError naming what is missing."""
    folder = Path(output_dir)
    arrays = {}
    for name in POSE_ARRAYS:
        path = folder / "arrays" / f"{name}.npy"
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PoseResultError(
                f"Cannot read {path} ({exc}): the job's folder was moved or deleted, or it is not a pose job; "
                "run pose on the strip again"
            ) from None
    for name in PART_ARRAYS:
        path = folder / "arrays" / f"{name}.npy"
        if path.is_file():
            arrays[name] = np.load(path, allow_pickle=False)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PoseResultError(f"Cannot read {folder / 'summary.json'}: {exc}") from None
    return arrays, summary


def solve_job(request: BakeRequest) -> tuple[PoseFrames, float, FaceValues | None, dict]:
    """Worker thread: read the job's landmarks and solve them for the rig; (pose with the fingers when asked for,
    the rig's leg length, the face's shape values when asked for, the quality report)."""
    arrays, summary = load_pose_arrays(request.output_dir)
    wants_parts = request.finger_map is not None or bool(request.face_mesh)
    if wants_parts and not pose_people.is_main_person(summary, request.person):
        main = pose_people.default_person(summary)
        raise PoseResultError(
            f"Hands and face are tracked for the pose job's main person only (Person {main}): set Person to 0 or "
            f"{main}, or turn Hands and Face off to bake Person {request.person}"
        )
    if request.person:
        arrays |= pose_people.load_track_arrays(Path(request.output_dir))
    try:
        arrays = pose_people.person_arrays(arrays, summary, request.person)
    except pose_people.PersonError as exc:
        raise PoseResultError(str(exc)) from None
    size = (float(summary.get("width") or 0), float(summary.get("height") or 0))
    retargeter = Retargeter(request.rig, request.bone_map, request.options)
    pose = retargeter.solve_clip(
        arrays["world_landmarks"],
        arrays["visibility"],
        arrays["present"],
        request.fps,
        arrays["image_landmarks"],
        size if all(size) else None,
        summary.get("shot_starts"),
    )
    if request.finger_map is not None and "hand_landmarks" in arrays and all(size):
        hands = HandSolver(retargeter, request.finger_map)
        pose = hands.solve_clip(pose, arrays["hand_landmarks"], arrays["hand_present"], size, request.fps)
    face = None
    if request.face_mesh:
        if "face_landmarks" not in arrays or not all(size):
            raise PoseResultError(
                f"Pose job {request.job_id[:8]} did not track the face: bake again with Face on (it runs pose again)"
            )
        head = HeadFromFace(retargeter)
        pose = head.solve_clip(pose, arrays["face_landmarks"], arrays["face_present"], size, request.fps)
        shot_starts = summary.get("shot_starts") or ()
        try:
            if "face_blendshapes" in arrays and (request.face_options is None or request.face_options.use_model):
                face = solve_scores(
                    arrays["face_blendshapes"], arrays["face_present"], request.fps, request.face_options, shot_starts
                )
            else:
                face = solve_face(
                    arrays["face_landmarks"],
                    arrays["face_present"],
                    size,
                    request.fps,
                    request.face_options,
                    shot_starts,
                )
        except FaceError as exc:
            raise PoseResultError(str(exc)) from None
    report = bake_report.make_report(pose, summary, request.person, request.job_id, request.armature)
    if face is not None:
        report["face_source"] = face.source
    return pose, retargeter.rig_leg_length, face, report


def start_bake(request: BakeRequest) -> None:
    """Solve on the worker thread; :func:`tick` writes the keys when it is done."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vfx-mocap-solve")
    _solving.append((request, _executor.submit(solve_job, request)))
    _ensure_timer()


def after_job(
    scene: bpy.types.Scene,
    job_id: str,
    what: str,
    run: Callable[[bpy.types.Scene, bpy.types.PropertyGroup], None],
) -> None:
    """Call ``run(scene, job)`` on the main thread once the pose job ``job_id`` has succeeded; if it ends any
    other way, show that there was nothing to ``what``."""
    follow_up = _FollowUp(scene.name, job_id, what, run)
    _follow_ups.append(follow_up)
    _ensure_timer()
    pump.when_job_final(job_id, partial(_run_follow_up, follow_up))


def busy() -> bool:
    return bool(_solving or _follow_ups)


def _ensure_timer() -> None:
    pump.start_ticker(tick)


def _job_of(follow_up: _FollowUp) -> tuple[bpy.types.Scene | None, bpy.types.PropertyGroup | None]:
    scene = bpy.data.scenes.get(follow_up.scene)
    return scene, scene.vfx_mocap.jobs.get(follow_up.job_id) if scene is not None else None


def _run_follow_up(follow_up: _FollowUp) -> None:
    """The follow-up's job finished (pump callback, main thread): run it, or say why there is nothing to do."""
    if follow_up not in _follow_ups:
        return  # dropped meanwhile (the add-on was disabled and enabled again)
    _follow_ups.remove(follow_up)
    scene, job = _job_of(follow_up)
    if job is None:
        return
    if job.state != "succeeded":
        _report(f"Pose job {job.name[:8]} {job.state_text}: nothing to {follow_up.what}")
        return
    try:
        follow_up.run(scene, job)
    except UserError as exc:
        _report(str(exc))
    except Exception as exc:  # reported, so the pump's other callbacks still run
        runtime.report_internal_error(f"The follow-up '{follow_up.what}' of pose job {job.name[:8]}", exc)


def tick() -> float | None:
    """Pump ticker (main thread): write finished solves; forget follow-ups whose job was removed from the scene
    (no job, no finish to wait for). Done when idle."""
    for request, future in [item for item in _solving if item[1].done()]:
        _solving.remove((request, future))
        finished.append(_apply(request, future))
    for follow_up in [f for f in _follow_ups if _job_of(f)[1] is None]:
        _follow_ups.remove(follow_up)
    return INTERVAL_S if busy() else None


def _apply(request: BakeRequest, future: Future[tuple[PoseFrames, float, FaceValues | None, dict]]) -> BakeDone:
    try:
        pose, leg_length, face, quality = future.result()
    except PoseResultError as exc:
        return _failed(request, str(exc))
    except Exception as exc:  # a solver bug must reach the panel, not vanish in a thread
        return _failed(request, f"Solving the pose of job {request.job_id[:8]} failed: {type(exc).__name__}: {exc}")
    obj = bpy.data.objects.get(request.armature)
    if obj is None or obj.type != "ARMATURE":
        return _failed(request, f"Armature '{request.armature}' is gone: nothing was baked")
    try:
        report = bake.bake_pose(
            obj,
            pose,
            request.frame_start + np.arange(len(pose)),
            interpolation=request.interpolation,
            reduce_tolerance_deg=request.reduce_tolerance_deg,
            root_scale=leg_length or 1.0,
        )
        armature_io.apply_switches(obj, request.bone_map)  # after the bake: a refused bake changes nothing
    except bake.BakeError as exc:
        return _failed(request, str(exc))
    except Exception as exc:  # raised in the timer, it would stop the timer and every bake after it, unseen
        return _failed(
            request, f"Baking job {request.job_id[:8]} onto '{obj.name}' failed: {type(exc).__name__}: {exc}"
        )
    face_report, error = None, ""
    if face is not None:
        mesh = bpy.data.objects.get(request.face_mesh)
        try:
            if mesh is None or mesh.type != "MESH":
                raise shape_key_bake.ShapeKeyBakeError(f"Face mesh '{request.face_mesh}' is gone: no face was baked")
            frames = request.frame_start + np.arange(len(face.values))
            names = request.face_options.name_map if request.face_options is not None else {}
            face_report = shape_key_bake.bake_face(mesh, face, frames, names, request.interpolation)
        except shape_key_bake.ShapeKeyBakeError as exc:
            error = str(exc)
            _report(error)
    kept = bake_report.keep(obj, quality, request.output_dir)
    if kept.startswith("Cannot"):
        _report(kept)
    bake.push_undo_step(f"Bake Pose to {obj.name}")
    measured = int(pose.measured.any(axis=1).sum())
    return BakeDone(
        request.job_id, request.armature, report, error, measured, face=face_report, quality=quality, quality_kept=kept
    )


def _failed(request: BakeRequest, message: str) -> BakeDone:
    _report(message)
    return BakeDone(request.job_id, request.armature, None, message)


def _report(message: str) -> None:
    runtime.get().last_error = message


def unregister() -> None:
    """Drop pending work and stop the worker (a solve in progress finishes in the background, unused)."""
    global _executor
    pump.stop_ticker(tick)
    _follow_ups.clear()
    _solving.clear()
    finished.clear()
    if _executor is not None:
        _executor.shutdown(wait=True, cancel_futures=True)
        _executor = None
