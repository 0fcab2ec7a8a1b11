#!/usr/bin/env python3
"""Live face swap: output rate against a bare insightface loop, latency from capture to Blender's image, and the
Blender main-thread time per shown 512x512 frame.

    .venv/bin/python -m scripts.bench.live_face_swap [--seconds 10] [--frames 96] [--json out/live.json]

Everything runs on the same frames (Megamind.avi from frame 1) and the same models: the tiny ONNX models in the
real signatures (``tests/support/tiny_onnx_faces.py``) on the CPU, loaded by insightface's own code. So the numbers
are about the live machinery, not the networks.

1. **Output rate** (goal: live >= 0.9x bare). The camera is the clip re-encoded (MJPG) at 60 fps, a fast
   webcam's rate and more than the bare loop reaches here, so the rate measures inference, not the camera:
   - *bare*: the loop Deep-Live-Cam-style tools run, on one thread: read a frame from the video, SCRFD detection
     on every frame, ``INSwapper.get(..., paste_back=True)`` per face. Also without the reading (frames in memory).
   - *work alone*: the live mode's per-frame work (``LiveFaceSwap.process``) called in this process on frames in
     memory: the live session's rate over it is what the live machinery (capture thread, protocol) costs.
   - *live*: a real daemon (``--manifest`` / ``--models-dir`` on the tiny models) runs a live ``face_swap`` session
     on the file; the rate is the daemon's processed frames per second over ``--seconds`` (its result seq and
     processing time stamps), with the detector on every frame (``detect_every=1``) and with the default reuse
     (``detect_every=5``). The client fetches latest-only as the add-on does. One more run floods the session
     with a 240 fps camera: the capture thread then decodes every frame it drops, which costs inference time.
2. **Blender** (the bpy 5.0 module, ``.venv-bpy50``, started as a subprocess of this script): the extension is
   installed with Blender's installer and connected to the same daemon; its live view runs on a 512x512 version
   of the clip at 24 fps (a camera's rate). The bpy module fires no timers, so the script calls the live view's
   timer at its own interval and times each call. Reported: latency from the camera capturing a frame to the
   image holding it (p50/p95), and the main-thread time of each tick that showed a frame (p50/p99; goal p99 <=
   4 ms); also a bare ``Image.pixels.foreach_set`` of 512x512 into a float and a byte image.

With no GPU and no real weights here, real-weight frame rates are not measured (see docs/live.md).
Prints a table, then the numbers as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.blender.extension import MODULE, connect_daemon, install_extension
from scripts.bench.common import hardware, percentile

REPO_ROOT = common.ROOT
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
BLENDER_PYTHON = REPO_ROOT / ".venv-bpy50" / "bin" / "python"
CAMERA_FPS = 60
"""A fast webcam's rate: above what the tiny models reach in the bare loop here, so the camera is not the limit."""
FLOOD_FPS = 240
BLENDER_SIDE = 512
GOAL_RATIO = 0.9
GOAL_MAIN_P99_MS = 4.0


# -- part 1: the daemon side ------------------------------------------------------------------------------------


def read_clip(count: int) -> list[Any]:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    capture.read()  # frame 0 is black
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr)
    capture.release()
    return frames


def write_video(path: Path, frames: list[Any], fps: float, side: int | None = None) -> Path:
    """The frames as an MJPG AVI at ``fps``; with ``side``, centre-cropped to a square and resized to side x side."""
    import cv2

    if side is not None:
        height, width = frames[0].shape[:2]
        square, left, top = min(height, width), (width - min(height, width)) // 2, (height - min(height, width)) // 2
        frames = [cv2.resize(f[top : top + square, left : left + square], (side, side)) for f in frames]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


class BareSwap:
    """insightface's detector and swapper, used as a bare loop uses them."""

    def __init__(self, models: Path, reference: Path) -> None:
        import cv2
        from insightface.app.common import Face
        from insightface.model_zoo import model_zoo

        from models.face_swap import analysis as face_analysis

        providers = ["CPUExecutionProvider"]
        self.Face = Face
        self.detector = model_zoo.get_model(str(models / face_analysis.DETECTOR_FILE), providers=providers)
        self.detector.prepare(0, input_size=(640, 640), det_thresh=0.5)
        recogniser = model_zoo.get_model(str(models / face_analysis.RECOGNITION_FILE), providers=providers)
        recogniser.prepare(0)
        self.swapper = model_zoo.get_model(str(models / face_analysis.SWAPPER_FILES["fp32"]), providers=providers)
        image = cv2.imread(str(reference))
        faces = self.faces(image)
        self.source = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        recogniser.get(image, self.source)

    def faces(self, bgr: Any) -> list[Any]:
        boxes, kpss = self.detector.detect(bgr, max_num=0)
        return [self.Face(bbox=boxes[i, :4], kps=kpss[i], det_score=boxes[i, 4]) for i in range(boxes.shape[0])]

    def frame(self, bgr: Any) -> Any:
        for face in self.faces(bgr):
            bgr = self.swapper.get(bgr, face, self.source, paste_back=True)
        return bgr


def bare_rate(swap: BareSwap, seconds: float, video: Path | None, frames: list[Any]) -> float:
    """Frames per second of the bare loop, reading ``video`` in the loop (or cycling ``frames`` in memory)."""
    import cv2

    capture = cv2.VideoCapture(str(video)) if video is not None else None
    done, index = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if capture is not None:
            ok, bgr = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
        else:
            bgr, index = frames[index % len(frames)], index + 1
        swap.frame(bgr)
        done += 1
    rate = done / (time.perf_counter() - started)
    if capture is not None:
        capture.release()
    return rate


def frame_swapper_rate(models: Path, reference: Path, frames: list[Any], seconds: float) -> float:
    """Frames per second of the live mode's per-frame work alone: :class:`~models.face_swap.runner.LiveFaceSwap` (the
    offline mode's FrameSwapper) in this process on frames in memory, detector on every frame."""
    import cv2

    from models.media import ImageSequence
    from tests.support.tiny_face_swap import loaded_face_swap_runner

    with loaded_face_swap_runner(models) as runner:
        processor = runner.start_live(runner.validate({"detect_every": 1}), {"reference": ImageSequence([reference])})
        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            processor.process(rgb[done % len(rgb)], time.monotonic())
            done += 1
        return done / (time.perf_counter() - started)


def live_rate(client: Any, video: Path, reference: Path, params: dict[str, Any], seconds: float) -> dict[str, float]:
    """The daemon's output rate of a live face-swap session on ``video``, and the rate results reached us."""
    session = client.live_start(
        "face_swap", {"path": str(video), "loop": True}, params, {"reference": {"path": str(reference)}}
    )
    session_id, seq = session["session_id"], 0
    try:
        deadline = time.monotonic() + 60
        while seq == 0:  # warm up: models loaded, first frames through
            state, result, _ = client.live_next(session_id, after_seq=0, wait_s=1.0)
            if result is not None:
                seq = result["seq"]
            elif state["state"] == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"live face swap did not start: {state}")
        time.sleep(1.0)
        first = last = None
        received = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            _, result, _ = client.live_next(session_id, after_seq=seq, wait_s=1.0)
            if result is None:
                continue
            seq, received = result["seq"], received + 1
            first = first or result
            last = result
        elapsed = time.monotonic() - started
    finally:
        client.live_stop(session_id)
    assert first is not None and last is not None and last is not first
    return {
        "fps": (last["seq"] - first["seq"]) / (last["processed_at"] - first["processed_at"]),
        "received_fps": received / elapsed,
        "process_ms_last": last["process_ms"],
    }


# -- part 2: inside Blender (run by the bpy venv's python) -----------------------------------------------------------


def blender_part(args: argparse.Namespace) -> None:
    """Runs in the bpy venv: the live view on ``args.video`` through the daemon of ``args.connection_file``."""
    work = Path(args.work)
    addon = install_extension(work)
    import bpy
    import numpy as np

    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.connection_file, prefs.output_dir = args.connection_file, str(work / "blender-output")
    connect_daemon(addon)

    # Bulk writes alone, for reference: 512x512 RGBA into a float and into a byte image.
    writes: dict[str, float] = {}
    pixels = np.random.default_rng(0).random(BLENDER_SIDE * BLENDER_SIDE * 4, dtype=np.float32)
    for float_buffer in (True, False):
        image = bpy.data.images.new(
            f"bench-{float_buffer}", BLENDER_SIDE, BLENDER_SIDE, alpha=True, float_buffer=float_buffer
        )
        times = []
        for _ in range(200):
            began = time.perf_counter()
            image.pixels.foreach_set(pixels)
            image.update()
            times.append((time.perf_counter() - began) * 1000.0)
        writes["float" if float_buffer else "byte"] = percentile(times, 0.5)
        bpy.data.images.remove(image)

    scene = bpy.context.scene
    scene.vfx_mocap.reference_source, scene.vfx_mocap.reference_path = "FILE", args.reference
    settings = scene.vfx_mocap_live
    settings.mode, settings.source, settings.video_path = "face_swap", "FILE", args.video
    bpy.ops.vfxmocap.live_view_start()
    view = addon.live.live_view.current()
    while view.shown < 5:  # warm up
        addon.live.live_view.tick()
        time.sleep(addon.live.live_view.TICK_S)
        if not view.running:
            raise RuntimeError(view.error)
    shown_ms: list[float] = []
    idle_ms: list[float] = []
    latencies: list[float] = []
    next_pump = time.monotonic()
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        if time.monotonic() >= next_pump:
            addon.common.pump.tick()
            next_pump += addon.common.pump.INTERVAL_S
        before = view.shown
        began = time.perf_counter()
        addon.live.live_view.tick()
        elapsed = (time.perf_counter() - began) * 1000.0
        if view.shown > before:
            shown_ms.append(elapsed)
            latencies.append(view.latencies_ms[-1])
        else:
            idle_ms.append(elapsed)
        time.sleep(addon.live.live_view.TICK_S)
    numbers = {
        "blender": bpy.app.version_string,
        "frame": f"{view.last_frame.width}x{view.last_frame.height}",
        "shown": len(shown_ms),
        "shown_fps": round(view.shown_fps, 2),
        "daemon_fps": round(view.session.daemon_fps, 2),
        "latency_p50_ms": round(percentile(latencies, 0.5), 1),
        "latency_p95_ms": round(percentile(latencies, 0.95), 1),
        "main_thread_p50_ms": round(percentile(shown_ms, 0.5), 3),
        "main_thread_p99_ms": round(percentile(shown_ms, 0.99), 3),
        "main_thread_max_ms": round(max(shown_ms), 3),
        "idle_tick_p50_ms": round(percentile(idle_ms, 0.5), 4),
        "foreach_set_512_float_ms": round(writes["float"], 3),
        "foreach_set_512_byte_ms": round(writes["byte"], 3),
    }
    bpy.ops.vfxmocap.live_view_stop()
    print(json.dumps(numbers))


# -- driver -------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per rate and for Blender")
    parser.add_argument("--frames", type=int, default=96, help="frames of the clip (from frame 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare/live rounds (medians reported)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--skip-blender", action="store_true", help="only the output rates")
    parser.add_argument("--blender-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connection-file", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blender_part:
        blender_part(args)
        return 0
    if not VIDEO.is_file():
        print(f"{VIDEO} is missing: install the Debian package opencv-doc", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
    import insightface

    from tests.support.tiny_face_swap import running_face_swap_daemon
    from tests.support.tiny_onnx_faces import BUILDERS, install_tiny_models

    reference = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    work = Path(tempfile.mkdtemp(prefix="vfx-live-"))
    numbers: dict[str, Any] = {"hardware": hardware(), "seconds": args.seconds, "frames": args.frames}
    numbers["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    try:
        models = work / "models"
        install_tiny_models(models, tuple(BUILDERS))
        clip = read_clip(args.frames)
        fast = write_video(work / "fast.avi", clip, CAMERA_FPS)
        flood = write_video(work / "flood.avi", clip, FLOOD_FPS)
        square = write_video(work / "square.avi", clip, 24.0, side=BLENDER_SIDE)

        bare = BareSwap(models, reference)
        bare_rate(bare, 1.0, None, clip)  # warm up
        numbers["bare_in_memory_fps"] = bare_rate(bare, args.seconds, None, clip)
        with running_face_swap_daemon(models, work) as daemon:
            runs: dict[str, list[Any]] = {"bare": [], "work": [], "live1": [], "live5": []}
            with daemon.client(timeout=30.0) as client:
                for _ in range(args.rounds):  # interleaved: the machine's other load hits every side alike
                    runs["bare"].append(bare_rate(bare, args.seconds, fast, clip))
                    runs["work"].append(frame_swapper_rate(models, reference, clip, args.seconds))
                    runs["live1"].append(live_rate(client, fast, reference, {"detect_every": 1}, args.seconds))
                    runs["live5"].append(live_rate(client, fast, reference, {}, args.seconds))
                numbers["live_detect_every_1_flood"] = live_rate(
                    client, flood, reference, {"detect_every": 1}, args.seconds
                )
            numbers["bare_fps"] = statistics.median(runs["bare"])
            numbers["bare_runs"] = runs["bare"]
            numbers["frame_swapper_fps"] = statistics.median(runs["work"])
            for key, name in (("live1", "live_detect_every_1"), ("live5", "live_detect_every_5")):
                numbers[name] = {
                    "fps": statistics.median(r["fps"] for r in runs[key]),
                    "runs": [r["fps"] for r in runs[key]],
                    "received_fps": statistics.median(r["received_fps"] for r in runs[key]),
                }
            if not args.skip_blender:
                if not BLENDER_PYTHON.is_file():
                    raise RuntimeError(f"{BLENDER_PYTHON} is missing: run scripts/setup_blender_envs.sh")
                command = [
                    str(BLENDER_PYTHON), "-m", __spec__.name, "--blender-part",
                    "--connection-file", str(daemon.connection_file),
                    "--video", str(square), "--reference", str(reference), "--work", str(work),
                    "--seconds", str(args.seconds),
                ]  # fmt: skip
                env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
                done = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=600, check=False, cwd=REPO_ROOT
                )
                if done.returncode != 0:
                    raise RuntimeError(f"the Blender part failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
                numbers["blender"] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    live1, live5 = numbers["live_detect_every_1"], numbers["live_detect_every_5"]
    numbers["ratio_detect_every_1"] = round(live1["fps"] / numbers["bare_fps"], 3)
    numbers["ratio_detect_every_5"] = round(live5["fps"] / numbers["bare_fps"], 3)
    hw = numbers["hardware"]
    print(f"Live face swap, tiny models on the CPU: {hw['nproc']} CPUs, {hw['cpu']}; {args.seconds:g} s per rate,")
    print(f"medians of {args.rounds} interleaved rounds; load average at start {numbers['load_average_at_start']}")
    print(f"{f'output rate (frames/s), 720x528, camera at {CAMERA_FPS} fps':<62}{'fps':>8}{'x bare':>8}")
    rows = [
        ("bare insightface loop, reading the video", numbers["bare_fps"], 1.0),
        ("bare insightface loop, frames in memory", numbers["bare_in_memory_fps"], None),
        ("live per-frame work alone (LiveFaceSwap in-process, in memory)", numbers["frame_swapper_fps"], None),
        ("live session, detector every frame (detect_every=1)", live1["fps"], numbers["ratio_detect_every_1"]),
        ("live session, detection reuse (detect_every=5, default)", live5["fps"], numbers["ratio_detect_every_5"]),
        (
            f"live session, detect_every=1, camera at {FLOOD_FPS} fps",
            numbers["live_detect_every_1_flood"]["fps"],
            round(numbers["live_detect_every_1_flood"]["fps"] / numbers["bare_fps"], 3),
        ),
    ]
    for name, fps, ratio in rows:
        print(f"{name:<62}{fps:>8.1f}{'' if ratio is None else f'{ratio:.2f}':>8}")
    machinery = live1["fps"] / numbers["frame_swapper_fps"]
    numbers["live_vs_work_alone"] = round(machinery, 3)
    print(f"live session (detect_every=1) / its per-frame work alone: {machinery:.2f}")
    print(
        f"goal: live >= {GOAL_RATIO}x bare -> {'met' if numbers['ratio_detect_every_1'] >= GOAL_RATIO else 'NOT met'}"
    )
    if "blender" in numbers:
        b = numbers["blender"]
        print(f"Blender {b['blender']}, live view of a {b['frame']} camera at 24 fps: {b['shown']} frames shown")
        print(f"  latency capture -> image: p50 {b['latency_p50_ms']} ms, p95 {b['latency_p95_ms']} ms")
        verdict = "met" if b["main_thread_p99_ms"] <= GOAL_MAIN_P99_MS else "NOT met"
        print(f"  main thread per shown frame: p50 {b['main_thread_p50_ms']} ms, p99 {b['main_thread_p99_ms']} ms")
        print(f"  (goal p99 <= {GOAL_MAIN_P99_MS} ms: {verdict}); idle tick p50 {b['idle_tick_p50_ms']} ms")
        writes = f"float image {b['foreach_set_512_float_ms']} ms, byte image {b['foreach_set_512_byte_ms']} ms"
        print(f"  Image.pixels.foreach_set of 512x512 alone: {writes}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=2))
    main_p99 = numbers["blender"]["main_thread_p99_ms"] if "blender" in numbers else None
    common.result_line(
        numbers,
        f"{numbers['ratio_detect_every_1']:.2f}x" + ("" if main_p99 is None else f"; p99 {main_p99} ms"),
        numbers["ratio_detect_every_1"] >= GOAL_RATIO and (main_p99 is None or main_p99 <= GOAL_MAIN_P99_MS),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
