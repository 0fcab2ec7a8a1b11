"""Time to render each scene control pass per frame in Blender, against the time the pose mode takes to draw the
same skeletons from landmarks.

    .venv-bpy50/bin/python -m scripts.bench.blender.scene_passes [--frames 24]

Prints a table, then, as its last line, the JSON result line of ``scripts/bench/common.py`` (no goal: a
reference). Exits 0 whatever the numbers are. About a minute on 2 CPU cores.

Runs real Blender (the bpy module) with the extension installed into a temporary Blender user folder: a Rigify
human metarig walking its arm and hips, a camera and a few boxes, rendered through the add-on's own pass code at
the standard generation size (848x480 for a 16:9 camera) over ``--frames`` frames, each pass twice (the first run
warms Workbench up; the second is reported). The baseline runs in the daemon's venv (``--daemon-python``, which
has OpenCV): the pose mode's ``mediapipe_to_openpose18`` and ``draw_openpose`` on black for the same points,
given as MediaPipe landmarks, which is what the pose mode does per frame when it renders a control video.
The ratio is the pass's time per frame over the baseline's; ``pose_pass_draw_s_per_frame`` is the pose pass's own
numpy drawing of the same points alone (no render, no PNG).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench import common
from scripts.bench.blender.extension import MODULE, install_extension

ROOT = common.ROOT


def baseline(keypoints_file: Path, repeats: int) -> dict[str, float]:
    """In the daemon's venv: seconds per frame for the pose mode to draw the skeletons of ``keypoints_file``."""
    import numpy as np

    from models.skeleton import MEDIAPIPE_POSE_LANDMARKS, draw_openpose, mediapipe_to_openpose18
    from shared.openpose import OPENPOSE18_KEYPOINTS

    record = json.loads(keypoints_file.read_text())
    frames = []
    for frame in record["frames"]:
        landmarks = []
        for body in frame["bodies"]:
            xy = np.zeros((len(MEDIAPIPE_POSE_LANDMARKS), 2), np.float32)
            visibility = np.zeros(len(MEDIAPIPE_POSE_LANDMARKS), np.float32)
            for name, point in zip(OPENPOSE18_KEYPOINTS, body["keypoints"], strict=True):
                if name in MEDIAPIPE_POSE_LANDMARKS and point[0] is not None:
                    index = MEDIAPIPE_POSE_LANDMARKS.index(name)
                    xy[index], visibility[index] = point, 1.0
            landmarks.append((xy, visibility))
        frames.append(landmarks)
    shape = (record["height"], record["width"], 3)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for landmarks in frames:
            canvas = np.zeros(shape, np.uint8)
            for xy, visibility in landmarks:
                canvas = draw_openpose(canvas, mediapipe_to_openpose18(xy, visibility, 0.5))
        best = min(best, (time.perf_counter() - started) / len(frames))
    return {"pose_mode_draw_s_per_frame": best}


def time_add_on_drawing(addon, keypoints_file: Path, repeats: int = 5) -> float:
    """Seconds per frame for the pose pass's own (numpy) drawing of the skeletons in ``keypoints_file``."""
    import numpy as np

    record = json.loads(keypoints_file.read_text())
    frames = [
        [np.array([[np.nan if v is None else v for v in p] for p in body["keypoints"]]) for body in frame["bodies"]]
        for frame in record["frames"]
    ]
    draw = addon.bridge.scene_control.skeleton_drawing.draw_openpose
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for bodies in frames:
            canvas = np.zeros((record["height"], record["width"], 3), np.uint8)
            for keypoints in bodies:
                canvas = draw(canvas, keypoints)
        best = min(best, (time.perf_counter() - started) / len(frames))
    return best


def build_scene(frames: int) -> None:
    """A metarig moving over ``frames`` frames, a camera looking at it, boxes around it."""
    import addon_utils
    import bpy

    scene = bpy.context.scene
    for obj in list(scene.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.active_object
    bpy.ops.object.mode_set(mode="POSE")
    arm, hips = rig.pose.bones["upper_arm.L"], rig.pose.bones["spine"]
    arm.rotation_mode = "XYZ"
    for frame, angle, x in ((1, 0.0, -0.4), (frames, 1.2, 0.4)):
        arm.rotation_euler = (0.0, 0.0, angle)
        arm.keyframe_insert("rotation_euler", frame=frame)
        hips.location = (x, 0.0, 0.0)
        hips.keyframe_insert("location", frame=frame)
    bpy.ops.object.mode_set(mode="OBJECT")
    scene.camera.location = (0.0, -5.0, 1.0)
    scene.camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    for location in ((-1.5, -1.0, 0.5), (1.5, 2.0, 0.5), (0.0, 6.0, 1.5)):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.frame_start, scene.frame_end = 1, frames


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    addon = install_extension(work)
    import bpy

    importlib.import_module(f"{MODULE}.addon.bridge.scene_control.skeleton_drawing")
    addon.common.preferences.get().output_dir = str(work / "out")
    build_scene(args.frames)
    scene = bpy.context.scene
    shot = addon.generate.scene_passes.plan_shot(scene, "standard")
    results: dict[str, object] = {
        "blender": bpy.app.version_string,
        "frames": shot.frame_count,
        "size": f"{shot.framing.width}x{shot.framing.height}",
    }
    keypoints_file = None
    for pass_name in addon.generate.scene_passes.PASSES:
        for _warm_then_timed in range(2):
            started = time.perf_counter()
            rendered = addon.generate.scene_passes.render_pass(scene, pass_name, shot)
            seconds = time.perf_counter() - started
        results[f"{pass_name}_pass_s_per_frame"] = seconds / shot.frame_count
        if pass_name == "pose":
            keypoints_file = rendered.folder / "keypoints.json"
    if keypoints_file is None:
        raise RuntimeError(
            f"no pose pass among {addon.generate.scene_passes.PASSES}: nothing to compare with the pose mode"
        )
    results["pose_pass_draw_s_per_frame"] = time_add_on_drawing(addon, keypoints_file)
    done = subprocess.run(
        [args.daemon_python, "-m", "scripts.bench.blender.scene_passes", "--baseline", str(keypoints_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    results.update(json.loads(done.stdout))
    base = float(results["pose_mode_draw_s_per_frame"])  # type: ignore[arg-type]
    for pass_name in addon.generate.scene_passes.PASSES:
        results[f"{pass_name}_pass_vs_pose_mode_draw"] = float(results[f"{pass_name}_pass_s_per_frame"]) / base  # type: ignore[arg-type]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--daemon-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline is not None:
        print(json.dumps(baseline(args.baseline, repeats=5)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="vfx-bench-scene-"))
    try:
        results = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = float(results["pose_mode_draw_s_per_frame"])  # type: ignore[arg-type]
    print(f"Blender {results['blender']}, {results['frames']} frames at {results['size']}")
    print(f"{'':<34}{'ms/frame':>10}{'vs pose mode':>14}")
    for name in ("pose_pass", "pose_pass_draw", "depth_pass", "layout_pass", "pose_mode_draw"):
        seconds = float(results[f"{name}_s_per_frame"])  # type: ignore[arg-type]
        print(f"{name.replace('_', ' '):<34}{seconds * 1000:>10.1f}{seconds / base:>13.1f}x")
    passes = ", ".join(
        f"{name} {float(results[f'{name}_pass_s_per_frame']) * 1000:.0f} ms"  # type: ignore[arg-type]
        for name in ("pose", "depth", "layout")
    )
    headline = f"{passes} a frame at {results['size']}, vs {base * 1000:.1f} ms for the pose mode's drawing"
    common.result_line(results, headline, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
