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

With ``--official <clone of KwaiVGI/LivePortrait>`` (or ``$LIVEPORTRAIT_OFFICIAL``) the official networks, given
the same weight files and inputs, take turns with ours; the ratio ours / official per frame is the goal (<= 0.9),
reported as the median and for each round.

Usage: ``.venv/bin/python -m scripts.bench.liveportrait [--device cpu|cuda|mps] [--half] [--compile]
[--repeats N] [--warmup N] [--weights DIR] [--quick] [--only frame] [--official DIR]``. Prints a table, then one
JSON line with the numbers as its last line. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.liveportrait.blocks import DownBlock3d, UpBlock3d
from models.liveportrait.keypoints import Motion, relative_keypoints
from models.liveportrait.loader import NETWORK_FILES, LivePortraitModels, load_liveportrait
from scripts.bench import common

PUBLISHED_RTX4090_MS = {
    "appearance": 0.82,
    "motion": 0.84,
    "warping": 5.21,
    "spade": 7.59,
    "stitching": 0.31,
}
GOAL_VS_OFFICIAL = 0.9
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


OFFICIAL_PARAMS = {  # src/config/models.yaml of the official repository
    "appearance_feature_extractor": {
        "image_channel": 3, "block_expansion": 64, "num_down_blocks": 2, "max_features": 512,
        "reshape_channel": 32, "reshape_depth": 16, "num_resblocks": 6,
    },
    "motion_extractor": {"num_kp": 21, "backbone": "convnextv2_tiny"},
    "warping_module": {
        "num_kp": 21, "block_expansion": 64, "max_features": 512, "num_down_blocks": 2, "reshape_channel": 32,
        "estimate_occlusion_map": True,
        "dense_motion_params": {
            "block_expansion": 32, "max_features": 1024, "num_blocks": 5, "reshape_depth": 16, "compress": 4,
        },
    },
    "spade_generator": {"upscale": 2, "block_expansion": 64, "max_features": 512, "num_down_blocks": 2},
}  # fmt: skip


def load_official(checkout: Path, weights: Path, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The official networks (``checkout``: a clone of KwaiVGI/LivePortrait) with the same weight files, loaded
    as the official ``load_model`` does; imported as the package ``liveportrait_official`` from its
    ``src/modules`` folder (nothing of it is copied here)."""
    import importlib
    import importlib.util

    modules = checkout / "src" / "modules"
    spec = importlib.util.spec_from_file_location(
        "liveportrait_official", modules / "__init__.py", submodule_search_locations=[str(modules)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"{modules} is not the official LivePortrait source: clone KwaiVGI/LivePortrait there")
    package = importlib.util.module_from_spec(spec)
    sys.modules["liveportrait_official"] = package
    spec.loader.exec_module(package)
    classes = {
        "appearance_feature_extractor": ("appearance_feature_extractor", "AppearanceFeatureExtractor"),
        "motion_extractor": ("motion_extractor", "MotionExtractor"),
        "warping_module": ("warping_network", "WarpingNetwork"),
        "spade_generator": ("spade_generator", "SPADEDecoder"),
    }
    networks: dict[str, Any] = {}
    for name, (module, cls) in classes.items():
        network = getattr(importlib.import_module(f"liveportrait_official.{module}"), cls)(**OFFICIAL_PARAMS[name])
        state = torch.load(weights / NETWORK_FILES[name], map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=name != "motion_extractor")  # as the official load_model does
        networks[name] = network.eval().requires_grad_(False).to(device=device, dtype=dtype)
    return networks


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
        load = os.getloadavg()[0]
        print(f"  round {round_index + 1}/{repeats} done (load average {load:.2f})", file=sys.stderr, flush=True)
    return times


def benchmark(
    models: LivePortraitModels,
    warmup: int,
    repeats: int,
    official: dict[str, Any] | None = None,
    only: set[str] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each network and of a whole frame (see :func:`timed_round_robin`); with ``official``,
    of the official networks too, and of our warping module with 3D pooling and upsampling run slice by slice
    (the fallback). ``only``: the names to time (``warping``, ``frame``...), each with its counterparts."""
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

    resampling_blocks = [m for m in models.warping_module.modules() if isinstance(m, DownBlock3d | UpBlock3d)]

    def warping_per_slice() -> None:
        native = [block.native_3d for block in resampling_blocks]
        for block in resampling_blocks:
            block.native_3d = False
        try:
            models.warping_module(feature, kp_driving=x_d_h, kp_source=x_s_h)
        finally:
            for block, flag in zip(resampling_blocks, native, strict=True):
                block.native_3d = flag

    runs: dict[str, Callable[[], Any]] = {
        "appearance": lambda: models.appearance_feature_extractor(source),
        "motion": lambda: models.motion_extractor(driving),
        "warping": lambda: models.warping_module(feature, kp_driving=x_d_h, kp_source=x_s_h),
        "warping per slice": warping_per_slice,
        "spade": lambda: models.spade_generator(warped),
        "stitching": stitching,
        "frame": frame,
    }
    if official is not None:  # the same inputs through the official networks, taking turns with ours
        feature_o = official["appearance_feature_extractor"](source)
        warped_o = official["warping_module"](feature_o, kp_driving=x_d_h, kp_source=x_s_h)["out"]
        if not torch.allclose(warped_o, warped, atol=1e-4, rtol=1e-4):
            raise SystemExit("the official warping module and ours disagree on the same weights and inputs")
        image_o, image = official["spade_generator"](warped_o), models.spade_generator(warped)
        if not torch.allclose(image_o, image, atol=1e-4, rtol=1e-4):
            raise SystemExit("the official generator and ours disagree on the same weights and inputs")
        print(
            f"ours vs official, same weights and inputs: warped features within "
            f"{(warped_o - warped).abs().max().item():.1e}, images within {(image_o - image).abs().max().item():.1e}",
            file=sys.stderr,
        )

        def official_frame() -> None:
            motion = Motion.from_extractor(official["motion_extractor"](driving))
            driven = relative_keypoints(motion_s, motion_d, motion)
            driven = models.stitching_retargeting.stitch(x_s_h, driven.to(dtype))
            out = official["warping_module"](feature_o, kp_driving=driven, kp_source=x_s_h)["out"]
            official["spade_generator"](out)

        runs |= {
            "official appearance": lambda: official["appearance_feature_extractor"](source),
            "official motion": lambda: official["motion_extractor"](driving),
            "official warping": lambda: official["warping_module"](feature_o, kp_driving=x_d_h, kp_source=x_s_h),
            "official spade": lambda: official["spade_generator"](warped_o),
            "official frame": official_frame,
        }
    if only:
        runs = {name: run for name, run in runs.items() if name.removeprefix("official ").split(" ")[0] in only}
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
    parser.add_argument("--only", default="", help="comma-separated networks to time, e.g. warping,frame")
    parser.add_argument(
        "--official",
        type=Path,
        default=os.environ.get("LIVEPORTRAIT_OFFICIAL") or None,
        help="a clone of KwaiVGI/LivePortrait: its networks, with the same weights, take turns with ours "
        "(default: $LIVEPORTRAIT_OFFICIAL, if set)",
    )
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
        official = load_official(args.official, weights, device, dtype) if args.official else None
        only = {name.strip() for name in args.only.split(",") if name.strip()}
        results = benchmark(models, args.warmup, args.repeats, official, only)

    medians = {name: statistics.median(times) * 1000 for name, times in results.items()}
    minima = {name: min(times) * 1000 for name, times in results.items()}
    print()
    print(f"{'module':<12} {'median ms':>10} {'min ms':>10} {'fps (min)':>10} {'RTX 4090 ms':>12} {'min / 4090':>11}")
    for name, ms in medians.items():
        if name.startswith("official") or name not in PUBLISHED_RTX4090_MS | {"frame": 0}:
            continue
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
    frame_ms = minima.get("frame", float("nan"))
    if args.official is None:
        common.result_line(summary, f"{frame_ms / 1000:.2f} s a frame ({device})", None)
        return 0
    print()
    print(f"{'ours / official':<16} {'median':>8} {'min':>8}   (goal for the frame: <= {GOAL_VS_OFFICIAL}; a round's")
    print(" ratio compares the two calls made one after the other in that round)")
    ratios = {}
    for name in ("appearance", "motion", "warping", "warping per slice", "spade", "frame"):
        official_name = f"official {name.split(' ')[0]}"
        if name not in medians or official_name not in medians:
            continue
        per_round = [ours / theirs for ours, theirs in zip(results[name], results[official_name], strict=True)]
        ratios[name] = {
            "median": round(medians[name] / medians[official_name], 3),
            "min": round(minima[name] / minima[official_name], 3),
            "per_round": [round(ratio, 3) for ratio in per_round],
        }
        rounds = " ".join(f"{ratio:.2f}" for ratio in per_round)
        print(f"{name:<16} {ratios[name]['median']:8.3f} {ratios[name]['min']:8.3f}   per round: {rounds}")
    summary["ratio_vs_official"] = ratios
    if "frame" not in ratios:
        parts = ", ".join(f"{name} {ratio['median']:.2f}x" for name, ratio in ratios.items())
        common.result_line(summary, f"{parts} the official code ({device})", None)
        return 0
    frame_ratio = ratios["frame"]["median"]
    headline = f"{frame_ratio:.2f}x the official code a frame ({frame_ms / 1000:.2f} s, {device})"
    common.result_line(summary, headline, frame_ratio <= GOAL_VS_OFFICIAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
