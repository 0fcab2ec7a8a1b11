"""Runners for tests of the job engine, loaded by the daemon as a plugin (``--plugin vfx_test_runners``).

They run through exactly the same path as the real runners; they only compute nothing heavy, so tests can
control timing (``steps`` x ``step_s``), failure and output size.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.runner import LiveProcessor, LiveResult, MediaSlot, Param, RunContext, Runner, RunResult, write_frame


class MeanOfFrame(LiveProcessor):
    """Live test processor: the mean of each frame (scaled by ``gain``) and the frame itself."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.gain = params["gain"]
        self.process_s = params["process_s"]
        self.closed = False

    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        time.sleep(self.process_s)  # a slow model (LivePortrait on a CPU takes seconds a frame)
        if self.gain < 0:
            raise RuntimeError("negative gain breaks the processor on purpose")
        return LiveResult(data={"mean": float(frame.mean()) * self.gain}, arrays={"frame": frame})

    def update(self, params: Mapping[str, Any]) -> None:
        self.gain = params["gain"]


class CountRunner(Runner):
    """Counts ``steps`` steps of ``step_s`` seconds, writing one small frame per step."""

    mode = "count"
    description = "test runner: counts steps, writes a frame per step"
    params = (
        Param("steps", "int", default=3, minimum=1, maximum=10_000),
        Param("step_s", "float", default=0.0, minimum=0.0, maximum=10.0),
        Param("fail_at", "int", default=-1, minimum=-1),
        Param("ignore_cancel", "bool", default=False),
    )
    inputs = (MediaSlot("image", "image", required=False),)

    live_params = (Param("gain", "float", default=1.0), Param("process_s", "float", default=0.0, minimum=0.0))

    def __init__(self) -> None:
        self.loads = 0

    def start_live(self, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> LiveProcessor:
        return MeanOfFrame(params)

    def load(self, device: Any) -> None:
        self.loads += 1

    def run(self, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        image = next(inputs["image"].frames()) if "image" in inputs else None
        for step in range(params["steps"]):
            if not params["ignore_cancel"]:
                ctx.raise_if_cancelled()
            if step == params["fail_at"]:
                raise RuntimeError(f"failing on purpose at step {step}")
            time.sleep(params["step_s"])
            frame = np.full((8, 8, 3), step % 256, np.uint8)
            write_frame(ctx.output_dir, step, frame)
            ctx.progress((step + 1) / params["steps"], "counting", preview=frame)
        arrays = {"steps": np.arange(params["steps"], dtype=np.int32)}
        if image is not None:
            arrays["image_mean"] = np.asarray([image.mean()], np.float32)
        return RunResult(
            summary={"steps": params["steps"], "loads": self.loads},
            arrays=arrays,
            frame_count=params["steps"],
        )


class NeedsWeightsRunner(CountRunner):
    mode = "needs_weights"
    description = "test runner: needs a weight file from the manifest; no live variant"
    weights = ("tiny-test-weights",)
    live_params = None


class TorchSumRunner(Runner):
    """Imports torch when it loads (as the generative modes do) and sums ``count`` integers on the device."""

    mode = "torch_sum"
    description = "test runner: loads torch, sums integers on the daemon's device"
    params = (Param("count", "int", default=10, minimum=1, maximum=1_000_000),)

    def load(self, device: Any) -> None:
        from models.torch_device import torch_device

        self.device = torch_device(device)

    def run(self, inputs: Mapping[str, Any], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        import torch

        total = int(torch.arange(params["count"], device=self.device).sum())
        return RunResult(summary={"sum": total, "device": str(self.device)})


RUNNERS = {"count": CountRunner, "needs_weights": NeedsWeightsRunner, "torch_sum": TorchSumRunner}
