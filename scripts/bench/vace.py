"""VACE timings: the daemon's overhead on the tiny pipeline, or seconds per clip on real weights.

**Tiny mode** (the default): a vace_pose job through a real daemon vs the same pipeline called directly. Both
sides run the tiny Wan VACE pipeline (``tests/support/tiny_wan.py``) on the CPU, on the same inputs: a reference
image, a pose strip already at the output size, the same prompt, steps and seed. The daemon side is timed from
submit to the final state as a client sees it (upload, queue, decoding, prompt encoding, denoising, decoding, PNG
writing, publishing); the direct side is ``WanVACEPipeline.__call__`` plus the conversion to uint8 frames. The
model is loaded before timing on both sides, and the two are run one after the other, never at once, so they do
not share the CPU. The daemon's frames are checked against the direct call's: equal within 1/255 (two processes
may sum floats in another order), so both did the same work. Goal: overhead at most 5 % of the direct time,
comparing the best of ``--repeats`` runs of each (the machine may be busy with other work; the medians are
printed too).

    .venv/bin/python -m scripts.bench.vace [--frames 33] [--size 96] [--steps 10] [--repeats 7]

**Real mode** (``--models-dir``: a models folder where ``fetch-models vace_pose`` or ``vace_pose_14b`` put the
weights): seconds per clip of ``--mode`` jobs through a daemon on ``--device``, by default 81 frames of 832x480
with 30 steps (the ``standard`` preset's steps at Wan's native window). The first job's time includes loading the
pipeline and is reported apart; the others are the warm seconds per clip (best and median of ``--repeats``).

    .venv/bin/python -m scripts.bench.vace --models-dir ~/vfx/models --device cuda [--mode vace_pose_14b]
        [--frames 81] [--width 832 --height 480] [--steps 30] [--repeats 2] [--offload none|model|sequential]
        [--manifest FILE]

**Plans mode** (``--plans``): peak memory and seconds per clip of the Wan VACE 1.3B configuration at 480p
(832x480, by default 17 frames and 2 steps) under each memory plan, on the tiny pipeline (built with the real
model's RoPE span so 832 pixels fit), one plan after the other in one process; the peak is the process's
largest resident memory above what it held when the plan's clip started. ``sequential`` needs an accelerator
(accelerate refuses to offload from the CPU to the CPU) and is reported as not run. On the CPU every plan keeps
the weights in system memory, so the peaks mostly show the activations, and the seconds what each plan's hooks
cost; the GPU figures are the estimates of ``models/vace/memory.py`` (docs/vace.md) until a GPU run exists.

    .venv/bin/python scripts/bench_vace.py --plans [--frames 17] [--steps 2]

Prints a table, then one JSON line with the numbers, and exits 0 whatever they are (the verdict is printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.vace.runner import PROMPT_TOKENS, WAN_VACE_1_3B
from scripts.bench import common
from tests.support.daemon_process import DaemonProcess
from tests.support.tiny_wan import build_tiny_wan_vace, write_tiny_manifest

GOAL_OVERHEAD = 0.05
PLANS = {
    "none": {"offload": "none", "fp8_weights": "off"},
    "model": {"offload": "model", "fp8_weights": "off"},
    "group": {"offload": "group", "fp8_weights": "off"},
    "none+fp8": {"offload": "none", "fp8_weights": "on"},
    "sequential": {"offload": "sequential", "fp8_weights": "off"},
}
"""The memory plans the plans mode measures, as job parameters."""

PROMPT = "a red robot waves at the camera"
NEGATIVE = "blurry low quality"


def pose_strip(count: int, width: int, height: int) -> np.ndarray:
    """A stick figure waving, drawn with the pose mode's renderer, already at the output size."""
    from models.skeleton import draw_openpose

    frames = []
    scale = np.array([width / 64, height / 64], dtype=np.float32)
    for i in range(count):
        keypoints = np.full((18, 2), np.nan, dtype=np.float32)
        keypoints[:9] = [[32, 8], [32, 14], [26, 14], [22, 22], [18, 14], [38, 14], [42, 22], [44, 30], [28, 30]]
        keypoints[4, 1] = 14 + 8 * np.sin(i / 3)
        keypoints[9:14] = [[28, 38], [28, 46], [36, 30], [36, 38], [36, 46]]
        frames.append(draw_openpose(np.zeros((height, width, 3), np.uint8), keypoints * scale))
    return np.stack(frames)


def reference_image(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient: a deterministic, real-looking image without a file."""
    y, x = np.mgrid[0:height, 0:width] / np.array([max(height - 1, 1), max(width - 1, 1)])[:, None, None]
    return (np.stack([x, y, 1 - x * y], axis=-1) * 255).astype(np.uint8)


def run_daemon(client, args, pose, reference, index: int) -> tuple[float, np.ndarray, dict]:
    """One job: (seconds from submit to its final state, its frames, its summary)."""
    import cv2

    params = {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "steps": args.steps,
        "width": args.width,
        "height": args.height,
        "seed": 7,
        "window_frames": args.frames,
        "chunk_overlap": 1,  # one window: nothing overlaps, and short test clips stay valid
        "offload": args.offload,
    }
    started = time.perf_counter()
    client.submit(f"bench-{index}", args.mode, params, {"reference": reference, "pose": pose})
    job = client.wait(f"bench-{index}", timeout=3600)
    elapsed = time.perf_counter() - started
    if job["state"] != "succeeded":
        raise SystemExit(f"daemon job failed: {job['error']}")
    paths = sorted(Path(job["output_dir"], "frames").glob("*.png"))
    summary, _ = client.result(f"bench-{index}")
    return elapsed, np.stack([cv2.imread(str(p))[..., ::-1] for p in paths]), summary


def run_direct(pipe, args, pose, reference) -> tuple[float, np.ndarray]:
    import torch
    from PIL import Image

    started = time.perf_counter()
    output = pipe(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        video=[Image.fromarray(f) for f in pose],
        mask=[Image.new("L", (args.width, args.height), 255)] * len(pose),
        reference_images=[Image.fromarray(reference)],
        height=args.height,
        width=args.width,
        num_frames=len(pose),
        num_inference_steps=args.steps,
        guidance_scale=5.0,
        generator=torch.Generator(device="cpu").manual_seed(7),
        output_type="np",
        max_sequence_length=PROMPT_TOKENS,
    )
    frames = np.clip(np.rint(output.frames[0] * 255.0), 0, 255).astype(np.uint8)
    return time.perf_counter() - started, frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="real mode: a models folder with the weights")
    parser.add_argument(
        "--device", default=None, choices=("auto", "cuda", "mps", "cpu"), help="real mode (cpu in tiny)"
    )
    parser.add_argument("--manifest", type=Path, default=None, help="real mode: another manifest, as serve takes")
    parser.add_argument("--mode", default="vace_pose", choices=("vace_pose", "vace_pose_14b"), help="real mode")
    parser.add_argument("--offload", default="none", choices=("none", "model", "sequential"), help="real mode")
    parser.add_argument("--frames", type=int, default=None, help="pose frames, 4k+1: one window (33; real 81)")
    parser.add_argument("--size", type=int, default=96, help="tiny mode: output width and height, a multiple of 16")
    parser.add_argument("--width", type=int, default=None, help="output width, a multiple of 16 (real: 832)")
    parser.add_argument("--height", type=int, default=None, help="output height, a multiple of 16 (real: 480)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (10; real 30)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs after the first (7; real 2)")
    parser.add_argument("--plans", action="store_true", help="peak memory and seconds per memory plan (tiny, CPU)")
    args = parser.parse_args()
    if args.plans:
        args.frames, args.steps = args.frames or 17, args.steps or 2
        return memory_plans(args)
    real = args.models_dir is not None
    args.frames = args.frames or (81 if real else 33)
    args.width = args.width or (832 if real else args.size)
    args.height = args.height or (480 if real else args.size)
    args.steps = args.steps or (30 if real else 10)
    args.repeats = args.repeats or (2 if real else 7)
    args.device = args.device or ("auto" if real else "cpu")
    if real:
        return real_weights(args)
    if args.mode != "vace_pose" or args.device != "cpu" or args.offload != "none" or args.manifest:
        parser.error("--mode, --device, --offload and --manifest are for real mode (with --models-dir)")
    return tiny_overhead(args)


def real_weights(args) -> int:
    """Seconds per clip of ``args.mode`` on the fetched weights in ``args.models_dir``, through a daemon."""
    from daemon.registry import ModelRegistry
    from models.catalog import BUILTIN_RUNNERS, import_runner
    from models.manifest import MANIFEST_PATH, load_manifest

    models_dir = args.models_dir.expanduser().resolve()
    manifest = (args.manifest or MANIFEST_PATH).expanduser().resolve()
    registry = ModelRegistry(
        {args.mode: import_runner(BUILTIN_RUNNERS[args.mode])},
        device=lambda: None,
        manifest=load_manifest(manifest),
        models_dir=models_dir,
    )
    state = registry.readiness(args.mode)
    if not state["ready"]:
        print(f"{args.mode} is not ready in {models_dir}: {'; '.join(state['missing'])}", file=sys.stderr)
        print(f"fix: {'; '.join(state['fix'])}", file=sys.stderr)
        return 2
    pose, reference = pose_strip(args.frames, args.width, args.height), reference_image(args.width, args.height)
    with tempfile.TemporaryDirectory(prefix="vfx-bench-") as tmp:
        daemon = DaemonProcess(
            base=Path(tmp),
            extra_args=("--manifest", str(manifest), "--models-dir", str(models_dir), "--device", args.device),
            plugin=False,
        ).start(timeout=120)
        try:
            with daemon.client(timeout=120.0) as client:
                cold, _, summary = run_daemon(client, args, pose, reference, 0)  # loads the pipeline
                device = client.health().get("device") or {}
                warm = [run_daemon(client, args, pose, reference, i)[0] for i in range(1, args.repeats + 1)]
        finally:
            daemon.cleanup()
    workload = f"{args.frames} frames of {args.width}x{args.height}, {args.steps} steps, {args.mode}"
    print(f"workload: {workload}, offload={summary['offload']}, {summary['device']} {summary['dtype']}")
    print(f"device: {device.get('name', '?')}, {(device.get('total_memory') or 0) / 2**30:.0f} GiB")
    print(f"first job (pipeline load included) {cold:9.1f} s")
    runs = ", ".join(f"{t:.1f}" for t in warm)
    print(f"seconds per clip                  best {min(warm):.1f} s  median {statistics.median(warm):.1f} s  ({runs})")
    print(f"seconds per denoising step        {min(warm) / args.steps:.2f} s (best clip / steps, decoding included)")
    common.result_line(
        {
            "benchmark": "vace_real",
            "mode": args.mode,
            "frames": args.frames,
            "width": args.width,
            "height": args.height,
            "steps": args.steps,
            "offload": summary["offload"],
            "device": summary["device"],
            "device_name": device.get("name"),
            "dtype": summary["dtype"],
            "first_job_s": round(cold, 2),
            "clip_s": [round(t, 2) for t in warm],
            "best_clip_s": round(min(warm), 2),
            "median_clip_s": round(statistics.median(warm), 2),
        },
        f"{min(warm):.1f} s a clip",
        None,
    )
    return 0


def tiny_overhead(args) -> int:
    """The daemon's overhead on the tiny pipeline on the CPU (see the module docstring)."""
    import torch
    from diffusers import AutoencoderKLWan, WanVACEPipeline

    with tempfile.TemporaryDirectory(prefix="vfx-bench-") as tmp:
        base = Path(tmp)
        models_dir = base / "models"
        folder = build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder)
        manifest = base / "manifest.toml"
        write_tiny_manifest(manifest, models_dir)
        pose, reference = pose_strip(args.frames, args.width, args.height), reference_image(args.width, args.height)

        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
        pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        run_direct(pipe, args, pose, reference)  # warm-up: first-call allocations

        (base / "d").mkdir()
        daemon = DaemonProcess(
            base=base / "d",
            extra_args=("--manifest", str(manifest), "--models-dir", str(models_dir), "--device", "cpu"),
            plugin=False,
        ).start(timeout=60)
        try:
            with daemon.client(timeout=60.0) as client:
                run_daemon(client, args, pose, reference, 0)  # warm-up: loads the pipeline in the daemon
                daemon_times, direct_times = [], []
                largest_difference = 0
                for i in range(1, args.repeats + 1):
                    elapsed, daemon_frames, _ = run_daemon(client, args, pose, reference, i)
                    daemon_times.append(elapsed)
                    elapsed, direct_frames = run_direct(pipe, args, pose, reference)
                    direct_times.append(elapsed)
                    largest_difference = max(
                        largest_difference, int(np.abs(daemon_frames.astype(int) - direct_frames).max())
                    )
                    if daemon_frames.shape != direct_frames.shape or largest_difference > 1:
                        raise SystemExit(f"the daemon's frames differ from the direct call's by {largest_difference}")
        finally:
            daemon.cleanup()

    # The best of several runs is the estimate least disturbed by other work on the machine; medians shown too.
    daemon_s, direct_s = min(daemon_times), min(direct_times)
    overhead = (daemon_s - direct_s) / direct_s
    print(f"workload: {args.frames} frames of {args.width}x{args.height}, {args.steps} steps, tiny Wan VACE, CPU")
    for label, times in (("direct pipeline call", direct_times), ("daemon job", daemon_times)):
        runs = ", ".join(f"{t:.3f}" for t in times)
        print(f"{label:<21} best {min(times):7.3f} s  median {statistics.median(times):7.3f} s  ({runs})")
    print(f"overhead: {(daemon_s - direct_s) * 1000:.1f} ms = {overhead:+.1%} (goal <= 5%)")
    print(f"frames: same shape, pixel values within {largest_difference}/255 of the direct call's")
    common.result_line(
        {
            "benchmark": "vace_tiny_overhead",
            "frames": args.frames,
            "width": args.width,
            "height": args.height,
            "steps": args.steps,
            "direct_s": [round(t, 4) for t in direct_times],
            "daemon_s": [round(t, 4) for t in daemon_times],
            "overhead_best": round(overhead, 4),
            "largest_pixel_difference": largest_difference,
        },
        f"{overhead:+.1%}",
        overhead <= GOAL_OVERHEAD,
    )
    return 0


def memory_plans(args) -> int:
    """Seconds per clip and peak memory of each plan, one after the other in this process (see the docstring)."""
    import gc

    from daemon.devices import resolve_device
    from models.media import FrameArray
    from models.vace.pose import VacePoseRunner

    width, height = 832, 480
    inputs = {
        "reference": FrameArray(reference_image(width, height)[None]),
        "pose": FrameArray(pose_strip(args.frames, width, height)),
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="vfx-bench-") as tmp:
        models_dir = Path(tmp) / "models"
        build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder, rope_max_seq_len=1024)  # the real model's RoPE span
        runner = VacePoseRunner()
        runner.models_dir = models_dir
        runner.load(resolve_device("cpu"))
        for plan, choice in PLANS.items():
            params = runner.validate(
                {"prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": args.steps, "width": width, "height": height}
                | {"seed": 7, "window_frames": args.frames, "chunk_overlap": 1, **choice}
            )
            gc.collect()
            with PeakMemory() as memory, tempfile.TemporaryDirectory(prefix="vfx-bench-plan-") as out:
                started = time.perf_counter()
                try:
                    runner.run(inputs, params, common.QuietContext(Path(out), None))
                except Exception as error:  # a plan this machine cannot run is a result too
                    results.append({"plan": plan, "error": f"{type(error).__name__}: {str(error).splitlines()[0]}"})
                    continue
                seconds = time.perf_counter() - started
            results.append({"plan": plan, "seconds": round(seconds, 2), "peak_above_start_mib": memory.peak_mib})
        runner.unload()
    print(
        f"workload: vace_pose, 1.3B layout (tiny weights), {args.frames} frames of {width}x{height}, "
        f"{args.steps} steps, CPU"
    )
    for item in results:
        if "error" in item:
            print(f"{item['plan']:<11} not run here: {item['error'][:150]}")
        else:
            print(
                f"{item['plan']:<11} {item['seconds']:7.2f} s per clip   peak +{item['peak_above_start_mib']:6.0f} MiB"
            )
    ran = [item for item in results if "error" not in item]
    headline = ", ".join(f"{item['plan']} {item['seconds']} s +{item['peak_above_start_mib']:.0f} MiB" for item in ran)
    common.result_line(
        {"benchmark": "vace_memory_plans", "frames": args.frames, "steps": args.steps, "plans": results},
        headline or "no plan ran",
        None,
    )
    return 0


class PeakMemory:
    """The largest resident memory of this process above what it held on entry, in MiB, sampled every 2 ms
    from /proc/self/statm (Linux) on a background thread."""

    def __enter__(self) -> PeakMemory:
        import os
        import threading

        self._page = os.sysconf("SC_PAGE_SIZE")
        self._start = self._resident()
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return round((self._peak - self._start) / 2**20, 1)

    def _resident(self) -> int:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * self._page

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._resident())


if __name__ == "__main__":
    raise SystemExit(main())
