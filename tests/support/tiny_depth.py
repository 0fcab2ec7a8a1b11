"""A tiny Depth Anything V2 in the official transformers layout, built offline for tests.

The official ``depth-anything/Depth-Anything-V2-Small-hf`` repository holds ``config.json`` (a
``DepthAnythingForDepthEstimation`` on a 12-layer DINOv2-Small backbone of width 384), ``model.safetensors`` and
``preprocessor_config.json`` (a ``DPTImageProcessor``: 518 px, aspect kept, sides multiples of 14, ImageNet
normalisation). :func:`build_tiny_depth_anything` writes the same three files: the same architecture shrunk to a
4-layer backbone of width 32, and the same processor settings at 56 px so a frame costs milliseconds on a CPU.
Weights are random but seeded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PROCESSOR_SIZE = 56
"""The tiny processor's target size in pixels (the official one uses 518), a multiple of the 14 px patch."""


def build_tiny_depth_anything(folder: Path, seed: int = 0) -> Path:
    """Build the tiny model and ``save_pretrained`` it with its processor settings into ``folder`` (replaced if
    present). Returns ``folder``."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=PROCESSOR_SIZE,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    processor = {
        "do_normalize": True,
        "do_pad": False,
        "do_rescale": True,
        "do_resize": True,
        "ensure_multiple_of": 14,
        "image_mean": [0.485, 0.456, 0.406],
        "image_processor_type": "DPTImageProcessor",
        "image_std": [0.229, 0.224, 0.225],
        "keep_aspect_ratio": True,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": PROCESSOR_SIZE, "width": PROCESSOR_SIZE},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n", encoding="utf-8")
    return folder
