"""LivePortrait's driving keypoints equal the official formula, for fixed motion-extractor outputs.

The reference below is written from the paper (equation 2: ``x = s * (x_c R + delta) + t``) and the official
pipeline's definitions, in numpy, independently of ``models/liveportrait``:

- angles: the softmax expectation over 66 bins of 3 degrees, minus 97.5;
- ``R``: the transpose of ``Rz(roll) Ry(yaw) Rx(pitch)``, applied to row vectors (``x_c R``);
- relative motion (driving frame ``d`` against the first driving frame ``r``, onto the source ``s``):
  ``R = R_d R_r^T R_s``, ``delta = delta_s + delta_d - delta_r``, ``scale = s_s * s_d / s_r``,
  ``t = t_s + t_d - t_r`` with its z dropped; animation regions keep the source's part they do not animate;
- stitching: ``S([x_s, x_d])`` gives 63 keypoint offsets and an (x, y) shift added to every keypoint;
- retargeting: ``x_s + E([x_s, eye_s_left, eye_s_right, eye_d_left]) + L([x_s, lip_s, lip_d])``, then
  stitching; ``normalize_lip``: ``L([x_s, lip_s, 0])`` added after stitching;
- the motion multiplier scales ``x_d - x_s``.

Only the three small MLPs (random weights at the official shapes) are shared with the code under test, as
opaque functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support.liveportrait_weights import write_liveportrait_weights

from models.liveportrait.keypoints import Motion
from models.liveportrait.loader import load_liveportrait
from models.liveportrait.pipeline import AnimationSettings, LivePortraitAnimator

K = 21


def raw_motion(seed: int) -> dict[str, torch.Tensor]:
    """Motion-extractor outputs of one face: keypoints, expression, pose logits, translation, scale."""
    rng = np.random.default_rng(seed)

    def tensor(*shape: int, spread: float = 1.0, offset: float = 0.0) -> torch.Tensor:
        return torch.tensor(rng.standard_normal(shape) * spread + offset, dtype=torch.float32)

    return {
        "kp": tensor(1, K * 3, spread=0.3),
        "exp": tensor(1, K * 3, spread=0.02),
        "pitch": tensor(1, 66, spread=2.0),
        "yaw": tensor(1, 66, spread=2.0),
        "roll": tensor(1, 66, spread=2.0),
        "t": tensor(1, 3, spread=0.05),
        "scale": tensor(1, 1, spread=0.1, offset=1.5),
    }


# -- the reference ------------------------------------------------------------------------------------------


def degrees(logits: torch.Tensor) -> float:
    z = logits.numpy().astype(np.float64)[0]
    p = np.exp(z - z.max())
    p /= p.sum()
    return float((p * np.arange(66)).sum() * 3.0 - 97.5)


def rotation(raw: dict[str, torch.Tensor]) -> np.ndarray:
    pitch, yaw, roll = (np.deg2rad(degrees(raw[n])) for n in ("pitch", "yaw", "roll"))
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def parts(raw: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """(canonical (K, 3), R, expression (K, 3), scale, translation (3,)) in float64."""
    as64 = {k: v.numpy().astype(np.float64) for k, v in raw.items()}
    return as64["kp"].reshape(K, 3), rotation(raw), as64["exp"].reshape(K, 3), float(as64["scale"][0, 0]), as64["t"][0]


def posed(canonical, rot, expression, scale, translation) -> np.ndarray:
    return scale * (canonical @ rot + expression) + np.array([translation[0], translation[1], 0.0])


def mlp(network: torch.nn.Module, *pieces: np.ndarray) -> np.ndarray:
    features = torch.tensor(np.concatenate([np.ravel(p) for p in pieces])[None], dtype=torch.float32)
    with torch.inference_mode():
        return network(features).numpy().astype(np.float64)[0]


def stitched(networks, x_s: np.ndarray, x_d: np.ndarray) -> np.ndarray:
    delta = mlp(networks.stitching, x_s, x_d)
    result = x_d + delta[: 3 * K].reshape(K, 3)
    result[:, :2] += delta[3 * K : 3 * K + 2]
    return result


LIP = [6, 12, 14, 17, 19, 20]
EYES = [11, 13, 15, 16, 18]


def official(networks, settings: AnimationSettings, source, reference, driving, ratios) -> np.ndarray:
    """The driven keypoints of the official pipeline (relative motion) for raw extractor outputs."""
    c_s, r_s, e_s, s_s, t_s = parts(source)
    _, r_r, e_r, s_r, t_r = parts(reference)
    _, r_d, e_d, s_d, t_d = parts(driving)
    x_s = posed(c_s, r_s, e_s, s_s, t_s)
    region = settings.region
    rot = r_d @ r_r.T @ r_s if region in ("all", "pose") else r_s
    animated = {"all": range(K), "exp": range(K), "lip": LIP, "eyes": EYES, "pose": []}[region]
    expression = e_s.copy()
    for index in animated:
        expression[index] = e_s[index] + (e_d[index] - e_r[index])
    scale = s_s * (s_d / s_r) if region == "all" else s_s
    translation = t_s + (t_d - t_r) if region in ("all", "pose") else t_s
    x_d = posed(c_s, rot, expression, scale, translation)
    eye_s, eye_d, lip_s, lip_d = ratios
    if settings.eye_retargeting or settings.lip_retargeting:
        x_d = x_s.copy()
        if settings.eye_retargeting:
            x_d = x_d + mlp(networks.eye, x_s, [eye_s[0], eye_s[1], eye_d[0]]).reshape(K, 3)
        if settings.lip_retargeting:
            x_d = x_d + mlp(networks.lip, x_s, [lip_s, lip_d]).reshape(K, 3)
        if settings.stitching:
            x_d = stitched(networks, x_s, x_d)
    else:
        if settings.stitching:
            x_d = stitched(networks, x_s, x_d)
        if settings.normalize_lip and lip_s >= 0.03:
            x_d = x_d + mlp(networks.lip, x_s, [lip_s, 0.0]).reshape(K, 3)
    return x_s + (x_d - x_s) * settings.motion_multiplier


# -- the code under test --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lp-formula")
    write_liveportrait_weights(root, seed=3)
    return load_liveportrait(root, "cpu", torch.float32)


@pytest.fixture(scope="module")
def animator(models):
    """An animator with a real portrait set as its source (its motion is replaced per test)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("insightface is not installed: pip install insightface==2.1 (it ships Tom_Hanks_54745.png)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "Tom_Hanks_54745.png"
    animator = LivePortraitAnimator(models)
    animator.set_source(np.ascontiguousarray(cv2.imread(str(path))[..., ::-1]))
    yield animator
    animator.close()


SETTINGS = [
    AnimationSettings(),
    AnimationSettings(stitching=False),
    AnimationSettings(normalize_lip=True),
    AnimationSettings(motion_multiplier=1.5, stitching=False),
    AnimationSettings(region="pose"),
    AnimationSettings(region="exp", stitching=False),
    AnimationSettings(region="lip", stitching=False),
    AnimationSettings(region="eyes", stitching=False),
    AnimationSettings(eye_retargeting=True),
    AnimationSettings(lip_retargeting=True, stitching=False),
    AnimationSettings(eye_retargeting=True, lip_retargeting=True),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: repr(s).removeprefix("AnimationSettings"))
def test_driven_keypoints_are_the_official_formula(models, animator, settings):
    source_raw, reference_raw, driving_raw = raw_motion(1), raw_motion(2), raw_motion(3)
    eye_s, lip_s = np.array([0.31, 0.27]), 0.05
    eye_d, lip_d = np.array([0.12, 0.15]), 0.4
    motion = Motion.from_extractor(source_raw)
    x_s = motion.keypoints()
    closing = models.stitching_retargeting.lip_delta(x_s, torch.tensor([[lip_s, 0.0]])).float()
    animator.settings = settings
    animator.source = dataclasses.replace(
        animator.source, motion=motion, keypoints=x_s, eye_ratios=eye_s, lip_ratio=lip_s, lip_closing=closing
    )
    animator.reset_driving()
    first = animator.driven_keypoints(Motion.from_extractor(reference_raw), eye_d, lip_d)
    got = animator.driven_keypoints(Motion.from_extractor(driving_raw), eye_d, lip_d)
    ratios = (eye_s, eye_d, lip_s, lip_d)
    expected = official(models.stitching_retargeting, settings, source_raw, reference_raw, driving_raw, ratios)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=2e-5, rtol=1e-4)
    if not (settings.eye_retargeting or settings.lip_retargeting):
        expected_first = official(
            models.stitching_retargeting, settings, source_raw, reference_raw, reference_raw, ratios
        )
        np.testing.assert_allclose(first[0].numpy(), expected_first, atol=2e-5, rtol=1e-4)
    moved = np.abs(expected - posed(*parts(source_raw))).max()
    assert moved > 1e-3, "the case moves the keypoints, so a wrong formula shows"
