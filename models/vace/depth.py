"""Depth maps for the ``vace_motion`` mode's depth control: Depth Anything V2 Small in the transformers format.

The model (``depth-anything/Depth-Anything-V2-Small-hf``: ``DepthAnythingForDepthEstimation`` and its image
processor, Apache-2.0) predicts relative inverse depth per pixel: large near the camera, small far away, with no
metric scale. :func:`depth_to_gray` draws one frame's map the way VACE's depth control videos are drawn (its
depth annotator normalises each frame the same way): stretched over the frame's own range, the nearest pixel
white and the farthest black, the same grey in all 3 channels.

``fetch-models vace_motion_depth`` puts the model's three files in ``<models>/Depth-Anything-V2-Small-hf/``
with the lock file every snapshot gets (see :mod:`models.manifest`); the daemon refuses ``control=depth`` at submit
until they are there (the runner's ``option_weights``).

Importing this module imports neither torch nor transformers; :class:`DepthEstimator` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEPTH_REPOSITORY = "depth-anything/Depth-Anything-V2-Small-hf"
"""The Hugging Face repository, and the name of its ``[[snapshot]]`` entry in ``models/manifest.toml``."""
DEPTH_FOLDER = "Depth-Anything-V2-Small-hf"
"""Its folder inside the models folder, named as the repository."""
DEPTH_FETCH_MODE = "vace_motion_depth"
"""The name ``fetch-models`` knows the model by (the entry's ``modes``)."""

BATCH_FRAMES = 8
"""Frames per network pass: same-size frames batch without padding."""


def depth_to_gray(inverse_depth: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) picture of one frame's relative inverse depth (H, W): stretched over its own range,
    nearest white, farthest black. A map without any range (a blank frame) is black."""
    if inverse_depth.ndim != 2:
        raise ValueError(f"an inverse depth map has shape (height, width), got {inverse_depth.shape}")
    values = inverse_depth.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    if not high > low:
        gray = np.zeros(values.shape, np.uint8)
    else:
        gray = np.clip(np.rint((values - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


class DepthEstimator:
    """Depth Anything V2 loaded from ``folder`` onto the daemon's ``device`` (in its dtype policy). Not
    thread-safe: one caller at a time (a runner's job)."""

    def __init__(self, folder: Path, device: Any) -> None:
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        from ..torch_device import torch_device, torch_dtype

        self.device = torch_device(device)
        self.dtype = torch_dtype(device)
        self.processor = AutoImageProcessor.from_pretrained(folder)
        model = DepthAnythingForDepthEstimation.from_pretrained(folder, dtype=self.dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)

    def inverse_depth(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Relative inverse depth (H, W) float32 of each RGB uint8 frame (all of one size), at the frame's size."""
        import torch

        if not frames:
            return []
        height, width = frames[0].shape[:2]
        inputs = self.processor(images=list(frames), return_tensors="pt")
        with torch.inference_mode():
            outputs = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype))
            outputs.predicted_depth = outputs.predicted_depth.float()  # resized in float32, as the processor expects
            resized = self.processor.post_process_depth_estimation(
                outputs, target_sizes=[(height, width)] * len(frames)
            )
        return [item["predicted_depth"].cpu().numpy().astype(np.float32) for item in resized]

    def depth_video(
        self, frames: Sequence[np.ndarray], cancelled: Callable[[], None] | None = None
    ) -> list[np.ndarray]:
        """The depth control video of ``frames``: one :func:`depth_to_gray` picture per frame. ``cancelled`` is
        called between batches and may raise to stop."""
        pictures: list[np.ndarray] = []
        for start in range(0, len(frames), BATCH_FRAMES):
            if cancelled is not None:
                cancelled()
            pictures += [depth_to_gray(d) for d in self.inverse_depth(frames[start : start + BATCH_FRAMES])]
        return pictures
