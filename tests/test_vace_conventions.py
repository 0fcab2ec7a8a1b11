"""Wan 2.1 VACE as it was trained and on the GPU it runs on: what the pipeline receives, the memory plan.

The runner drives the tiny pipeline of ``support/tiny_wan.py`` (the official layout and scheduler) on the CPU.
:class:`RecordingPipeline` stands between the runner and that real pipeline: it keeps the arguments of every
call and the scheduler in force, and runs the real pipeline with them, so what is checked is what the model
got. The memory plan is checked on the numbers of real cards (free memory as those cards report it), and the
tiny pipeline runs under each plan that works on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.run_context import RecordingContext
from support.tiny_wan import build_tiny_wan_vace

from daemon.devices import resolve_device
from models.media import FrameArray
from models.runner import InvalidInput
from models.skeleton import draw_openpose
from models.vace.memory import GB, MODEL_SIZES, choose_plan, peak_gb
from models.vace.pipeline import LoadedPipeline, _load_pipeline, place
from models.vace.pose import VacePoseRunner
from models.vace.runner import WAN_VACE_1_3B, WAN_VACE_14B, fit_cover, recommended_flow_shift

PROMPT = "a dancer spins on a bright stage"
TINY = {"steps": 2, "width": 32, "height": 16, "seed": 3, "window_frames": 9, "chunk_overlap": 5}


class RecordingPipeline:
    """The real WanVACEPipeline with a record of each call's arguments and the scheduler's config at the call."""

    def __init__(self, pipe: Any) -> None:
        object.__setattr__(self, "pipe", pipe)
        object.__setattr__(self, "calls", [])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.pipe, name, value)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append({**kwargs, "scheduler_config": dict(self.pipe.scheduler.config)})
        return self.pipe(**kwargs)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("vace-conventions")
    build_tiny_wan_vace(models / WAN_VACE_1_3B.folder)
    return models


@pytest.fixture(scope="module")
def runner(models_dir):
    runner = VacePoseRunner()
    runner.models_dir = models_dir
    runner.load(resolve_device("cpu"))
    yield runner
    runner.unload()


def skeletons(count: int, lift: float) -> np.ndarray:
    """A stick figure on black (the pose mode's renderer) raising its right arm by ``lift`` radians per frame."""
    frames = []
    for i in range(count):
        keypoints = np.full((18, 2), np.nan, dtype=np.float32)
        keypoints[:9] = [[32, 8], [32, 14], [26, 14], [22, 22], [0, 0], [38, 14], [42, 22], [44, 30], [28, 30]]
        angle = -np.pi / 2 + lift * i
        keypoints[4] = keypoints[3] + 8 * np.array([np.cos(angle), np.sin(angle)])
        keypoints[9:14] = [[28, 38], [28, 46], [36, 30], [36, 38], [36, 46]]
        frames.append(draw_openpose(np.zeros((48, 64, 3), np.uint8), keypoints))
    return np.stack(frames)


def reference() -> FrameArray:
    gradient = np.linspace(40, 220, 64, dtype=np.float32)
    image = np.stack([np.tile(gradient, (48, 1)), np.full((48, 64), 90.0), np.tile(gradient[::-1], (48, 1))], -1)
    return FrameArray(image.astype(np.uint8)[None])


def generate(runner, tmp_path: Path, pose: np.ndarray, **params: Any) -> tuple[np.ndarray, list[dict], dict]:
    """(output frames, the pipeline calls, summary) of a vace_pose job on ``pose``."""
    loaded = runner._loaded
    recorder = RecordingPipeline(loaded.pipe)
    loaded.pipe = recorder
    try:
        result = runner.run(
            {"reference": reference(), "pose": FrameArray(pose)},
            runner.validate({"prompt": PROMPT, **TINY, **params}),
            RecordingContext(tmp_path, device=resolve_device("cpu")),
        )
    finally:
        loaded.pipe = recorder.pipe
    frames = sorted((tmp_path / "frames").glob("*.png"))
    return np.stack([cv2.imread(str(f)) for f in frames]), recorder.calls, result.summary


# -- what the pipeline receives ---------------------------------------------------------------------------


def test_the_same_seed_with_another_control_video_gives_another_video(runner, tmp_path):
    left = skeletons(9, 0.35)
    right = np.ascontiguousarray(left[:, :, ::-1])  # the same performance, mirrored: another control video
    size = {"width": 64, "height": 48}  # the skeletons' own size: their lines survive in the latents
    first, _, _ = generate(runner, tmp_path / "left", left, **size)
    again, _, _ = generate(runner, tmp_path / "again", left, **size)
    mirrored, _, _ = generate(runner, tmp_path / "right", right, **size)
    assert np.array_equal(first, again), "same seed, same control: same video"
    change = np.abs(first.astype(int) - mirrored)
    assert change.max() >= 8 and change.mean() > 0.1, f"the control video steers the result: {change.mean():.2f}"
    ignored, _, _ = generate(runner, tmp_path / "ignored", left, conditioning_scale=0.0, **size)
    ignored_mirrored, _, _ = generate(runner, tmp_path / "ignored-right", right, conditioning_scale=0.0, **size)
    assert np.array_equal(ignored, ignored_mirrored), "conditioning_scale=0 ignores the control"


def test_the_pipeline_gets_4k_plus_1_frames_sizes_of_16_the_mask_and_the_scale_asked_for(runner, tmp_path):
    pose = skeletons(13, 0.2)
    _, calls, summary = generate(runner, tmp_path, pose, conditioning_scale=0.7, width=48, height=32)
    assert len(calls) == len(summary["windows"]) == 2, "13 frames: windows of 9 overlapping by 5"
    for call, window in zip(calls, summary["windows"], strict=True):
        frames = call["num_frames"]
        assert frames % 4 == 1 and frames == window["frames"] == len(call["video"]) == len(call["mask"])
        assert call["width"] % 16 == 0 and call["height"] % 16 == 0 and (call["width"], call["height"]) == (48, 32)
        assert all(image.size == (48, 32) for image in call["video"] + call["mask"])
        assert call["conditioning_scale"] == 0.7
        masks = [np.asarray(m) for m in call["mask"]]
        context = window["context"]
        assert all(m.max() == 0 for m in masks[:context]), "frames kept from the previous window: black (keep)"
        assert all(m.min() == 255 for m in masks[context:]), "frames to generate: white"
    sent = [np.asarray(image.convert("RGB")) for image in calls[0]["video"]]
    covered = [fit_cover(frame, 48, 32) for frame in pose]
    assert all(np.array_equal(s, c) for s, c in zip(sent, covered[:9], strict=True)), "frame i is skeleton i"


def test_the_sampler_shift_follows_the_model_and_the_resolution_and_the_user(runner, tmp_path):
    assert recommended_flow_shift(WAN_VACE_14B, 1280, 720) == 5.0
    assert recommended_flow_shift(WAN_VACE_14B, 832, 480) == 3.0
    assert recommended_flow_shift(WAN_VACE_1_3B, 1280, 720) == 3.0, "1.3B was trained at 480p only"
    _, calls, summary = generate(runner, tmp_path / "default", skeletons(5, 0.2))
    assert calls[0]["scheduler_config"]["flow_shift"] == summary["flow_shift"] == 3.0
    _, calls, summary = generate(runner, tmp_path / "set", skeletons(5, 0.2), flow_shift=7.5)
    assert calls[0]["scheduler_config"]["flow_shift"] == summary["flow_shift"] == 7.5


# -- the memory plan ----------------------------------------------------------------------------------------

CARDS = [
    # model, free GB as the card reports it with nothing loaded, frame, expected (offload, fp8, vae_tiling)
    ("1.3b", 23.5, (832, 480), ("none", False, False)),  # RTX 4090 / 3090, 24 GB
    ("1.3b", 15.5, (832, 480), ("model", False, False)),  # RTX 4080 / 4060 Ti 16 GB
    ("1.3b", 11.5, (832, 480), ("model", True, False)),  # RTX 3060 / 4070, 12 GB
    ("1.3b", 7.6, (832, 480), ("group", False, False)),  # RTX 3070 / 4060, 8 GB
    ("1.3b", 5.6, (832, 480), ("group", False, True)),  # 6 GB laptops
    ("14b", 79.0, (1280, 720), ("none", False, False)),  # H100 / A100 80 GB
    ("14b", 47.0, (832, 480), ("model", False, False)),  # RTX 6000 Ada / A6000, 48 GB
    ("14b", 47.0, (1280, 720), ("model", True, False)),
    ("14b", 31.0, (1280, 720), ("model", True, False)),  # RTX 5090, 32 GB
    ("14b", 23.5, (832, 480), ("group", False, False)),  # RTX 4090, 24 GB
    ("14b", 15.5, (1280, 720), ("group", False, False)),
]


@pytest.mark.parametrize(("model", "free_gb", "size", "expected"), CARDS)
def test_the_plan_is_the_fastest_that_fits_the_cards_free_memory(model, free_gb, size, expected):
    plan = choose_plan(model, "cuda", int(free_gb * GB), *size, 81)
    assert (plan.offload, plan.fp8, plan.vae_tiling) == expected, plan.reason
    assert plan.peak_gb <= free_gb * 0.95 - 1.0 and plan.reason.startswith("fits")
    faster = [("none", False), ("model", False), ("model", True), ("group", False), ("sequential", False)]
    for offload, fp8 in faster[: faster.index((plan.offload, plan.fp8))]:
        assert peak_gb(MODEL_SIZES[model], offload, fp8, False, *size, 81) > free_gb * 0.95 - 1.0, "none faster fits"


def test_user_choices_are_kept_and_the_rest_chosen_around_them():
    plan = choose_plan("14b", "cuda", int(79 * GB), 832, 480, 81, offload="sequential")
    assert (plan.offload, plan.fp8, plan.vae_tiling) == ("sequential", False, False)
    assert "set by the user: offload" in plan.reason
    plan = choose_plan("1.3b", "cuda", int(11.5 * GB), 832, 480, 81, fp8="off")
    assert (plan.offload, plan.fp8) == ("group", False), "no fp8: the next plan that fits"
    plan = choose_plan("1.3b", "cuda", int(2.0 * GB), 832, 480, 81)
    assert plan.offload == "sequential" and plan.vae_tiling and plan.reason.startswith("does not fit")


def test_fp8_is_chosen_only_on_cuda_and_refused_on_mps_naming_the_field():
    plan = choose_plan("1.3b", "mps", int(11.5 * GB), 832, 480, 81)
    assert not plan.fp8 and plan.offload == "group"
    with pytest.raises(InvalidInput) as err:
        choose_plan("1.3b", "mps", int(11.5 * GB), 832, 480, 81, fp8="on")
    assert err.value.field == "fp8_weights" and "MPS" in err.value.message
    cpu = choose_plan("14b", "cpu", None, 1280, 720, 81)
    assert (cpu.offload, cpu.fp8, cpu.vae_tiling, cpu.peak_gb) == ("none", False, False, None)
    with pytest.raises(InvalidInput) as err:
        choose_plan("1.3b", "cpu", None, 832, 480, 81, offload="sequential")
    assert err.value.field == "offload" and "needs a GPU" in err.value.message


def test_the_job_summary_and_health_state_the_plan(runner, tmp_path):
    _, _, summary = generate(runner, tmp_path, skeletons(5, 0.2), offload="model", vae_tiling="on")
    plan = summary["memory_plan"]
    assert (plan["offload"], plan["fp8"], plan["vae_tiling"]) == ("model", False, True)
    assert summary["offload"] == "model" and summary["vae_tiling"] is True and "offload" in plan["reason"]
    assert runner.memory_plan("cpu", None) == {"state": "in force", **plan}
    fresh = VacePoseRunner()
    predicted = fresh.memory_plan("cuda", int(15.5 * GB))
    assert predicted["state"].startswith("predicted for a 832x480") and predicted["offload"] == "model"


def tiny_output(pipe: Any) -> np.ndarray:
    import torch
    from PIL import Image

    video = [Image.fromarray(np.full((16, 32, 3), 100, np.uint8))] * 5
    generator = torch.Generator("cpu").manual_seed(1)
    call = {"prompt": PROMPT, "video": video, "height": 16, "width": 32, "num_frames": 5, "num_inference_steps": 2}
    return pipe(**call, generator=generator, output_type="np").frames[0]


@pytest.mark.parametrize(("offload", "fp8"), [("model", False), ("group", False), ("none", True), ("group", True)])
def test_each_plan_that_runs_on_the_cpu_gives_the_frames_of_the_plain_placement(models_dir, offload, fp8):
    """``sequential`` needs an accelerator (accelerate refuses to offload from the CPU to the CPU)."""
    import torch

    folder = models_dir / WAN_VACE_1_3B.folder
    device = resolve_device("cpu")
    plain = LoadedPipeline(_load_pipeline(folder, torch.float32), folder, device, torch.float32, {"test"})
    notes: list[str] = []
    place(plain, choose_plan("1.3b", "cpu", None, 32, 16, 5), notes)
    expected = tiny_output(plain.pipe)
    planned = choose_plan("1.3b", "cpu", None, 32, 16, 5, offload=offload, fp8="on" if fp8 else "off")
    place(plain, planned, notes)
    got = tiny_output(plain.pipe)
    if fp8:
        assert plain.pipe.transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
        assert 0 < np.abs(got - expected).max() < 0.25, "fp8 storage: close, not equal"
    else:
        np.testing.assert_array_equal(got, expected)
    place(plain, choose_plan("1.3b", "cpu", None, 32, 16, 5), notes)
    np.testing.assert_array_equal(tiny_output(plain.pipe), expected)
    assert notes == (
        ["memory plan changed from " + offload + " to none: weights reloaded"] if fp8 or offload == "group" else []
    )
