"""The warping module (W in the paper) and its dense motion network.

Coordinates: keypoints and sampling grids live in the volume's normalised space, x right, y down, z into the
image, each in -1..1 across the 64 x 64 x 16 feature volume (the convention of ``grid_sample`` with
``align_corners=False`` sampling at those positions).

Dense motion: every keypoint k proposes that a point p of the driving volume comes from ``p - kp_driving[k] +
kp_source[k]`` of the source volume (a translation), and a background proposal keeps p where it is. The source
features (compressed to 4 channels) are sampled along each of the 22 proposals; with gaussian heatmaps of the
keypoint differences they feed a 3D hourglass, whose softmax mask blends the proposals into one deformation
field. A 2D head on the hourglass output predicts an occlusion map.

Warping: the 32-channel source volume is sampled along that deformation, folded back to 512 2D channels,
passed through a conv block and a 1x1 conv (256 channels), and multiplied by the occlusion map.

3D grid sampling is the one operation some devices lack (older MPS builds) or run poorly in half precision;
:attr:`WarpingModule.grid_sample_fallback` chooses how it runs, see :func:`sample_volume`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBnAct2d, DownBlock3d, UpBlock3d

GRID_SAMPLE_FALLBACKS = ("native", "float32", "cpu")
"""How :func:`sample_volume` runs: on the tensors' device and dtype; on their device in float32; on the CPU in
float32 (results are moved back)."""

KEYPOINT_VARIANCE = 0.01
"""Variance of the gaussian heatmaps, in normalised volume units squared."""


@dataclass(frozen=True)
class WarpingConfig:
    """Sizes of the released network (``warping_module_params`` and its ``dense_motion_params``)."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    volume_channels: int = 32
    volume_depth: int = 16
    motion_block_expansion: int = 32
    motion_max_features: int = 1024
    motion_num_blocks: int = 5
    motion_compress: int = 4


def sample_volume(volume: torch.Tensor, grid: torch.Tensor, fallback: str = "native") -> torch.Tensor:
    """``grid_sample`` of a (N, C, D, H, W) volume at a (N, D', H', W', 3) grid, trilinear, zeros outside,
    ``align_corners=False``; returned in ``volume``'s dtype and device whatever ``fallback`` is."""
    if fallback == "native":
        return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    target = "cpu" if fallback == "cpu" else volume.device
    out = F.grid_sample(
        volume.to(target, torch.float32),
        grid.to(target, torch.float32),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out.to(volume.device, volume.dtype)


def identity_grid(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(D, H, W, 3) grid of (x, y, z) positions in -1..1 (corner voxel centres at -1 and 1)."""
    z, y, x = (torch.linspace(-1.0, 1.0, n, dtype=like.dtype, device=like.device) for n in (depth, height, width))
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def gaussian_heatmaps(keypoints: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, K, 3) keypoints on a (D, H, W, 3) grid -> (B, K, D, H, W) unnormalised gaussians."""
    offset = grid[None, None] - keypoints[:, :, None, None, None, :]
    return torch.exp(-0.5 * offset.pow(2).sum(dim=-1) / KEYPOINT_VARIANCE)


class HourglassEncoder(nn.Module):
    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        inputs = [in_channels, *widths[:-1]]
        self.down_blocks = nn.ModuleList(DownBlock3d(a, b) for a, b in zip(inputs, widths, strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input and every block's output, finest first (the skips)."""
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(self, in_channels: int, widths: list[int], block_expansion: int) -> None:
        super().__init__()
        # Deepest first: the first up block takes the bottleneck alone, the others also its skip.
        ins = [widths[-1]] + [2 * w for w in reversed(widths[1:-1])] + [2 * widths[0]]
        outs = [*reversed(widths[:-1]), block_expansion]
        self.up_blocks = nn.ModuleList(UpBlock3d(a, b) for a, b in zip(ins, outs, strict=True))
        self.out_channels = block_expansion + in_channels
        self.conv = nn.Conv3d(self.out_channels, self.out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_channels)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)), inplace=True)


class Hourglass3d(nn.Module):
    """3D U-Net: ``num_blocks`` down blocks, as many up blocks with skip concatenation, a final conv block.

    Level ``i`` has ``min(max_features, block_expansion * 2**i)`` channels. The output keeps the input's size and
    has ``block_expansion + in_channels`` channels.
    """

    def __init__(self, in_channels: int, block_expansion: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = [min(max_features, block_expansion * 2**level) for level in range(1, num_blocks + 1)]
        self.encoder = HourglassEncoder(in_channels, widths)
        self.decoder = HourglassDecoder(in_channels, widths, block_expansion)
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DenseMotionNetwork(nn.Module):
    def __init__(self, config: WarpingConfig) -> None:
        super().__init__()
        c = config
        self.num_kp = c.num_kp
        proposals = c.num_kp + 1  # one per keypoint, plus the background
        self.hourglass = Hourglass3d(
            in_channels=proposals * (c.motion_compress + 1),
            block_expansion=c.motion_block_expansion,
            num_blocks=c.motion_num_blocks,
            max_features=c.motion_max_features,
        )
        hidden = self.hourglass.out_channels
        self.mask = nn.Conv3d(hidden, proposals, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(c.volume_channels, c.motion_compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(c.motion_compress)
        self.occlusion = nn.Conv2d(hidden * c.volume_depth, 1, kernel_size=7, padding=3)
        self.grid_sample_fallback = "native"

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``feature`` (B, 32, D, H, W), keypoints (B, K, 3) -> ``mask`` (B, K+1, D, H, W) softmax weights of the
        proposals, ``deformation`` (B, D, H, W, 3) source positions to sample, ``occlusion_map`` (B, 1, H, W)
        in 0..1."""
        batch, _, depth, height, width = feature.shape
        proposals = self.num_kp + 1
        compressed = F.relu(self.norm(self.compress(feature)), inplace=True)
        channels = compressed.shape[1]

        # 1. One sampling grid per proposal: background identity, then a translation per keypoint.
        grid = identity_grid(depth, height, width, like=kp_source)
        shifts = (kp_source - kp_driving)[:, :, None, None, None, :]
        motions = torch.cat(
            [grid.expand(batch, 1, depth, height, width, 3), grid[None, None] + shifts], dim=1
        )  # (B, K+1, D, H, W, 3)

        # 2. The compressed source features seen through each proposal.
        repeated = compressed[:, None].expand(batch, proposals, channels, depth, height, width)
        warped = sample_volume(
            repeated.reshape(batch * proposals, channels, depth, height, width),
            motions.reshape(batch * proposals, depth, height, width, 3),
            self.grid_sample_fallback,
        ).view(batch, proposals, channels, depth, height, width)

        # 3. Heatmaps of where keypoints move to (positive) and from (negative); none for the background.
        heat = gaussian_heatmaps(kp_driving, grid) - gaussian_heatmaps(kp_source, grid)
        heat = torch.cat([heat.new_zeros(batch, 1, depth, height, width), heat], dim=1)

        # 4. Per proposal: [heatmap, 4 feature channels], flattened into the hourglass input channels.
        hourglass_in = torch.cat([heat[:, :, None], warped], dim=2).view(batch, -1, depth, height, width)
        prediction = self.hourglass(hourglass_in)

        mask = torch.softmax(self.mask(prediction), dim=1)
        deformation = torch.einsum("bkdhw,bkdhwc->bdhwc", mask, motions)
        occlusion = torch.sigmoid(self.occlusion(prediction.reshape(batch, -1, height, width)))
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}


class WarpingModule(nn.Module):
    def __init__(self, config: WarpingConfig = WarpingConfig()) -> None:
        super().__init__()
        c = config
        self.config = c
        self.dense_motion_network = DenseMotionNetwork(c)
        out_channels = c.block_expansion * 2**c.num_down_blocks
        self.third = ConvBnAct2d(c.max_features, out_channels, leaky=True)
        self.fourth = nn.Conv2d(out_channels, out_channels, kernel_size=1)

    @property
    def grid_sample_fallback(self) -> str:
        return self.dense_motion_network.grid_sample_fallback

    @grid_sample_fallback.setter
    def grid_sample_fallback(self, value: str) -> None:
        if value not in GRID_SAMPLE_FALLBACKS:
            raise ValueError(f"grid_sample_fallback must be one of {', '.join(GRID_SAMPLE_FALLBACKS)}, got {value!r}")
        self.dense_motion_network.grid_sample_fallback = value

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``feature_3d`` (B, 32, 16, 64, 64) and keypoints (B, 21, 3) -> ``out`` (B, 256, 64, 64) warped
        features for the generator, ``deformation`` (B, 16, 64, 64, 3), ``occlusion_map`` (B, 1, 64, 64)."""
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        warped = sample_volume(feature_3d, motion["deformation"], self.grid_sample_fallback)
        batch, channels, depth, height, width = warped.shape
        out = self.fourth(self.third(warped.view(batch, channels * depth, height, width)))
        out = out * motion["occlusion_map"]
        return {"occlusion_map": motion["occlusion_map"], "deformation": motion["deformation"], "out": out}
