"""Stitching (S) and the eye and lip retargeting networks (R_eyes, R_lip): three small MLPs on keypoints.

All keypoints are (B, 21, 3) in the warping volume's normalised space (see :mod:`.warping`).

- **Stitching** takes the source and driving keypoints (126 values) and returns 65 values: an offset for each
  driving keypoint (63) and a 2D shift (tx, ty) of all of them. Applied to the driving keypoints, it keeps the
  animated crop's border (shoulders, hair) in line with the source, so the crop pastes back without a seam.
- **Eye retargeting** takes the source keypoints and three eye-opening ratios (source left, source right,
  target) and returns keypoint offsets (63) that open or close the eyes to the target.
- **Lip retargeting** takes the source keypoints and two lip-opening ratios (source, target) and returns
  keypoint offsets (63) that open or close the mouth.

The released file ``stitching_retargeting_module.pth`` holds the three under ``retarget_shoulder``,
``retarget_eye`` and ``retarget_mouth``; :mod:`.loader` maps them onto :attr:`StitchingRetargeting.stitching`,
``.eye`` and ``.lip``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MlpConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


STITCHING = MlpConfig(126, (128, 128, 64), 65)
LIP = MlpConfig(65, (128, 128, 64), 63)
EYE = MlpConfig(66, (256, 256, 128, 128, 64), 63)


class RetargetingMlp(nn.Module):
    """Linear layers with ReLU between them; the checkpoint calls the sequence ``mlp`` (linears at even
    indices)."""

    def __init__(self, config: MlpConfig) -> None:
        super().__init__()
        self.config = config
        sizes: Sequence[int] = (config.input_size, *config.hidden_sizes)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], config.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class StitchingRetargeting(nn.Module):
    """The three MLPs, with the operations the pipeline needs."""

    def __init__(self) -> None:
        super().__init__()
        self.stitching = RetargetingMlp(STITCHING)
        self.lip = RetargetingMlp(LIP)
        self.eye = RetargetingMlp(EYE)

    def stitch(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """Driving keypoints (B, K, 3) corrected by the stitching network: per-keypoint offsets plus a shared
        (tx, ty) shift."""
        batch, count, _ = kp_driving.shape
        delta = self.stitching(torch.cat([kp_source.reshape(batch, -1), kp_driving.reshape(batch, -1)], dim=1))
        offsets = delta[:, : 3 * count].reshape(batch, count, 3)
        shift = torch.zeros_like(kp_driving[:, :1])
        shift[..., :2] = delta[:, 3 * count : 3 * count + 2].reshape(batch, 1, 2)
        return kp_driving + offsets + shift

    def eye_delta(self, kp_source: torch.Tensor, eye_ratios: torch.Tensor) -> torch.Tensor:
        """Keypoint offsets (B, K, 3) for ``eye_ratios`` (B, 3): source left, source right, target opening."""
        batch, count, _ = kp_source.shape
        return self.eye(torch.cat([kp_source.reshape(batch, -1), eye_ratios], dim=1)).reshape(batch, count, 3)

    def lip_delta(self, kp_source: torch.Tensor, lip_ratios: torch.Tensor) -> torch.Tensor:
        """Keypoint offsets (B, K, 3) for ``lip_ratios`` (B, 2): source opening, target opening."""
        batch, count, _ = kp_source.shape
        return self.lip(torch.cat([kp_source.reshape(batch, -1), lip_ratios], dim=1)).reshape(batch, count, 3)
