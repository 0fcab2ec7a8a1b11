"""The main job, headless in real Blender: the sample video through the add-on's pose mode and back.

    .venv-bpy50/bin/python scripts/blender_demo.py --out out/blender-demo

Run it with the Python of a bpy venv (scripts/setup_blender_envs.sh makes them). It builds and installs the
extension with Blender's own installer into a Blender user folder inside ``--out`` (your own Blender setup is
not touched), starts the daemon from the add-on, loads the video into the sequencer, runs the pose mode
through the add-on's operators, inserts the result strip above the video, saves ``pose_demo.blend`` and
renders one sequencer frame to ``sequencer_frame.png``. ``blender_demo.json`` sums up what happened.

The bpy module has no event loop, so its timers never fire: the script calls the add-on's timer function
(``pump.tick``) itself, which is what Blender's timer does in the application.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
MODULE = "bl_ext.user_default.vfx_motion_capture"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "blender-demo", help="output folder")
    parser.add_argument("--video", type=Path, default=SAMPLE_VIDEO, help="the footage (default: Megamind.avi)")
    parser.add_argument("--start", type=int, default=30, help="first frame of the video to use (0-based)")
    parser.add_argument("--frames", type=int, default=48, help="how many frames to track")
    parser.add_argument("--daemon-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the job")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    out = args.out.resolve()
    if not args.video.is_file():
        print(f"blender_demo: {args.video} is missing (apt-get install opencv-doc)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender-user")  # read when bpy is imported
    sys.path.insert(0, str(ROOT / "scripts"))
    import bpy
    import build_extension

    started = time.monotonic()
    zip_path = build_extension.build(out / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    addon = sys.modules[f"{MODULE}.addon"]
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.daemon_python = args.daemon_python
    prefs.output_dir = str(out / "daemon-data")
    rt = addon.common.runtime.get()

    def pump_until(predicate, what: str) -> None:
        deadline = time.monotonic() + args.timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}; daemon {rt.status.state}: {rt.status.message}")
            addon.common.pump.tick()
            time.sleep(0.02)

    bpy.ops.vfxmocap.daemon_start()
    pump_until(lambda: rt.status.state in {"connected", "error"}, "the daemon")
    if rt.status.state == "error":
        raise RuntimeError(f"the daemon did not start: {rt.status.message}")

    # 1. The video in the sequencer, trimmed to the frames to track, the scene matched to it.
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    compat = addon.common.compat
    source = compat.new_movie_strip(editor, args.video.stem, str(args.video), 1, 1 - args.start)
    compat.set_timing(source, "left_handle_offset", args.start)
    compat.set_timing(source, "duration", args.frames)
    element = source.elements[0]
    scene.render.resolution_x, scene.render.resolution_y = element.orig_width, element.orig_height
    scene.render.fps = round(element.orig_fps)
    scene.frame_start, scene.frame_end = 1, args.frames
    source.select = True
    editor.active_strip = source

    # 2. Pose through the add-on's operators: choose the mode, set its options, Generate.
    state = scene.vfx_mocap
    state.auto_insert = False
    bpy.ops.vfxmocap.choose_mode(mode="pose")
    for param in state.mode_params("pose"):
        if param.name == "skeleton_background":
            param.set_value("overlay")
    bpy.ops.vfxmocap.generate()
    job = state.jobs[0]
    job_id = job.name
    submitted = time.monotonic()
    pump_until(lambda: state.jobs[job_id].is_final, "the pose job")
    job = state.jobs[job_id]
    if job.state != "succeeded":
        raise RuntimeError(f"the pose job {job.state}: {job.error}")
    job_s = time.monotonic() - submitted

    # 3. The result above the video, the file, and a picture of a sequencer frame.
    bpy.ops.vfxmocap.job_insert(job_id=job_id)
    result = addon.common.strips.find_result_strip(scene, job_id)
    blend_path = out / "pose_demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))
    scene.frame_set(args.frames // 2)
    scene.view_settings.view_transform = "Standard"  # show the footage's pixels as they are
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(out / "sequencer_frame.png")
    bpy.ops.render.render(write_still=True)

    summary = {
        "blender": bpy.app.version_string,
        "job_id": job_id,
        "job_s": round(job_s, 2),
        "total_s": round(time.monotonic() - started, 2),
        "device": (rt.status.health or {}).get("device"),
        "source": {"channel": source.channel, "first_frame": compat.timing(source, "left_handle")},
        "result_strip": {
            "name": result.name,
            "channel": result.channel,
            "first_frame": compat.timing(result, "left_handle"),
            "frames": compat.timing(result, "duration"),
            "job_id": result["vfx_job_id"],
        },
        "output_dir": job.output_dir,
        "blend": str(blend_path),
        "picture": scene.render.filepath,
    }
    (out / "blender_demo.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    bpy.ops.vfxmocap.daemon_stop()
    pump_until(lambda: rt.status.state == "stopped", "the daemon to stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
