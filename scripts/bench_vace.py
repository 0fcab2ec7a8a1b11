"""Daemon overhead of a VACE job: a vace_pose job through a real daemon vs the same pipeline called directly.

Both sides run the tiny Wan VACE pipeline (``tests/support/tiny_wan.py``) on the CPU, on the same inputs: a
reference image, a pose strip already at the output size, the same prompt, steps and seed. The daemon side
is timed from submit to the final state as a client sees it (upload, queue, decoding, prompt encoding,
denoising, decoding, PNG writing, publishing); the direct side is ``WanVACEPipeline.__call__`` plus the
conversion to uint8 frames. The model is loaded before timing on both sides, and the two are run one after
the other, never at once, so they do not share the CPU. The daemon's frames are checked against the direct
call's: equal within 1/255 (two processes may sum floats in another order), so both did the same work.

    .venv/bin/python scripts/bench_vace.py [--frames 33] [--size 96] [--steps 10] [--repeats 7]

Goal: overhead at most 5 % of the direct time, comparing the best of ``--repeats`` runs of each (the machine
may be busy with other work; the medians are printed too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "support")]

from support.daemon_process import DaemonProcess  # noqa: E402
from support.tiny_wan import build_tiny_wan_vace, write_tiny_manifest  # noqa: E402

from models.vace import PROMPT_TOKENS, WAN_VACE_1_3B  # noqa: E402

PROMPT = "a red robot waves at the camera"
NEGATIVE = "blurry low quality"


def pose_strip(count: int, size: int) -> np.ndarray:
    """A stick figure waving, drawn with the pose mode's renderer, already at the output size."""
    from models.skeleton import draw_openpose

    frames = []
    scale = size / 64
    for i in range(count):
        keypoints = np.full((18, 2), np.nan, dtype=np.float32)
        keypoints[:9] = [[32, 8], [32, 14], [26, 14], [22, 22], [18, 14], [38, 14], [42, 22], [44, 30], [28, 30]]
        keypoints[4, 1] = 14 + 8 * np.sin(i / 3)
        keypoints[9:14] = [[28, 38], [28, 46], [36, 30], [36, 38], [36, 46]]
        frames.append(draw_openpose(np.zeros((size, size, 3), np.uint8), keypoints * scale))
    return np.stack(frames)


def reference_image(size: int) -> np.ndarray:
    """A smooth colour gradient: a deterministic, real-looking image without a file."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    return (np.stack([x, y, 1 - x * y], axis=-1) * 255).astype(np.uint8)


def run_daemon(client, args, pose, reference, index: int) -> tuple[float, np.ndarray]:
    import cv2

    params = {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "steps": args.steps,
        "width": args.size,
        "height": args.size,
        "seed": 7,
        "window_frames": args.frames,
    }
    started = time.perf_counter()
    client.submit(f"bench-{index}", "vace_pose", params, {"reference": reference, "pose": pose})
    job = client.wait(f"bench-{index}", timeout=600)
    elapsed = time.perf_counter() - started
    if job["state"] != "succeeded":
        raise SystemExit(f"daemon job failed: {job['error']}")
    paths = sorted(Path(job["output_dir"], "frames").glob("*.png"))
    return elapsed, np.stack([cv2.imread(str(p))[..., ::-1] for p in paths])


def run_direct(pipe, args, pose, reference) -> tuple[float, np.ndarray]:
    import torch
    from PIL import Image

    started = time.perf_counter()
    output = pipe(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        video=[Image.fromarray(f) for f in pose],
        mask=[Image.new("L", (args.size, args.size), 255)] * len(pose),
        reference_images=[Image.fromarray(reference)],
        height=args.size,
        width=args.size,
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
    parser.add_argument("--frames", type=int, default=33, help="pose frames (4k+1: one window)")
    parser.add_argument("--size", type=int, default=96, help="output width and height, a multiple of 16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import torch
    from diffusers import AutoencoderKLWan, WanVACEPipeline

    with tempfile.TemporaryDirectory(prefix="vfx-bench-") as tmp:
        base = Path(tmp)
        models_dir = base / "models"
        folder = build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder)
        manifest = base / "manifest.toml"
        write_tiny_manifest(manifest, models_dir)
        pose, reference = pose_strip(args.frames, args.size), reference_image(args.size)

        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
        pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, torch_dtype=torch.float32)
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
                    elapsed, daemon_frames = run_daemon(client, args, pose, reference, i)
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
    print(f"workload: {args.frames} frames of {args.size}x{args.size}, {args.steps} steps, tiny Wan VACE, CPU")
    for label, times in (("direct pipeline call", direct_times), ("daemon job", daemon_times)):
        runs = ", ".join(f"{t:.3f}" for t in times)
        print(f"{label:<21} best {min(times):7.3f} s  median {statistics.median(times):7.3f} s  ({runs})")
    print(f"overhead: {(daemon_s - direct_s) * 1000:.1f} ms = {overhead:+.1%} (goal <= 5%)")
    print(f"frames: same shape, pixel values within {largest_difference}/255 of the direct call's")
    return 0 if overhead <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
