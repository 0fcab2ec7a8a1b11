"""LivePortrait: our networks load the official file layout strictly, each module's outputs, the crop and
paste-back, the animator, and a full job through a real daemon on a real portrait and the real sample video.

Weights are random at the official shapes (``support/liveportrait_weights.py``), written in the official file
layout and loaded through the real loader. The networks run at their released sizes, about 10 s per frame on a
2-core CPU, so full frames are rendered only a few times; everything else is tested per module.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import http.server
import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support.daemon_process import DaemonProcess
from support.liveportrait_weights import (
    OFFICIAL_FILE_BYTES,
    OFFICIAL_FILES,
    official_shapes,
    random_state,
    write_liveportrait_weights,
)

from daemon.devices import Device
from models.liveportrait.blocks import DownBlock3d, UpBlock3d, native_3d_resampling
from models.liveportrait.crop import (
    CROP_SIZE,
    DRIVING_SCALE,
    DRIVING_VY,
    SOURCE_SCALE,
    SOURCE_VY,
    CropTransform,
    MediaPipeFaceFinder,
    PasteBack,
    crop_mask,
    face_box,
)
from models.liveportrait.keypoints import Motion, angle_from_bins, relative_keypoints, rotation_matrix
from models.liveportrait.loader import (
    OFFICIAL_PTH_SHA256,
    LivePortraitModels,
    WeightsMismatch,
    WeightsNotFound,
    compiled_copy,
    grid_sample_fallback_for,
    load_liveportrait,
)
from models.liveportrait.pipeline import AnimationSettings, LivePortraitAnimator, NoFaceFound
from models.liveportrait.spade_generator import Spade, SpectralConv2d, conv3x3_of_upsampled
from models.liveportrait.warping import WarpingModule, identity_grid, sample_volume
from models.liveportrait_runner import liveportrait_dtype
from models.manifest import files_for_mode, load_manifest
from models.runner import InvalidInput

# -- real media ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tom_hanks() -> np.ndarray:
    """insightface's bundled portrait (112x112, a tightly framed face), RGB."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("insightface is not installed: pip install insightface==2.1 (it ships Tom_Hanks_54745.png)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "Tom_Hanks_54745.png"
    image = cv2.imread(str(path))
    assert image is not None, f"could not read {path}"
    return np.ascontiguousarray(image[..., ::-1])


def video_frame(path: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = capture.read()
    capture.release()
    assert ok, f"could not read frame {index} of {path}"
    return np.ascontiguousarray(bgr[..., ::-1])


# -- weights ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models folder holding random weights at the official shapes under ``liveportrait/`` (as the manifest
    lays them out)."""
    root = tmp_path_factory.mktemp("lp-models")
    write_liveportrait_weights(root / "liveportrait", seed=0)
    return root


@pytest.fixture(scope="module")
def models(models_dir) -> LivePortraitModels:
    return load_liveportrait(models_dir / "liveportrait", "cpu", torch.float32)


def test_the_shape_table_matches_the_released_file_sizes():
    # Our independent table of keys and shapes accounts for the released files' bytes, less pickle overhead
    # (about 330 bytes a key); the stitching file holds more than the three networks, which the loader ignores.
    for name, shapes in official_shapes().items():
        tensor_bytes = sum(8 if shape == () else 4 * int(np.prod(shape)) for shape in shapes.values())
        overhead = OFFICIAL_FILE_BYTES[name] - tensor_bytes
        if name == "stitching_retargeting_module":
            assert overhead > 0, name
        else:
            assert 0 < overhead < 400 * len(shapes), (name, overhead)


def test_the_official_layout_loads_strictly_into_every_network(models, models_dir):
    assert models.files["warping_module"] == models_dir / "liveportrait" / "base_models" / "warping_module.pth"
    assert models.files["stitching_retargeting_module"].parent.name == "retargeting_models"
    networks = {
        "appearance_feature_extractor": models.appearance_feature_extractor,
        "motion_extractor": models.motion_extractor,
        "warping_module": models.warping_module,
        "spade_generator": models.spade_generator,
    }
    for name, network in networks.items():
        expected = torch.load(models.files[name], mmap=True, weights_only=True)
        state = network.state_dict()
        assert set(state) == set(expected), name
        for key in list(expected)[:: max(1, len(expected) // 20)]:
            torch.testing.assert_close(state[key], expected[key], rtol=0, atol=0, msg=f"{name}: {key}")
        assert not network.training and not any(p.requires_grad for p in network.parameters())
    stitching = random_state("stitching_retargeting_module", seed=0)
    ours = models.stitching_retargeting
    for official, attribute in (("retarget_shoulder", "stitching"), ("retarget_eye", "eye"), ("retarget_mouth", "lip")):
        got = getattr(ours, attribute).state_dict()
        assert {f"{official}.{k}" for k in got} == {k for k in stitching if k.startswith(official + ".")}
        torch.testing.assert_close(got["mlp.0.weight"], stitching[f"{official}.mlp.0.weight"], rtol=0, atol=0)


def test_the_safetensors_conversion_layout_loads_the_same_weights(models, models_dir, tmp_path):
    # The common conversion: one folder of .safetensors files, the stitching MLPs flattened under
    # "retarget_shoulder_module." and so on. The big networks are linked in as flat .pth files here, which the
    # loader also accepts, to keep the test quick.
    converted = ("appearance_feature_extractor", "stitching_retargeting_module")
    write_liveportrait_weights(tmp_path, seed=0, layout="safetensors", only=converted)
    for name in ("motion_extractor", "warping_module", "spade_generator"):
        (tmp_path / Path(OFFICIAL_FILES[name]).name).symlink_to(models_dir / "liveportrait" / OFFICIAL_FILES[name])
    loaded = load_liveportrait(tmp_path)
    assert loaded.files["stitching_retargeting_module"] == tmp_path / "stitching_retargeting_module.safetensors"
    assert loaded.files["spade_generator"] == tmp_path / "spade_generator.pth"
    for attribute in ("appearance_feature_extractor", "stitching_retargeting"):
        ours, theirs = getattr(models, attribute).state_dict(), getattr(loaded, attribute).state_dict()
        assert set(ours) == set(theirs)
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)


def _copy_layout(source: Path, target: Path) -> None:
    """Link every weight file of ``source`` into ``target`` (so one of them can be replaced cheaply)."""
    for relative in OFFICIAL_FILES.values():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).symlink_to(source / relative)


def test_strict_loading_names_the_file_and_the_missing_unexpected_and_misshaped_keys(models_dir, tmp_path):
    _copy_layout(models_dir / "liveportrait", tmp_path)
    appearance = tmp_path / OFFICIAL_FILES["appearance_feature_extractor"]
    state = random_state("appearance_feature_extractor")
    del state["resblocks_3d.3dr5.conv2.weight"]
    state["resblocks_3d.3dr6.conv1.weight"] = torch.zeros(32, 32, 3, 3, 3)
    state["second.weight"] = torch.zeros(512, 128, 1, 1)
    appearance.unlink()
    torch.save(state, appearance)
    with pytest.raises(WeightsMismatch) as error:
        load_liveportrait(tmp_path)
    message = str(error.value)
    assert str(appearance) in message
    assert "1 missing keys: resblocks_3d.3dr5.conv2.weight" in message
    assert "1 unexpected keys: resblocks_3d.3dr6.conv1.weight" in message
    assert "second.weight (file (512, 128, 1, 1), network (512, 256, 1, 1))" in message
    assert "fetch-models liveportrait" in message


def test_strict_loading_checks_each_network_of_the_stitching_file(models_dir, tmp_path):
    _copy_layout(models_dir / "liveportrait", tmp_path)
    path = tmp_path / OFFICIAL_FILES["stitching_retargeting_module"]
    nested = torch.load(path, weights_only=True)
    nested["retarget_eye"]["module.mlp.12.weight"] = torch.zeros(63, 64)
    nested["extra_training_state"] = {"epoch": torch.tensor(7)}  # other top-level entries are ignored
    path.unlink()
    torch.save(nested, path)
    with pytest.raises(WeightsMismatch) as error:
        load_liveportrait(tmp_path)
    assert f"{path} (retarget_eye)" in str(error.value) and "1 unexpected keys: mlp.12.weight" in str(error.value)

    del nested["retarget_mouth"]
    nested["retarget_eye"].pop("module.mlp.12.weight")
    torch.save(nested, path)
    with pytest.raises(WeightsMismatch, match=r"retarget_mouth \(the whole network\)"):
        load_liveportrait(tmp_path)


def test_missing_files_and_untrusted_pickles_are_refused_with_the_way_out(models_dir, tmp_path):
    with pytest.raises(WeightsNotFound) as missing:
        load_liveportrait(tmp_path)
    assert "base_models/appearance_feature_extractor.pth" in str(missing.value)
    assert "python -m daemon fetch-models liveportrait" in str(missing.value)

    _copy_layout(models_dir / "liveportrait", tmp_path)
    path = tmp_path / OFFICIAL_FILES["motion_extractor"]
    path.unlink()
    torch.save({"detector.norm.weight": torch.ones(768), "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(WeightsMismatch, match="objects other than tensors"):
        load_liveportrait(tmp_path)


def test_the_manifest_lists_the_official_files_in_the_loaders_layout():
    entries = {f.path: f for f in files_for_mode(load_manifest(), "liveportrait")}
    assert set(entries) == {f"liveportrait/{relative}" for relative in OFFICIAL_FILES.values()}
    for name, relative in OFFICIAL_FILES.items():
        entry = entries[f"liveportrait/{relative}"]
        assert entry.url == f"https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/liveportrait/{relative}"
        assert entry.size == OFFICIAL_FILE_BYTES[name]
        assert entry.sha256 == OFFICIAL_PTH_SHA256[name]
        assert "MIT" in entry.licence


# -- the networks, one by one, on real crops ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops(tom_hanks, sample_video) -> dict[str, np.ndarray]:
    """The source crop of the portrait and a driving crop of Megamind.avi (frame 100), 256x256."""
    finder = MediaPipeFaceFinder(video=False)
    try:
        source = finder.find(tom_hanks)
        driving_frame = video_frame(sample_video, 100)
        driving = finder.find(driving_frame)
    finally:
        finder.close()
    assert source is not None and driving is not None
    source_crop = CropTransform.from_box(face_box(source, SOURCE_SCALE, SOURCE_VY), rotate=True).crop(tom_hanks)
    driving_box = face_box(driving, DRIVING_SCALE, DRIVING_VY)
    driving_crop = CropTransform.from_box(driving_box, rotate=False).crop(driving_frame)
    return {"source": source_crop, "driving": driving_crop}


def as_input(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def forward(models, crops) -> dict[str, object]:
    """One pass of every network on the real crops."""
    with torch.inference_mode():
        source, driving = as_input(crops["source"]), as_input(crops["driving"])
        feature = models.appearance_feature_extractor(source)
        raw_source = models.motion_extractor(source)
        raw_driving = models.motion_extractor(driving)
        motion_s, motion_d = Motion.from_extractor(raw_source), Motion.from_extractor(raw_driving)
        x_s, x_d = motion_s.keypoints(), motion_d.keypoints()
        warped = models.warping_module(feature, kp_driving=x_d, kp_source=x_s)
    return {
        "feature": feature,
        "raw": raw_source,
        "motion": motion_s,
        "x_s": x_s,
        "x_d": x_d,
        "warped": warped,
    }


def small_volume(feature: torch.Tensor) -> torch.Tensor:
    """A 32x32 corner of the feature volume: the warping module is convolutional (its five 2x poolings need
    multiples of 32), so the quick tests below run it at a quarter of the cost."""
    return feature[..., :32, :32].contiguous()


def test_appearance_extractor_gives_a_32x16x64x64_volume(forward):
    feature = forward["feature"]
    assert feature.shape == (1, 32, 16, 64, 64) and feature.dtype == torch.float32
    assert torch.isfinite(feature).all() and feature.std() > 0


def test_motion_extractor_gives_keypoints_pose_bins_and_expression(forward):
    raw = forward["raw"]
    assert {k: tuple(v.shape) for k, v in raw.items()} == {
        "pitch": (1, 66), "yaw": (1, 66), "roll": (1, 66), "t": (1, 3), "exp": (1, 63), "scale": (1, 1), "kp": (1, 63)
    }  # fmt: skip
    motion = forward["motion"]
    for angle in (motion.pitch, motion.yaw, motion.roll):
        assert -97.5 <= float(angle) <= 100.5
    rotation = motion.rotation[0]
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3), atol=1e-5, rtol=0)
    assert abs(float(torch.linalg.det(rotation)) - 1) < 1e-5
    assert forward["x_s"].shape == (1, 21, 3)


def test_warping_module_gives_generator_features_a_deformation_and_an_occlusion_map(forward):
    warped = forward["warped"]
    assert warped["out"].shape == (1, 256, 64, 64) and torch.isfinite(warped["out"]).all()
    assert warped["deformation"].shape == (1, 16, 64, 64, 3) and torch.isfinite(warped["deformation"]).all()
    occlusion = warped["occlusion_map"]
    assert occlusion.shape == (1, 1, 64, 64) and occlusion.min() >= 0 and occlusion.max() <= 1


def test_warping_to_the_same_keypoints_is_the_identity_deformation(models, forward):
    # Every proposal (background and keypoints) is the identity when source and driving keypoints agree, so
    # whatever the mask, the deformation samples each voxel where it is.
    x_s = forward["x_s"]
    with torch.inference_mode():
        motion = models.warping_module.dense_motion_network(small_volume(forward["feature"]), x_s, x_s)
    torch.testing.assert_close(motion["deformation"][0], identity_grid(16, 32, 32, x_s), atol=1e-5, rtol=0)
    torch.testing.assert_close(motion["mask"].sum(dim=1), torch.ones(1, 16, 32, 32), atol=1e-5, rtol=0)


def test_3d_pooling_and_upsampling_give_exactly_what_the_slice_by_slice_fallback_gives(models, forward):
    blocks = [m for m in models.warping_module.modules() if isinstance(m, DownBlock3d | UpBlock3d)]
    assert len(blocks) == 10 and all(block.native_3d for block in blocks), "the CPU has the 3D kernels in float32"
    try:
        for block in blocks:
            block.native_3d = False
        with torch.inference_mode():
            sliced = models.warping_module(forward["feature"], kp_driving=forward["x_d"], kp_source=forward["x_s"])
    finally:
        for block in blocks:
            block.native_3d = True
    for key in ("out", "deformation", "occlusion_map"):
        assert torch.equal(sliced[key], forward["warped"][key]), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("fallback", ["float32", "cpu"])
def test_the_grid_sample_fallbacks_give_what_native_grid_sample_gives(fallback, dtype):
    generator = torch.Generator().manual_seed(1)
    volume = torch.rand(1, 4, 16, 32, 32, generator=generator)
    grid = torch.rand(1, 16, 32, 32, 3, generator=generator) * 2.2 - 1.1  # some points fall outside: zeros
    volume, grid = volume.to(dtype), grid.to(dtype)
    # Native grid sampling of the same (rounded) inputs, in float32.
    native = torch.nn.functional.grid_sample(
        volume.float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    got = sample_volume(volume, grid, fallback)
    assert got.dtype == dtype and got.device == volume.device, "returned in the volume's dtype and device"
    tolerance = 4e-3 if dtype == torch.bfloat16 else 1e-6  # bf16 rounds the result to 8 significant bits
    torch.testing.assert_close(got.float(), native, atol=tolerance, rtol=0)
    assert (native == 0).any() and (native > 0).float().mean() > 0.5, "points inside and outside the volume"


def test_the_3d_resampling_probe_accepts_the_cpu_in_float32():
    assert native_3d_resampling(torch.device("cpu"), torch.float32) is True
    assert native_3d_resampling(torch.device("cpu"), torch.float64) is True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_only_mps_is_probed_for_a_grid_sample_fallback(device, dtype):
    # torch.device("cuda") is only a description here: nothing runs on it, as the probe is for MPS only.
    assert grid_sample_fallback_for(torch.device(device), dtype) == "native"


def test_spade_generator_gives_an_image_in_0_1_at_8_times_the_feature_size(models, forward):
    # At the released size, (1, 256, 64, 64) features give a 512x512 image (the animator test renders one);
    # here a 16x16 corner keeps the test quick.
    with torch.inference_mode():
        image = models.spade_generator(forward["warped"]["out"][..., :16, :16])
    assert image.shape == (1, 3, 128, 128)
    assert float(image.min()) >= 0 and float(image.max()) <= 1 and float(image.std()) > 0.01


def test_on_the_cpu_the_generator_runs_its_tuning_within_rounding_of_the_official_computation(models, forward):
    weights = [p for p in models.spade_generator.parameters() if p.dim() == 4]
    assert models.channels_last and len(weights) == 74
    for weight in weights:
        assert weight.is_contiguous(memory_format=torch.channels_last)
        assert not weight.is_contiguous() or weight.shape[2:].numel() == 1, "1x1 kernels are both"
    layers = [m for m in models.spade_generator.modules() if isinstance(m, Spade)]
    assert len(layers) == 18 and all(layer.fold_upsampling for layer in layers)
    generator = copy.deepcopy(models.spade_generator)  # as the official code computes: default layout, upsampled
    for parameter in generator.parameters():
        parameter.data = parameter.data.contiguous()
    for layer in generator.modules():
        if isinstance(layer, Spade):
            layer.fold_upsampling = False
    features = forward["warped"]["out"][..., :16, :16]
    with torch.inference_mode():
        image, default_image = models.spade_generator(features), generator(features)
    assert not torch.equal(image, default_image), "another summation order"
    torch.testing.assert_close(image, default_image, atol=1e-4, rtol=0)  # the benchmark's check vs the official


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_a_convolution_of_an_upsampled_map_folds_the_upsampling_into_the_kernel(factor):
    generator = torch.Generator().manual_seed(factor)
    conv = torch.nn.Conv2d(6, 5, kernel_size=3, padding=1)
    source = torch.randn(1, 6, 7, 9, generator=generator)
    with torch.inference_mode():
        expected = conv(torch.nn.functional.interpolate(source, scale_factor=float(factor), mode="nearest"))
        got = conv3x3_of_upsampled(source, conv, factor)
    assert got.shape == expected.shape == (1, 5, 7 * factor, 9 * factor)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)  # borders included: zeros beyond them


def test_the_spectral_weight_is_kept_under_inference_mode_until_the_stored_tensors_change():
    conv = SpectralConv2d(8, 4, kernel_size=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in (conv.weight_u, conv.weight_v):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
    with torch.inference_mode():
        kept = conv.normalised_weight()
        assert conv.normalised_weight() is kept and torch.equal(kept, conv._divided_weight())
    state = {key: value.clone() for key, value in conv.state_dict().items()}
    state["weight_u"] = torch.randn(4, generator=generator)
    conv.load_state_dict(state)  # copies in place: the same tensors at a later version
    with torch.inference_mode():
        assert torch.equal(conv.normalised_weight(), conv._divided_weight())
        assert not torch.equal(conv.normalised_weight(), kept)
    assert conv.normalised_weight() is not conv.normalised_weight(), "recomputed outside inference mode"


def test_stitching_and_retargeting_networks(models, forward):
    x_s, x_d = forward["x_s"], forward["x_d"]
    network = models.stitching_retargeting
    with torch.inference_mode():
        stitched = network.stitch(x_s, x_d)
        delta = network.stitching(torch.cat([x_s.reshape(1, -1), x_d.reshape(1, -1)], dim=1))
        eyes = network.eye_delta(x_s, torch.tensor([[0.3, 0.3, 0.0]]))
        lip = network.lip_delta(x_s, torch.tensor([[0.2, 0.0]]))
    assert delta.shape == (1, 65) and eyes.shape == lip.shape == (1, 21, 3)
    expected = x_d + delta[:, :63].reshape(1, 21, 3)
    expected[..., :2] += delta[:, 63:65].reshape(1, 1, 2)
    torch.testing.assert_close(stitched, expected)


def test_every_network_is_deterministic(models, crops, forward):
    x_s, x_d = forward["x_s"], forward["x_d"]
    with torch.inference_mode():
        source = as_input(crops["source"])
        assert torch.equal(models.appearance_feature_extractor(source), forward["feature"])
        again = models.motion_extractor(source)
        assert all(torch.equal(again[k], forward["raw"][k]) for k in again)
        volume = small_volume(forward["feature"])
        first, second = (models.warping_module(volume, kp_driving=x_d, kp_source=x_s)["out"] for _ in range(2))
        assert torch.equal(first, second)
        features = forward["warped"]["out"][..., :16, :16]
        assert torch.equal(models.spade_generator(features), models.spade_generator(features))
        stitching = models.stitching_retargeting
        assert torch.equal(stitching.stitch(x_s, x_d), stitching.stitch(x_s, x_d))


# -- keypoint maths ----------------------------------------------------------------------------------------------


def test_angles_come_from_the_expectation_over_3_degree_bins():
    logits = torch.full((3, 66), -1e4)
    logits[0, 0], logits[1, 32], logits[2, 65] = 0, 0, 0
    torch.testing.assert_close(angle_from_bins(logits), torch.tensor([-97.5, -1.5, 97.5]))
    logits = torch.zeros(1, 66)
    torch.testing.assert_close(angle_from_bins(logits), torch.tensor([0.0]))  # uniform: the middle, 32.5 * 3


def test_rotation_matrices_turn_about_the_named_axes():
    zero, ninety = torch.zeros(1), torch.full((1,), 90.0)
    x_axis = torch.tensor([[1.0, 0.0, 0.0]])
    # Row vectors are rotated by x @ R: a yaw of 90 degrees takes x onto -z, a roll of 90 degrees onto y.
    torch.testing.assert_close(x_axis @ rotation_matrix(zero, ninety, zero)[0], torch.tensor([[0.0, 0.0, -1.0]]))
    torch.testing.assert_close(x_axis @ rotation_matrix(zero, zero, ninety)[0], torch.tensor([[0.0, 1.0, 0.0]]))
    torch.testing.assert_close(rotation_matrix(zero, zero, zero)[0], torch.eye(3))


def test_relative_motion_of_the_reference_frame_is_the_source_itself(forward):
    source = forward["motion"]
    driving = Motion.from_extractor({k: v + 0.3 for k, v in forward["raw"].items()})
    for region in ("all", "pose", "exp", "lip", "eyes"):
        torch.testing.assert_close(relative_keypoints(source, driving, driving, region), forward["x_s"])
    moved = relative_keypoints(source, source, driving, "lip")
    changed = (moved - forward["x_s"]).abs().sum(dim=-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [6, 12, 14, 17, 19, 20], "lip moves only the lip keypoints"


# -- crop and paste-back -----------------------------------------------------------------------------------------


def test_source_crops_are_upright_and_centred_on_the_face(tom_hanks):
    import skimage.data

    astronaut = skimage.data.astronaut()
    height, width = astronaut.shape[:2]
    tilt = cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0)  # counter-clockwise by 20 degrees
    tilted = cv2.warpAffine(astronaut, tilt, (width, height))
    finder = MediaPipeFaceFinder(video=False)
    try:
        for image in (astronaut, tilted):
            landmarks = finder.find(image)
            transform = CropTransform.from_box(face_box(landmarks, SOURCE_SCALE, SOURCE_VY), rotate=True)
            again = finder.find(transform.crop(image, CROP_SIZE))
            eyes_left, eyes_right = again.points[[33, 133]].mean(axis=0), again.points[[362, 263]].mean(axis=0)
            roll = np.degrees(np.arctan2(*(eyes_right - eyes_left)[::-1]))
            assert abs(roll) < 3, f"the crop is upright, eye line at {roll:.1f} degrees"
            assert abs(again.points[:, 0].mean() - CROP_SIZE / 2) < 0.06 * CROP_SIZE, "centred horizontally"
            face_height = np.ptp(again.points[:, 1])
            assert 0.3 * CROP_SIZE < face_height < 0.6 * CROP_SIZE, "about the official framing (scale 2.3)"
        assert finder.find(np.zeros((200, 200, 3), np.uint8)) is None
    finally:
        finder.close()


def test_paste_back_leaves_pixels_outside_the_mask_unchanged_and_fills_the_inside():
    import skimage.data

    source = skimage.data.astronaut()
    finder = MediaPipeFaceFinder(video=False)
    try:
        landmarks = finder.find(source)
    finally:
        finder.close()
    transform = CropTransform.from_box(face_box(landmarks, 1.2, 0.0), rotate=True)
    paste = PasteBack.for_source(transform, (source.shape[1], source.shape[0]))
    result = paste.apply(np.full((CROP_SIZE, CROP_SIZE, 3), (255, 0, 255), np.uint8), source)
    outside = paste.mask[..., 0] == 0
    assert 0.5 < outside.mean() < 0.99
    assert np.array_equal(result[outside], source[outside])
    inside = paste.mask[..., 0] >= 1 - 1e-6
    assert inside.sum() > 1000 and np.all(result[inside] == (255, 0, 255))
    ramp = ~outside & ~inside
    assert ramp.any() and not np.array_equal(result[ramp], source[ramp])
    mask = crop_mask(512)
    assert mask[0].max() == 0 and mask[16:-16, 16:-16].min() == 1 and 0 < mask[8, 256] < 1


# -- the animator ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "policy", "expected"),
    [
        ("cuda", "bfloat16", torch.float16),
        ("cuda", "float16", torch.float16),
        ("mps", "float16", torch.float32),
        ("cpu", "float32", torch.float32),
    ],
)
def test_liveportrait_runs_fp16_on_cuda_whatever_the_policy_and_fp32_elsewhere(kind, policy, expected):
    assert liveportrait_dtype(Device(kind=kind, name="a device description", dtype=policy)) == expected
    assert liveportrait_dtype(None) == torch.float32, "no device described: the CPU"


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
def test_compile_is_refused_off_cuda_and_a_compiled_copy_leaves_the_eager_networks_alone(models, models_dir):
    with pytest.raises(ValueError, match="compile=True needs a CUDA device; got cpu"):
        load_liveportrait(models_dir / "liveportrait", "cpu", compile=True)
    compiled = compiled_copy(models)  # wrapping is lazy: nothing is compiled until a compiled network runs
    assert compiled.compiled and not models.compiled
    assert type(models.warping_module) is WarpingModule, "the eager networks stay as they were"
    assert compiled.warping_module is not models.warping_module
    assert compiled.warping_module._orig_mod is models.warping_module, "the weights are shared, not copied"
    assert compiled.spade_generator._orig_mod is models.spade_generator
    assert compiled.motion_extractor is models.motion_extractor


def test_the_animator_waits_for_a_face_then_animates_and_holds_the_last_motion(models, tom_hanks, sample_video):
    black = video_frame(sample_video, 0)  # Megamind.avi opens on a black frame
    assert black.max() < 30
    animator = LivePortraitAnimator(models, AnimationSettings(paste_back=False))
    try:
        with pytest.raises(NoFaceFound):
            animator.set_source(np.zeros((128, 128, 3), np.uint8))
        prepared = animator.set_source(tom_hanks)
        assert prepared.keypoints.shape == (1, 21, 3) and prepared.eye_ratios.shape == (2,)
        assert animator.animate(black) is None and not animator.face_found
        face = animator.animate(video_frame(sample_video, 100))
        assert animator.face_found and face.shape == (512, 512, 3) and face.dtype == np.uint8, "the generator's crop"
        assert not np.array_equal(face, prepared.crop) and face.std() > 1
        held = animator.animate(black)
        assert not animator.face_found and held is face, "a frame without a face holds the last animated frame"
        assert animator.reference is not None
    finally:
        animator.close()


class Stop(Exception):
    pass


def test_the_animator_stops_between_networks_when_asked(models, tom_hanks, crops):
    armed = False

    def check() -> None:
        if armed:
            raise Stop

    ran: list[str] = []
    hooks = [
        network.register_forward_pre_hook(lambda module, args, name=name: ran.append(name))
        for name, network in (("warping", models.warping_module), ("generator", models.spade_generator))
    ]
    animator = LivePortraitAnimator(models, on_step=check)
    try:
        animator.set_source(tom_hanks)
        armed = True
        ran.clear()
        with pytest.raises(Stop):
            animator.animate_crop(crops["driving"])
        assert ran == [], "stopped after the motion extractor, before warping and decoding"
        assert animator.last_output is None
    finally:
        animator.close()
        for hook in hooks:
            hook.remove()


# -- the mode through a real daemon ------------------------------------------------------------------------------


def test_insightface_without_its_models_is_refused_naming_the_folders(tmp_path):
    from models.liveportrait_runner import LivePortraitRunner

    runner = LivePortraitRunner()
    runner.models_dir = tmp_path
    with pytest.raises(InvalidInput) as error:
        runner.validate({"face_detector": "insightface"})
    assert error.value.field == "face_detector"
    assert str(tmp_path / "insightface" / "models" / "buffalo_l") in error.value.message
    assert "2d106det.onnx" in error.value.message and "mediapipe" in error.value.message
    assert runner.validate({})["face_detector"] == "mediapipe"


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def weights_server(models_dir):
    """A local HTTP server offering the random weights under the manifest's paths (a stand-in for Hugging Face)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _QuietFiles(*a, directory=str(models_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def write_test_manifest(path: Path, models_dir: Path, base_url: str) -> None:
    """The real manifest's liveportrait entries, with the sizes and sha256 of the random files, served by the
    local server."""
    blocks = []
    for entry in files_for_mode(load_manifest(), "liveportrait"):
        data = (models_dir / entry.path).read_bytes()
        blocks.append(
            f'[[file]]\nname = "{entry.name}"\nmodes = ["liveportrait"]\npath = "{entry.path}"\n'
            f'url = "{base_url}/{entry.path}"\nsize = {len(data)}\nsha256 = "{hashlib.sha256(data).hexdigest()}"\n'
            'licence = "test"\n'
        )
    path.write_text("\n".join(blocks))


def test_fetched_weights_drive_a_liveportrait_job_on_a_real_portrait_and_the_sample_video(
    models_dir, weights_server, tom_hanks, sample_video, tmp_path
):
    manifest, fetched = tmp_path / "manifest.toml", tmp_path / "models"
    write_test_manifest(manifest, models_dir, weights_server)
    command = [sys.executable, "-m", "daemon", "fetch-models", "liveportrait", "--manifest", str(manifest)]
    subprocess.run([*command, "--models-dir", str(fetched)], check=True, capture_output=True, timeout=60)
    assert (fetched / "liveportrait" / "base_models" / "spade_generator.pth").is_file()
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), tom_hanks[..., ::-1])
    daemon = DaemonProcess(extra_args=("--manifest", str(manifest), "--models-dir", str(fetched))).start()
    try:
        with daemon.client() as client:
            assert client.health()["modes"]["liveportrait"]["ready"] is True
            # Frame 0 of Megamind.avi is black (no face yet: the source is output as it is); frame 1 drives.
            driving = {"path": str(sample_video), "frame_start": 0, "frame_end": 2}
            client.submit("lp-1", "liveportrait", {}, {"source": {"path": str(portrait)}, "driving": driving})
            client.subscribe("lp-1")
            events: list[dict] = []
            deadline = time.monotonic() + 110
            while not any(e.get("type") == "state" and e.get("state") in ("succeeded", "failed") for e in events):
                assert time.monotonic() < deadline, "the job did not finish in time"
                events += client.poll_events(timeout=1.0)
            job = client.job("lp-1")
            assert job["state"] == "succeeded", job["error"]
            summary, arrays = client.result("lp-1")
            assert summary["frame_count"] == job["frame_count"] == 2
            assert summary["frames_without_face"] == 1 and summary["reference_frame"] == 1
            assert (summary["width"], summary["height"]) == (112, 112) and summary["dtype"] == "float32"
            assert arrays["driving_face_found"].tolist() == [False, True]
            assert np.isnan(arrays["driving_pose"][0]).all() and np.isfinite(arrays["driving_pose"][1]).all()
            first, second = client.frame("lp-1", 0), client.frame("lp-1", 1)
            assert np.array_equal(first, tom_hanks), "before the first driving face: the source unchanged"
            assert second.shape == tom_hanks.shape and not np.array_equal(second, tom_hanks)
            stages = {e.get("stage") for e in events if e.get("type") == "progress"}
            assert {"preparing source", "finding driving faces", "animating"} <= stages
            assert any(e.get("preview_jpeg") for e in events if e.get("type") == "progress")
    finally:
        daemon.cleanup()


def test_each_job_gets_the_compile_it_asked_for_and_a_cancel_ends_the_job_cancelled(
    models_dir, tom_hanks, sample_video, tmp_path
):
    manifest = tmp_path / "manifest.toml"
    write_test_manifest(manifest, models_dir, "http://127.0.0.1:9")  # the weights are in place: nothing is fetched
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), tom_hanks[..., ::-1])
    daemon = DaemonProcess(extra_args=("--manifest", str(manifest), "--models-dir", str(models_dir))).start()
    try:
        with daemon.client(timeout=30.0) as client:
            # Per-frame driving crops of Megamind.avi's black first frame: the source as it is, no network pass.
            black = {"source": {"path": str(portrait)}, "driving": {"path": str(sample_video), "frame_end": 1}}
            still = {"driving_crop": "per_frame", "paste_back": False}
            client.submit("compiled", "liveportrait", {**still, "compile": True}, black, subscribe=True)
            events = events_until_final(client, "compiled", timeout=90)
            assert client.job("compiled")["state"] == "succeeded", client.job("compiled")["error"]
            assert client.result("compiled")[0]["compiled"] is False
            logs = [e["message"] for e in events if e.get("type") == "log"]
            assert "compile is for CUDA only; running without it on cpu" in logs

            driving = {"path": str(sample_video), "frame_end": 30}  # frame 1 on: a face, ~10 s a frame here
            inputs = {"source": {"path": str(portrait)}, "driving": driving}
            client.submit("cancelled", "liveportrait", {"driving_crop": "per_frame"}, inputs, subscribe=True)
            deadline = time.monotonic() + 90
            while not any(e.get("stage") == "animating" for e in client.poll_events(timeout=0.5)):
                assert time.monotonic() < deadline, "the job never started animating"
            client.cancel("cancelled")
            cancelled_at = time.monotonic()
            job = client.wait("cancelled", timeout=60)
            assert job["state"] == "cancelled", job
            assert time.monotonic() - cancelled_at < 15, "stopped within a network pass, not after 29 frames"

            client.submit("eager", "liveportrait", {**still, "compile": False}, black)
            assert client.wait("eager", timeout=60)["state"] == "succeeded"
            assert client.result("eager")[0]["compiled"] is False
    finally:
        daemon.cleanup()


def events_until_final(client, job_id: str, timeout: float) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not any(e.get("type") == "state" and e.get("state") in ("succeeded", "failed", "cancelled") for e in events):
        assert time.monotonic() < deadline, f"job {job_id} did not finish in time"
        events += [e for e in client.poll_events(timeout=0.5) if e.get("job_id") == job_id]
    return events


def test_without_weights_the_mode_names_the_missing_files_and_the_fetch_command(tmp_path):
    from daemon.registry import ModelRegistry
    from models.liveportrait_runner import LivePortraitRunner

    registry = ModelRegistry(
        {"liveportrait": LivePortraitRunner}, device=lambda: None, manifest=load_manifest(), models_dir=tmp_path
    )
    readiness = registry.readiness("liveportrait")
    assert readiness["ready"] is False and len(readiness["missing"]) == 5
    assert any("liveportrait/base_models/spade_generator.pth" in item for item in readiness["missing"])
    assert readiness["fix"] == ["python -m daemon fetch-models liveportrait"]


def test_listing_the_mode_imports_neither_torch_nor_opencv():
    check = (
        "import sys, models.liveportrait, models.liveportrait_runner; "
        "print(sorted({'torch', 'cv2', 'mediapipe', 'insightface'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
