#!/usr/bin/env python3
"""LivePortrait per-module benchmark: our networks, one 256x256 frame at a time, against the paper's RTX 4090.

Each network runs on the inputs it gets per frame in the animation (batch 1): the appearance extractor and the
motion extractor on a 256x256 crop, the warping module on the 32x16x64x64 volume and 21 keypoints, the SPADE
generator on the 256x64x64 warped features, and the stitching network with the eye and lip retargeting networks
on keypoints. "frame" is what one driving frame costs once the source is prepared: motion extractor, keypoint
maths, stitching, warping and generator (what the live mode pays per frame).

Weights: the official files when ``--weights`` names a folder holding them (``<models>/liveportrait``);
otherwise random weights at the official shapes (the speed does not depend on the values). Times are medians
and minima of ``--repeats`` rounds after ``--warmup`` calls; in each round every module runs once, in turn,
synchronising the device around each call, so all modules see the same conditions. On a machine shared with
other work the minimum is the better estimate of the uncontended time.

The published per-frame times (LivePortrait paper, RTX 4090): appearance 0.82 ms,
motion 0.84 ms, warping 5.21 ms, SPADE 7.59 ms, stitching and retargeting 0.31 ms.

Usage: ``.venv/bin/python -m scripts.bench.liveportrait [--device cpu|cuda|mps] [--half] [--compile]
[--repeats N] [--warmup N] [--weights DIR] [--quick]``. Prints a table, then one JSON line with the numbers as
its last line. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.liveportrait.keypoints import Motion, relative_keypoints
from models.liveportrait.loader import LivePortraitModels, load_liveportrait
from scripts.bench import common

PUBLISHED_RTX4090_MS = {
    "appearance": 0.82,
    "motion": 0.84,
    "warping": 5.21,
    "spade": 7.59,
    "stitching": 0.31,
}
PUBLISHED_NOTE = "LivePortrait paper (arXiv 2407.03168), RTX 4090, per frame"


def hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        **common.hardware(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed_round_robin(
    runs: dict[str, Callable[[], Any]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each run. After ``warmup`` untimed calls each, the runs take turns, one call each per
    round, for ``repeats`` rounds: on a machine shared with other work, every module sees the same conditions."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - started)
        print(f"  round {round_index + 1}/{repeats} done", file=sys.stderr, flush=True)
    return times


def benchmark(models: LivePortraitModels, warmup: int, repeats: int) -> dict[str, list[float]]:
    device, dtype = models.device, models.dtype
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, 256, 256, generator=generator).to(device, dtype)
    driving = torch.rand(1, 3, 256, 256, generator=generator).to(device, dtype)
    with torch.inference_mode():
        feature = models.appearance_feature_extractor(source)
        motion_s = Motion.from_extractor(models.motion_extractor(source))
        motion_d = Motion.from_extractor(models.motion_extractor(driving))
        x_s, x_d = motion_s.keypoints(), motion_d.keypoints()
        warped = models.warping_module(feature, kp_driving=x_d.to(dtype), kp_source=x_s.to(dtype))["out"]
    x_s_h, x_d_h = x_s.to(dtype), x_d.to(dtype)
    eyes = torch.tensor([[0.3, 0.3, 0.2]], device=device, dtype=dtype)
    lip = torch.tensor([[0.1, 0.0]], device=device, dtype=dtype)

    def stitching() -> None:
        network = models.stitching_retargeting
        network.stitch(x_s_h, x_d_h)
        network.eye_delta(x_s_h, eyes)
        network.lip_delta(x_s_h, lip)

    def frame() -> None:
        motion = Motion.from_extractor(models.motion_extractor(driving))
        driven = relative_keypoints(motion_s, motion_d, motion)
        driven = models.stitching_retargeting.stitch(x_s_h, driven.to(dtype))
        out = models.warping_module(feature, kp_driving=driven, kp_source=x_s_h)["out"]
        models.spade_generator(out)

    runs: dict[str, Callable[[], Any]] = {
        "appearance": lambda: models.appearance_feature_extractor(source),
        "motion": lambda: models.motion_extractor(driving),
        "warping": lambda: models.warping_module(feature, kp_driving=x_d_h, kp_source=x_s_h),
        "spade": lambda: models.spade_generator(warped),
        "stitching": stitching,
        "frame": frame,
    }
    with torch.inference_mode():
        return timed_round_robin(runs, device, warmup, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    parser.add_argument("--half", action="store_true", help="fp16 (CUDA and MPS only)")
    parser.add_argument("--compile", action="store_true", help="torch.compile warping and generator (CUDA)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--weights", type=Path, default=None, help="folder with the official files")
    parser.add_argument("--quick", action="store_true", help="1 warm-up, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.repeats = 1, 2
    device = torch.device(args.device)
    dtype = torch.float16 if args.half and device.type != "cpu" else torch.float32

    with tempfile.TemporaryDirectory(prefix="lp-bench-") as scratch:
        weights = args.weights
        if weights is None:
            from tests.support.liveportrait_weights import write_liveportrait_weights

            weights = Path(scratch)
            write_liveportrait_weights(weights)
        models = load_liveportrait(weights, device, dtype, compile=args.compile)
        kind = "official" if args.weights else "random"
        print(f"benchmarking on {device} ({dtype}), {kind} weights", file=sys.stderr)
        results = benchmark(models, args.warmup, args.repeats)

    medians = {name: statistics.median(times) * 1000 for name, times in results.items()}
    minima = {name: min(times) * 1000 for name, times in results.items()}
    print()
    print(f"{'module':<12} {'median ms':>10} {'min ms':>10} {'fps (min)':>10} {'RTX 4090 ms':>12} {'min / 4090':>11}")
    for name, ms in medians.items():
        published = PUBLISHED_RTX4090_MS.get(name)
        if name == "frame":
            published = sum(PUBLISHED_RTX4090_MS[n] for n in ("motion", "warping", "spade", "stitching"))
        best = minima[name]
        print(f"{name:<12} {ms:10.2f} {best:10.2f} {1000 / best:10.2f} {published:12.2f} {best / published:11.1f}")
    print(f"(RTX 4090: {PUBLISHED_NOTE}; frame = motion + warping + SPADE + stitching. On a shared machine the")
    print(" minimum is the better estimate of the uncontended time.)")
    summary = {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "compiled": models.compiled,
        "weights": "official" if args.weights else "random",
        "grid_sample_fallback": models.grid_sample_fallback,
        "median_ms": {k: round(v, 3) for k, v in medians.items()},
        "min_ms": {k: round(v, 3) for k, v in minima.items()},
        "fps_from_min": {k: round(1000 / v, 3) for k, v in minima.items()},
        "published_rtx4090_ms": PUBLISHED_RTX4090_MS,
        "repeats": args.repeats,
        "hardware": hardware(device),
    }
    frame_ms = minima["frame"]
    common.result_line(summary, f"{frame_ms / 1000:.2f} s a frame ({device})", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
