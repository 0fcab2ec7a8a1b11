"""The motion extractor (M in the paper): a face crop becomes implicit keypoints, head pose and expression.

A ConvNeXt V2 "tiny" backbone (stages of 3, 3, 9 and 3 blocks at 96, 192, 384 and 768 channels, global
response normalisation in each block) pooled to one 768-vector, then seven linear heads. The checkpoint keeps
all of it under ``detector.``.

Input: ``(B, 3, 256, 256)`` RGB in 0..1. Output, a dict of raw head outputs (see :mod:`.keypoints` for their
meaning): ``kp`` (B, 63) canonical keypoints, ``exp`` (B, 63) expression offsets, ``pitch``/``yaw``/``roll``
(B, 66) logits over 3-degree angle bins, ``t`` (B, 3) translation, ``scale`` (B, 1).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MotionConfig:
    """Sizes of the released network (``motion_extractor_params``: 21 keypoints, convnextv2_tiny, 66 bins)."""

    num_kp: int = 21
    num_bins: int = 66
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    image_channels: int = 3


class LayerNormChannelsFirst(nn.Module):
    """Layer norm over the channel axis of an (N, C, H, W) tensor, eps 1e-6."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, 1e-6)
        return x.permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN on channels-last input: each channel is scaled by its spatial L2 norm relative to the
    mean over channels, then ``gamma * (x * ratio) + beta + x``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The norm sums thousands of squares: in float32, which half precision would overflow.
        spatial = torch.linalg.vector_norm(x.float(), ord=2, dim=(1, 2), keepdim=True)
        ratio = (spatial / (spatial.mean(dim=-1, keepdim=True) + 1e-6)).to(x.dtype)
        return self.gamma * (x * ratio) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, layer norm, 4x pointwise expansion with GELU and GRN, projection, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GlobalResponseNorm(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # channels last for the pointwise layers
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class KeypointDetector(nn.Module):
    """The ConvNeXt V2 backbone with the keypoint, pose, expression, scale and translation heads."""

    def __init__(self, config: MotionConfig) -> None:
        super().__init__()
        dims = config.dims
        stem = nn.Sequential(
            nn.Conv2d(config.image_channels, dims[0], kernel_size=4, stride=4),
            LayerNormChannelsFirst(dims[0]),
        )
        self.downsample_layers = nn.ModuleList([stem])
        for a, b in itertools.pairwise(dims):
            self.downsample_layers.append(
                nn.Sequential(LayerNormChannelsFirst(a), nn.Conv2d(a, b, kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
            for dim, depth in zip(dims, config.depths, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * config.num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, config.num_bins)
        self.fc_yaw = nn.Linear(width, config.num_bins)
        self.fc_roll = nn.Linear(width, config.num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * config.num_kp)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        pooled = self.norm(x.mean(dim=(-2, -1)))
        return {
            "pitch": self.fc_pitch(pooled),
            "yaw": self.fc_yaw(pooled),
            "roll": self.fc_roll(pooled),
            "t": self.fc_t(pooled),
            "exp": self.fc_exp(pooled),
            "scale": self.fc_scale(pooled),
            "kp": self.fc_kp(pooled),
        }


class MotionExtractor(nn.Module):
    def __init__(self, config: MotionConfig = MotionConfig()) -> None:
        super().__init__()
        self.config = config
        self.detector = KeypointDetector(config)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image`` (B, 3, 256, 256) in 0..1 -> the raw head outputs listed in the module docstring."""
        return self.detector(image)
