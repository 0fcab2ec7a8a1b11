"""The SPADE generator (G in the paper): warped features become the animated 512x512 face crop.

Input: ``(B, 256, 64, 64)`` warped features (the warping module's ``out``), which also serve as the SPADE
segmentation map of every block. A 3x3 conv widens them to 512 channels; six SPADE residual blocks at 64x64, an
upsampling block to 128x128 (256 channels) and one to 256x256 (64 channels) follow; a 3x3 conv to 12 channels and
a pixel shuffle give 3 x 512 x 512, squashed by a sigmoid. Output: ``(B, 3, 512, 512)`` RGB in 0..1.

The residual blocks' convolutions are spectrally normalised. The checkpoint stores each as ``weight_orig`` plus
the power-iteration vectors ``weight_u``/``weight_v``; at inference the weight is ``weight_orig / sigma`` with
``sigma = u . (W v)`` from the stored vectors (no further power iteration), see :class:`SpectralConv2d`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

SPADE_HIDDEN = 128
"""Channels of the shared conv that turns the segmentation map into gamma and beta."""


@dataclass(frozen=True)
class SpadeConfig:
    """Sizes of the released network (``spade_generator_params``: upscale 2, 64 / 512 features, 2 downs)."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    num_middle_blocks: int = 6


class SpectralConv2d(nn.Module):
    """A conv whose weight is divided by its spectral norm estimate, as stored in the checkpoint.

    Under ``torch.inference_mode`` the divided weight is kept until the stored weight or vectors change (loading,
    moving or converting them), instead of being recomputed at every call as the official code does."""

    weight_u: torch.Tensor
    weight_v: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("weight_u", torch.zeros(out_channels))
        self.register_buffer("weight_v", torch.zeros(in_channels * kernel_size * kernel_size))
        nn.init.kaiming_uniform_(self.weight_orig, a=5**0.5)
        self._kept: tuple[tuple[torch.Tensor, ...], tuple[tuple[int, int], ...], torch.Tensor] | None = None

    def normalised_weight(self) -> torch.Tensor:
        if not torch.is_inference_mode_enabled() or torch.compiler.is_compiling():
            return self._divided_weight()
        stored = (self.weight_orig, self.weight_u, self.weight_v)
        # Which tensors (the held references keep their memory, so an equal address is the same tensor) at which
        # versions (every in-place change, load_state_dict's too, advances a tensor's version).
        state = tuple((t.data_ptr(), t._version) for t in stored)
        if self._kept is None or self._kept[1] != state:
            self._kept = (tuple(t.detach() for t in stored), state, self._divided_weight())
        return self._kept[2]

    def _divided_weight(self) -> torch.Tensor:
        # sigma in float32 whatever the weights' dtype (a 4608-term dot product).
        matrix = self.weight_orig.float().flatten(1)
        sigma = torch.dot(self.weight_u.float(), torch.mv(matrix, self.weight_v.float()))
        return (self.weight_orig.float() / sigma).to(self.weight_orig.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalised_weight(), self.bias, padding=self.padding)


def conv3x3_of_upsampled(source: torch.Tensor, conv: nn.Conv2d, factor: int) -> torch.Tensor:
    """``conv`` (3x3, padding 1) of ``source`` upsampled ``factor`` times (nearest), without upsampling it.

    Along each axis, output pixel ``factor * i + phase`` reads upsampled pixels that come from source pixels
    ``i - 1``, ``i`` or ``i + 1`` only, so each of the ``factor x factor`` output phases is a convolution of the
    source itself with the kernel's taps summed per source pixel they fall on (at most 2x2 of them): 2.25x fewer
    multiplications at a factor of 2, 5.8x at 4. Phases with the same taps share one convolution. The result is the
    upsample-then-convolve one up to float rounding (the taps are summed first, in float32)."""
    weight, bias = conv.weight.float(), conv.bias
    phases = [_source_taps(phase, factor) for phase in range(factor)]
    batch, _, height, width = source.shape
    layout = torch.channels_last if source.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty(
        batch, weight.shape[0], height * factor, width * factor, dtype=source.dtype, device=source.device
    ).contiguous(memory_format=layout)
    convolved: dict[tuple[Any, Any], torch.Tensor] = {}
    for row, rows in enumerate(phases):
        for col, cols in enumerate(phases):
            if (rows, cols) not in convolved:
                by_rows = torch.stack([weight[:, :, list(taps)].sum(dim=2) for _, taps in rows], dim=2)
                kernel = torch.stack([by_rows[..., list(taps)].sum(dim=-1) for _, taps in cols], dim=-1)
                padding = (-cols[0][0], cols[-1][0], -rows[0][0], rows[-1][0])  # zeros beyond the border
                convolved[rows, cols] = F.conv2d(F.pad(source, padding), kernel.to(source.dtype), bias)
            out[:, :, row::factor, col::factor] = convolved[rows, cols]
    return out


def _source_taps(phase: int, factor: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """For output phase ``phase`` along one axis: (source offset, the kernel taps 0..2 that read it), by offset."""
    taps: dict[int, list[int]] = {}
    for tap in range(3):
        taps.setdefault((phase + tap - 1) // factor, []).append(tap)
    return tuple((offset, tuple(read)) for offset, read in sorted(taps.items()))


class Spade(nn.Module):
    """Instance norm without affine parameters, then a per-pixel scale and shift predicted from ``segmap``."""

    def __init__(self, channels: int, label_channels: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, SPADE_HIDDEN, kernel_size=3, padding=1), nn.ReLU(inplace=True)
        )
        self.mlp_gamma = nn.Conv2d(SPADE_HIDDEN, channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(SPADE_HIDDEN, channels, kernel_size=3, padding=1)

    fold_upsampling = False
    """Fold the segmentation map's upsampling into the first convolution (:func:`conv3x3_of_upsampled`) instead of
    upsampling it: fewer multiplications, the same result up to float rounding."""

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, factor: int = 1) -> torch.Tensor:
        """``segmap`` at ``x``'s height and width divided by ``factor`` (it is upsampled by nearest neighbour)."""
        # Instance norm as a group norm of one channel per group (the same normalisation): unlike instance_norm,
        # which computes in and returns the default layout, it keeps a channels-last input channels-last.
        normalised = F.group_norm(x, x.shape[1], eps=1e-5)
        if factor == 1:
            hidden = self.mlp_shared(segmap)
        elif self.fold_upsampling:
            conv = cast(nn.Conv2d, self.mlp_shared[0])
            hidden = F.relu(conv3x3_of_upsampled(segmap, conv, factor), inplace=True)
        else:
            hidden = self.mlp_shared(F.interpolate(segmap, scale_factor=float(factor), mode="nearest"))
        # normalised * (1 + gamma) + beta, in place in gamma's fresh tensor (same operations, no temporaries).
        return self.mlp_gamma(hidden).add_(1).mul_(normalised).add_(self.mlp_beta(hidden))


class SpadeResBlock(nn.Module):
    """Two (SPADE, leaky ReLU 0.2, spectral 3x3 conv) steps plus a shortcut, learned when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, label_channels: int) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.conv_0 = SpectralConv2d(in_channels, middle, kernel_size=3)
        self.conv_1 = SpectralConv2d(middle, out_channels, kernel_size=3)
        self.norm_0 = Spade(in_channels, label_channels)
        self.norm_1 = Spade(middle, label_channels)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(in_channels, out_channels, kernel_size=1, bias=False)
            self.norm_s = Spade(in_channels, label_channels)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, factor: int = 1) -> torch.Tensor:
        """``segmap`` at ``x``'s height and width divided by ``factor`` (see :class:`Spade`)."""
        shortcut = self.conv_s(self.norm_s(x, segmap, factor)) if self.learned_shortcut else x
        y = self.conv_0(F.leaky_relu(self.norm_0(x, segmap, factor), 0.2, inplace=True))
        y = self.conv_1(F.leaky_relu(self.norm_1(y, segmap, factor), 0.2, inplace=True))
        return y.add_(shortcut)


class SpadeGenerator(nn.Module):
    def __init__(self, config: SpadeConfig = SpadeConfig()) -> None:
        super().__init__()
        c = config
        self.config = c
        features = min(c.max_features, c.block_expansion * 2**c.num_down_blocks)  # 256: the warped features
        wide = 2 * features
        self.fc = nn.Conv2d(features, wide, kernel_size=3, padding=1)
        self.middle_names = [f"G_middle_{i}" for i in range(c.num_middle_blocks)]
        for name in self.middle_names:
            self.add_module(name, SpadeResBlock(wide, wide, features))
        self.up_0 = SpadeResBlock(wide, features, features)
        self.up_1 = SpadeResBlock(features, c.out_channels, features)
        if c.upscale > 1:
            # The checkpoint's conv_img is a Sequential (conv, pixel shuffle): its conv is "conv_img.0".
            self.conv_img: nn.Module = nn.Sequential(
                nn.Conv2d(c.out_channels, 3 * c.upscale**2, kernel_size=3, padding=1), nn.PixelShuffle(c.upscale)
            )
        else:
            self.conv_img = nn.Conv2d(c.out_channels, 3, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """``feature`` (B, 256, 64, 64) -> image (B, 3, 512, 512) in 0..1 (with the released upscale of 2)."""
        # The features are also every block's segmentation map, upsampled (nearest) to the block's size by its
        # SPADE layers (see Spade.fold_upsampling). The map is put in the convolutions' memory layout once, so
        # that the convolutions reading it do not convert it each.
        if self.fc.weight.is_contiguous(memory_format=torch.channels_last):
            feature = feature.contiguous(memory_format=torch.channels_last)
        x = self.fc(feature)
        for name in self.middle_names:
            x = getattr(self, name)(x, feature)
        for block in (self.up_0, self.up_1):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x, feature, x.shape[-1] // feature.shape[-1])
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2, inplace=True)))
