"""Build the five LivePortrait networks from a weights folder: :func:`load_liveportrait`.

The folder is laid out as the official release (``huggingface.co/KwaiVGI/LivePortrait``, folder
``liveportrait``)::

    base_models/appearance_feature_extractor.pth
    base_models/motion_extractor.pth
    base_models/warping_module.pth
    base_models/spade_generator.pth
    retargeting_models/stitching_retargeting_module.pth

Each network may instead come as a ``.safetensors`` file of the same name, either in that layout or all in
one folder (the layout of the widely used conversion ``Kijai/LivePortrait_safetensors``). In the stitching
file the three MLPs are ``retarget_shoulder`` (stitching), ``retarget_eye`` and ``retarget_mouth`` (lip): nested
dicts in the ``.pth`` (their keys may carry a ``module.`` prefix from distributed training), flattened as
``retarget_shoulder_module.mlp.0.weight`` or ``retarget_shoulder.mlp.0.weight`` in safetensors. Other
top-level entries of that ``.pth`` are ignored.

Loading is strict: every parameter and buffer of our networks must be in the file with the same shape, and the
file may hold nothing else (batch norms' ``num_batches_tracked`` counters may be absent; they are unused at
inference). A mismatch raises :class:`WeightsMismatch` naming the file and the missing, unexpected and
mis-shaped keys.

``.pth`` files are read with ``torch.load(weights_only=True)``. Should a file hold more than tensors and plain
containers, it is unpickled fully only if its sha256 is that of the official release
(:data:`OFFICIAL_PTH_SHA256`); any other such file is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .appearance_feature_extractor import AppearanceFeatureExtractor
from .blocks import DownBlock3d, UpBlock3d, native_3d_resampling
from .motion_extractor import MotionExtractor
from .spade_generator import Spade, SpadeGenerator
from .stitching_retargeting import StitchingRetargeting
from .warping import WarpingModule

log = logging.getLogger("models.liveportrait")

NETWORK_FILES: dict[str, str] = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "warping_module": "base_models/warping_module.pth",
    "spade_generator": "base_models/spade_generator.pth",
    "stitching_retargeting_module": "retargeting_models/stitching_retargeting_module.pth",
}
"""Each network's file in the official layout, relative to the weights folder."""

STITCHING_PARTS: dict[str, str] = {"retarget_shoulder": "stitching", "retarget_eye": "eye", "retarget_mouth": "lip"}
"""Names of the three MLPs in the stitching file -> attributes of :class:`StitchingRetargeting`."""

OFFICIAL_PTH_SHA256: dict[str, str] = {
    "appearance_feature_extractor": "5279bb8654293dbdf327030b397f107237dd9212fb11dd75b83dfb635211ceb5",
    "motion_extractor": "251e6a94ad667a1d0c69526d292677165110ef7f0cf0f6d199f0e414e8aa0ca5",
    "warping_module": "2f61a6f265fe344f14132364859a78bdbbc2068577170693da57fb96d636e282",
    "spade_generator": "4780afc7909a9f84e24c01d73b31a555ef651521a1fe3b2429bd04534d992aee",
    "stitching_retargeting_module": "3652d5a3f95099141a56986aaddec92fadf0a73c87a20fac9a2c07c32b28b611",
}
"""sha256 of the released ``.pth`` files (as in ``models/manifest.toml``): the only pickles trusted beyond
``weights_only``."""

FETCH_HINT = "python -m daemon fetch-models liveportrait"


class WeightsNotFound(FileNotFoundError):
    """A network's weight file is in none of the accepted places."""


class WeightsMismatch(RuntimeError):
    """A weight file does not match our network (strict loading failed)."""

    def __init__(
        self, path: Path, part: str | None, missing: list[str], unexpected: list[str], mismatched: list[str]
    ) -> None:
        self.path, self.part = path, part
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        where = f"{path} ({part})" if part else str(path)
        problems = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", mismatched)):
            if keys:
                shown = ", ".join(keys[:12]) + (f" ... and {len(keys) - 12} more" if len(keys) > 12 else "")
                problems.append(f"{len(keys)} {label}: {shown}")
        super().__init__(
            f"{where} does not match the LivePortrait network: {'; '.join(problems)}. Is it the official file "
            f"(or a faithful conversion)? Fetch the official weights with `{FETCH_HINT}`."
        )


@dataclass
class LivePortraitModels:
    """The five networks, in eval mode on ``device`` in ``dtype``, gradients off.

    ``grid_sample_fallback`` says how the warping module runs 3D grid sampling on this device (see
    :func:`.warping.sample_volume`); ``files`` maps each network to the file it came from.
    """

    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingModule
    spade_generator: SpadeGenerator
    stitching_retargeting: StitchingRetargeting
    device: torch.device
    dtype: torch.dtype
    grid_sample_fallback: str = "native"
    channels_last: bool = False
    """The generator's CPU tuning: its convolution weights are stored channels-last (:func:`store_channels_last`)
    and its SPADE layers fold the upsampling of their segmentation map into their first convolution
    (:attr:`.spade_generator.Spade.fold_upsampling`). Both change results by float rounding only."""
    compiled: bool = False
    files: dict[str, Path] = field(default_factory=dict)


def load_liveportrait(
    weights_dir: Path | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    compile: bool = False,
) -> LivePortraitModels:
    """Build the networks, load ``weights_dir``'s files strictly, move them to ``device`` in ``dtype``.

    ``compile`` returns the networks with the warping module and the generator (90% of the time per frame) wrapped
    in ``torch.compile`` (:func:`compiled_copy`); CUDA only (on another device it raises ``ValueError``), and the
    first frames then take a while longer. On MPS, 3D grid sampling is probed and falls back
    to float32 or to the CPU where the device lacks it.

    Raises :class:`WeightsNotFound` (names the places looked at and the fetch command) and
    :class:`WeightsMismatch`.
    """
    weights_dir = Path(weights_dir)
    device = torch.device(device)
    if compile and device.type != "cuda":
        raise ValueError(f"compile=True needs a CUDA device; got {device}")
    files = {name: find_weight_file(weights_dir, name) for name in NETWORK_FILES}

    # Smallest files first, so a wrong small file fails before the big ones are read.
    stitching = StitchingRetargeting()
    stitching_file = files["stitching_retargeting_module"]
    parts = split_stitching_state(read_state_dict(stitching_file, "stitching_retargeting_module"))
    for source_name, attribute in STITCHING_PARTS.items():
        if source_name not in parts:
            raise WeightsMismatch(stitching_file, source_name, [f"{source_name} (the whole network)"], [], [])
        load_strict(getattr(stitching, attribute), parts[source_name], stitching_file, source_name)
    networks: dict[str, nn.Module] = {
        "appearance_feature_extractor": AppearanceFeatureExtractor(),
        "motion_extractor": MotionExtractor(),
        "warping_module": WarpingModule(),
        "spade_generator": SpadeGenerator(),
    }
    for name, network in networks.items():
        load_strict(network, read_state_dict(files[name], name), files[name])
    networks["stitching_retargeting"] = stitching

    for network in networks.values():
        network.eval().requires_grad_(False).to(device=device, dtype=dtype)
    warping = networks["warping_module"]
    assert isinstance(warping, WarpingModule)
    warping.grid_sample_fallback = grid_sample_fallback_for(device, dtype)
    if warping.grid_sample_fallback != "native":
        log.info("3D grid sampling on %s runs with the %r fallback", device, warping.grid_sample_fallback)
    native_3d = native_3d_resampling(device, dtype)
    for block in warping.modules():
        if isinstance(block, DownBlock3d | UpBlock3d):
            block.native_3d = native_3d
    if not native_3d:
        log.info("3D pooling and upsampling on %s in %s run slice by slice", device, dtype)
    channels_last = device.type == "cpu"
    if channels_last:
        store_channels_last(networks["spade_generator"])
        for layer in networks["spade_generator"].modules():
            if isinstance(layer, Spade):
                layer.fold_upsampling = True

    models = LivePortraitModels(
        appearance_feature_extractor=networks["appearance_feature_extractor"],  # type: ignore[arg-type]
        motion_extractor=networks["motion_extractor"],  # type: ignore[arg-type]
        warping_module=warping,
        spade_generator=networks["spade_generator"],  # type: ignore[arg-type]
        stitching_retargeting=stitching,
        device=device,
        dtype=dtype,
        grid_sample_fallback=warping.grid_sample_fallback,
        channels_last=channels_last,
        files=files,
    )
    return compiled_copy(models) if compile else models


def compiled_copy(models: LivePortraitModels) -> LivePortraitModels:
    """The same networks with the warping module and the generator wrapped in ``torch.compile``; ``models`` is
    left as it is. The wrappers share the networks' parameters (no second copy of the weights), so one process
    can hold both and give each job the variant it asked for. Compilation itself happens at the first call; it
    is meant for CUDA (:func:`load_liveportrait` and the mode's runner only use it there)."""
    return dataclasses.replace(
        models,
        warping_module=torch.compile(models.warping_module),  # type: ignore[arg-type]  # called like the module
        spade_generator=torch.compile(models.spade_generator),  # type: ignore[arg-type]
        compiled=True,
    )


def store_channels_last(network: nn.Module) -> None:
    """Store ``network``'s 2D and 3D convolution weights channels-last (values unchanged).

    A convolution whose weight is channels-last runs channels-last and gives a channels-last output, so the
    activations follow and stay in that layout through the network. On the CPU, oneDNN's convolutions then skip a
    reorder of every input and output: the SPADE generator (wide 2D convolutions at 64 to 256 pixels) runs about
    a fifth faster. The warping module is left as it is: its deep 3D convolutions on small volumes, and the
    reshapes between its 3D and 2D parts, ran slower that way, and so did the motion extractor (measured on a
    2-core Xeon, torch 2.13). Results differ from the default layout's by float rounding only (another summation
    order; within 1e-4 of the official code, see ``scripts/bench/liveportrait.py``). Only the CPU is switched:
    elsewhere it is not measured.
    """
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    for parameter in network.parameters():
        if parameter.dim() in formats:
            parameter.data = parameter.data.contiguous(memory_format=formats[parameter.dim()])


def find_weight_file(weights_dir: Path, name: str) -> Path:
    """The file holding network ``name`` (a key of :data:`NETWORK_FILES`) in ``weights_dir``."""
    official = Path(NETWORK_FILES[name])
    candidates = [
        official,
        official.with_suffix(".safetensors"),
        Path(official.name).with_suffix(".safetensors"),
        Path(official.name),
    ]
    for candidate in candidates:
        path = weights_dir / candidate
        if path.is_file():
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise WeightsNotFound(
        f"LivePortrait weights for {name} not found in {weights_dir} (looked for {tried}). "
        f"Fetch them with `{FETCH_HINT}`."
    )


def read_state_dict(path: Path, name: str) -> dict[str, Any]:
    """The tensors (or, for the stitching ``.pth``, nested dicts of tensors) stored in ``path``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _sha256(path) != OFFICIAL_PTH_SHA256.get(name):
            raise WeightsMismatch(
                path, None, [], [f"objects other than tensors ({str(exc).splitlines()[0]})"], []
            ) from exc
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, Mapping):
        raise WeightsMismatch(path, None, ["a dict of tensors"], [f"a {type(state).__name__}"], [])
    return dict(state)


def split_stitching_state(state: Mapping[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """The stitching file's contents as {``retarget_shoulder``/``retarget_eye``/``retarget_mouth``: state dict},
    from either the nested ``.pth`` form or a flattened safetensors form; ``module.`` prefixes removed."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        for name in STITCHING_PARTS:
            if isinstance(value, Mapping) and key == name:
                parts.setdefault(name, {}).update({_strip_module(k): v for k, v in value.items()})
            elif (
                isinstance(value, torch.Tensor)
                and key.startswith(name)
                and key[len(name) : len(name) + 1] in (".", "_")
            ):
                parts.setdefault(name, {})[_strip_module(key[len(name) + 1 :])] = value
    return parts


def _strip_module(key: str) -> str:
    return key.removeprefix("module.")


def load_strict(network: nn.Module, state: Mapping[str, Any], path: Path, part: str | None = None) -> None:
    """Load ``state`` into ``network``, refusing any missing, unexpected or mis-shaped key."""
    expected = network.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(expected[k].shape)})"
        for k in expected
        if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise WeightsMismatch(path, part, missing, unexpected, mismatched)
    complete = dict(state)
    for key in optional - complete.keys():
        complete[key] = expected[key]
    network.load_state_dict(complete, strict=True)


def grid_sample_fallback_for(device: torch.device, dtype: torch.dtype) -> str:
    """How 3D grid sampling should run on ``device`` in ``dtype``: ``native`` where it works and agrees with the
    CPU, else ``float32`` on the device, else ``cpu``. Only MPS is probed; CUDA and the CPU support it."""
    if device.type != "mps":
        return "native"
    generator = torch.Generator().manual_seed(0)
    volume = torch.rand(1, 2, 3, 4, 5, generator=generator)
    grid = torch.rand(1, 2, 3, 4, 3, generator=generator) * 2 - 1
    expected = torch.nn.functional.grid_sample(volume, grid, align_corners=False)
    for fallback, probe_dtype in (("native", dtype), ("float32", torch.float32)):
        try:
            got = torch.nn.functional.grid_sample(
                volume.to(device, probe_dtype), grid.to(device, probe_dtype), align_corners=False
            )
        except (RuntimeError, NotImplementedError):
            continue
        tolerance = 1e-2 if probe_dtype in (torch.float16, torch.bfloat16) else 1e-4
        if torch.allclose(got.float().cpu(), expected, atol=tolerance):
            return fallback
    return "cpu"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
