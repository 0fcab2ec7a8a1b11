"""The appearance feature extractor (F in the paper): a source crop becomes a 3D feature volume.

Input: ``(B, 3, 256, 256)`` RGB in 0..1. Output: ``(B, 32, 16, 64, 64)`` (channels, depth, height, width). A 2D
encoder brings the image to 512 channels at 64x64; those channels are read as 32 channels x 16 depth slices and
refined by six residual 3D blocks. The warping module later moves this volume from the source keypoints to the
driving keypoints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import ConvBnAct2d, DownBlock2d, ResBlock3d


@dataclass(frozen=True)
class AppearanceConfig:
    """Sizes of the released network (``appearance_feature_extractor_params`` in the official models.yaml)."""

    image_channels: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    volume_channels: int = 32
    volume_depth: int = 16
    num_resblocks: int = 6


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, config: AppearanceConfig = AppearanceConfig()) -> None:
        super().__init__()
        c = config
        if c.volume_channels * c.volume_depth != c.max_features:
            raise ValueError(
                f"volume_channels x volume_depth ({c.volume_channels} x {c.volume_depth}) must equal "
                f"max_features ({c.max_features}): the 2D features are folded into the volume"
            )
        self.config = c
        self.first = ConvBnAct2d(c.image_channels, c.block_expansion)
        widths = [min(c.max_features, c.block_expansion * 2**i) for i in range(c.num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(a, b) for a, b in itertools.pairwise(widths))
        self.second = nn.Conv2d(widths[-1], c.max_features, kernel_size=1)
        # The checkpoint names these "3dr0".."3dr5" inside a Sequential.
        self.resblocks_3d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(c.volume_channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (B, 3, H, W) in 0..1 -> feature volume (B, 32, 16, H/4, W/4)."""
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        batch, _, height, width = x.shape
        volume = x.view(batch, self.config.volume_channels, self.config.volume_depth, height, width)
        return self.resblocks_3d(volume)
