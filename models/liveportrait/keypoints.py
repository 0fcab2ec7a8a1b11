"""Head pose and implicit keypoints: from the motion extractor's raw outputs to the keypoints that drive warping.

The paper's keypoint transform (its equation 2): ``x = s * (x_c @ R + delta) + t``, where ``x_c`` are the
canonical keypoints (identity), ``R`` the head rotation, ``delta`` the expression offsets, ``s`` the scale and
``t`` the translation, of which only x and y are applied. All keypoints are (B, 21, 3) in the warping volume's
normalised space (x right, y down, z into the image).

Angles are degrees. The motion extractor predicts each of pitch, yaw and roll as logits over 66 bins of 3
degrees; the angle is the softmax expectation ``sum(p_i * i) * 3 - 97.5``, so -97.5..100.5 degrees.

All maths here runs in float32 whatever the networks' dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

ANGLE_BINS = 66
ANGLE_BIN_DEGREES = 3.0
ANGLE_OFFSET_DEGREES = 97.5

LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
"""Keypoints whose expression offsets move the mouth (the official "lip" animation region)."""
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
"""Keypoints whose expression offsets move the eyes (the official "eyes" animation region)."""

ANIMATION_REGIONS = ("all", "pose", "exp", "lip", "eyes")
"""What the driving video animates: everything; head pose and position only; expression only; the mouth's
expression only; the eyes' expression only."""


def angle_from_bins(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees."""
    bins = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
    probabilities = torch.softmax(logits.float(), dim=1)
    return (probabilities * bins).sum(dim=1) * ANGLE_BIN_DEGREES - ANGLE_OFFSET_DEGREES


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B,) angles in degrees -> (B, 3, 3) matrices ``R`` for row-vector keypoints (``x @ R``).

    ``R`` is the transpose of ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``: pitch turns about x, yaw about y, roll about z.
    """
    p, y, r = (torch.deg2rad(a.float().reshape(-1)) for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)

    def matrix(rows: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        return torch.stack([torch.stack(list(row), dim=-1) for row in rows], dim=-2)

    rx = matrix([[one, zero, zero], [zero, p.cos(), -p.sin()], [zero, p.sin(), p.cos()]])
    ry = matrix([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rz = matrix([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return (rz @ ry @ rx).transpose(1, 2)


@dataclass(frozen=True)
class Motion:
    """What the motion extractor says about one batch of face crops, in float32.

    ``canonical`` (B, K, 3) keypoints; ``pitch``/``yaw``/``roll`` (B,) degrees; ``rotation`` (B, 3, 3) for
    ``x @ R``; ``expression`` (B, K, 3) offsets; ``scale`` (B, 1); ``translation`` (B, 3).
    """

    canonical: torch.Tensor
    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    rotation: torch.Tensor
    expression: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor

    @classmethod
    def from_extractor(cls, raw: Mapping[str, torch.Tensor]) -> Motion:
        """Decode the motion extractor's output dict (``kp``, ``exp``, ``pitch``, ``yaw``, ``roll``, ``t``,
        ``scale``)."""
        batch = raw["kp"].shape[0]
        pitch, yaw, roll = (angle_from_bins(raw[name]) for name in ("pitch", "yaw", "roll"))
        return cls(
            canonical=raw["kp"].float().reshape(batch, -1, 3),
            pitch=pitch,
            yaw=yaw,
            roll=roll,
            rotation=rotation_matrix(pitch, yaw, roll),
            expression=raw["exp"].float().reshape(batch, -1, 3),
            scale=raw["scale"].float().reshape(batch, 1),
            translation=raw["t"].float().reshape(batch, 3),
        )

    def keypoints(self) -> torch.Tensor:
        """The posed keypoints ``s * (x_c @ R + delta) + (tx, ty, 0)`` (B, K, 3)."""
        return transform_keypoints(self.canonical, self.rotation, self.expression, self.scale, self.translation)

    def pose_degrees(self) -> torch.Tensor:
        """(B, 3) pitch, yaw, roll in degrees."""
        return torch.stack([self.pitch, self.yaw, self.roll], dim=1)


def transform_keypoints(
    canonical: torch.Tensor,
    rotation: torch.Tensor,
    expression: torch.Tensor,
    scale: torch.Tensor,
    translation: torch.Tensor,
) -> torch.Tensor:
    """``scale * (canonical @ rotation + expression) + (tx, ty, 0)``; shapes as in :class:`Motion`."""
    shift = translation.clone()
    shift[:, 2] = 0.0
    return scale[:, :, None] * (canonical @ rotation + expression) + shift[:, None, :]


def region_mask(region: str, num_kp: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, K, 1) float weights of the keypoints whose expression ``region`` animates (0 or 1)."""
    if region not in ANIMATION_REGIONS:
        raise ValueError(f"animation region must be one of {', '.join(ANIMATION_REGIONS)}, got {region!r}")
    mask = torch.zeros(1, num_kp, 1, device=device)
    if region in ("all", "exp"):
        mask[:] = 1.0
    elif region == "lip":
        mask[:, list(LIP_KEYPOINTS)] = 1.0
    elif region == "eyes":
        mask[:, list(EYE_KEYPOINTS)] = 1.0
    return mask


def relative_keypoints(source: Motion, reference: Motion, driving: Motion, region: str = "all") -> torch.Tensor:
    """Driving keypoints for the source face: the motion of ``driving`` relative to ``reference`` (the first
    driving frame) applied to ``source``.

    - rotation ``R_d @ R_ref^T @ R_s`` (pose regions: all, pose), else the source's;
    - expression ``delta_s + (delta_d - delta_ref)`` on the region's keypoints (all, exp, lip, eyes);
    - scale ``s_s * s_d / s_ref`` (all only);
    - translation ``t_s + (t_d - t_ref)`` (all, pose), z always dropped.

    So the reference frame itself gives back the source's own keypoints, whatever the driving face looks like.
    """
    poses = region in ("all", "pose")
    rotation = driving.rotation @ reference.rotation.transpose(1, 2) @ source.rotation if poses else source.rotation
    weights = region_mask(region, source.expression.shape[1], source.expression.device)
    expression = source.expression + weights * (driving.expression - reference.expression)
    scale = source.scale * (driving.scale / reference.scale) if region == "all" else source.scale
    translation = source.translation + (driving.translation - reference.translation) if poses else source.translation
    return transform_keypoints(source.canonical, rotation, expression, scale, translation)


def describe_pose(motion: Motion) -> dict[str, float]:
    """First item's pose as plain floats (degrees), for summaries."""
    return {
        "pitch": round(float(motion.pitch[0]), 3),
        "yaw": round(float(motion.yaw[0]), 3),
        "roll": round(float(motion.roll[0]), 3),
        "scale": round(float(motion.scale[0, 0]), 5),
    }
