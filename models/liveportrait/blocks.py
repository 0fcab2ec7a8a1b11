"""Convolution blocks shared by the appearance extractor and the warping module.

Each block names its layers ``conv`` and ``norm`` (``conv1``/``norm1``... for the residual block), which is what
the released checkpoints call them. All norms are batch norms used with their stored running statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnAct2d(nn.Module):
    """3x3 convolution, batch norm, then ReLU (or leaky ReLU, slope 0.01); keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int, leaky: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))  # a new tensor: activated in place
        return F.leaky_relu(x, 0.01, inplace=True) if self.leaky else F.relu(x, inplace=True)


class DownBlock2d(nn.Module):
    """3x3 convolution, batch norm, ReLU, then 2x2 average pooling: halves height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x)), inplace=True), kernel_size=2)


class DownBlock3d(nn.Module):
    """3x3x3 convolution, batch norm, ReLU, then 2x2 average pooling of each depth slice: depth is kept.

    ``native_3d``: pool with the 3D kernel (a 1x2x2 window), else slice by slice with the 2D one (same result; for
    devices and dtypes without the 3D kernel, see :func:`native_3d_resampling`)."""

    native_3d = True

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)), inplace=True)
        if self.native_3d:
            return F.avg_pool3d(x, kernel_size=(1, 2, 2))
        return _per_slice(x, lambda y: F.avg_pool2d(y, kernel_size=2))


class UpBlock3d(nn.Module):
    """Nearest upsampling of height and width by 2, then 3x3x3 convolution, batch norm and ReLU.

    ``native_3d``: upsample with the 3D kernel, else slice by slice with the 2D one (as :class:`DownBlock3d`)."""

    native_3d = True

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.native_3d:
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        else:
            x = _per_slice(x, lambda y: F.interpolate(y, scale_factor=2.0, mode="nearest"))
        return F.relu(self.norm(self.conv(x)), inplace=True)


def native_3d_resampling(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether 3D average pooling and 3D nearest upsampling run on ``device`` in ``dtype`` and give what the
    slice-by-slice 2D kernels give (CPU half precision and some MPS builds lack them)."""
    volume = torch.rand(1, 2, 3, 4, 6, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    try:
        pooled = F.avg_pool3d(volume, kernel_size=(1, 2, 2))
        upsampled = F.interpolate(volume, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
    except (RuntimeError, NotImplementedError):
        return False
    return torch.equal(pooled, _per_slice(volume, lambda y: F.avg_pool2d(y, kernel_size=2))) and torch.equal(
        upsampled, _per_slice(volume, lambda y: F.interpolate(y, scale_factor=2.0, mode="nearest"))
    )


def _per_slice(volume: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a 2D ``op`` to every depth slice of a (N, C, D, H, W) volume, as one (N, C*D, H, W) batch: the
    fallback where the 3D kernels are missing (pooling or upsampling over height and width only is the same)."""
    batch, channels, depth, height, width = volume.shape
    out = op(volume.reshape(batch, channels * depth, height, width))
    return out.view(batch, channels, depth, *out.shape[-2:])


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a volume: (norm, ReLU, 3x3x3 conv) twice, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.norm1(x), inplace=True))
        y = self.conv2(F.relu(self.norm2(y), inplace=True))
        return x + y
