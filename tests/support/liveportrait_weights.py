"""Random LivePortrait weights at the official shapes, written in the official file layout.

The key names and shapes below are written down from the released architecture (the official ``models.yaml``:
21 keypoints, ConvNeXt V2 tiny, 64/512 features, a 5-level 3D hourglass of 32..1024 channels, a SPADE decoder
with upscale 2, and the three retargeting MLPs), independently of the network code in ``models/liveportrait``:
if our networks drift from the released shapes, loading these files strictly fails.

Values are random but tame, so the networks produce meaningful ranges: conv and linear weights are normal with
variance 1/fan_in, batch norms are identities, the keypoint heads are scaled so keypoints stay inside the
volume, and the spectral-norm vectors ``weight_u``/``weight_v`` come from power iteration as in training.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch

NUM_KP = 21
CONVNEXT_DEPTHS = (3, 3, 9, 3)
CONVNEXT_DIMS = (96, 192, 384, 768)

OFFICIAL_FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "warping_module": "base_models/warping_module.pth",
    "spade_generator": "base_models/spade_generator.pth",
    "stitching_retargeting_module": "retargeting_models/stitching_retargeting_module.pth",
}

OFFICIAL_FILE_BYTES = {
    "appearance_feature_extractor": 3387959,
    "motion_extractor": 112545506,
    "warping_module": 182180086,
    "spade_generator": 221813590,
    "stitching_retargeting_module": 2393098,
}
"""Sizes of the released files (Hugging Face LFS pointers), pickle overhead included."""

Shapes = dict[str, tuple[int, ...]]


def _conv(prefix: str, out: int, inp: int, kernel: tuple[int, ...], bias: bool = True) -> Shapes:
    shapes = {f"{prefix}.weight": (out, inp, *kernel)}
    if bias:
        shapes[f"{prefix}.bias"] = (out,)
    return shapes


def _batch_norm(prefix: str, channels: int) -> Shapes:
    names = ("weight", "bias", "running_mean", "running_var")
    return {**{f"{prefix}.{n}": (channels,) for n in names}, f"{prefix}.num_batches_tracked": ()}


def appearance_shapes() -> Shapes:
    shapes = {**_conv("first.conv", 64, 3, (3, 3)), **_batch_norm("first.norm", 64)}
    for i, (inp, out) in enumerate([(64, 128), (128, 256)]):
        shapes |= _conv(f"down_blocks.{i}.conv", out, inp, (3, 3)) | _batch_norm(f"down_blocks.{i}.norm", out)
    shapes |= _conv("second", 512, 256, (1, 1))
    for i in range(6):
        for j in (1, 2):
            shapes |= _conv(f"resblocks_3d.3dr{i}.conv{j}", 32, 32, (3, 3, 3))
            shapes |= _batch_norm(f"resblocks_3d.3dr{i}.norm{j}", 32)
    return shapes


def motion_shapes() -> Shapes:
    d = CONVNEXT_DIMS
    p = "detector"
    shapes = _conv(f"{p}.downsample_layers.0.0", d[0], 3, (4, 4))
    shapes |= {f"{p}.downsample_layers.0.1.weight": (d[0],), f"{p}.downsample_layers.0.1.bias": (d[0],)}
    for i in (1, 2, 3):
        shapes |= {f"{p}.downsample_layers.{i}.0.weight": (d[i - 1],), f"{p}.downsample_layers.{i}.0.bias": (d[i - 1],)}
        shapes |= _conv(f"{p}.downsample_layers.{i}.1", d[i], d[i - 1], (2, 2))
    for stage, (dim, depth) in enumerate(zip(d, CONVNEXT_DEPTHS, strict=True)):
        for block in range(depth):
            b = f"{p}.stages.{stage}.{block}"
            shapes |= _conv(f"{b}.dwconv", dim, 1, (7, 7))
            shapes |= {f"{b}.norm.weight": (dim,), f"{b}.norm.bias": (dim,)}
            shapes |= {f"{b}.pwconv1.weight": (4 * dim, dim), f"{b}.pwconv1.bias": (4 * dim,)}
            shapes |= {f"{b}.grn.gamma": (1, 1, 1, 4 * dim), f"{b}.grn.beta": (1, 1, 1, 4 * dim)}
            shapes |= {f"{b}.pwconv2.weight": (dim, 4 * dim), f"{b}.pwconv2.bias": (dim,)}
    shapes |= {f"{p}.norm.weight": (d[-1],), f"{p}.norm.bias": (d[-1],)}
    heads = {"kp": 3 * NUM_KP, "scale": 1, "pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 3 * NUM_KP}
    for head, size in heads.items():
        shapes |= {f"{p}.fc_{head}.weight": (size, d[-1]), f"{p}.fc_{head}.bias": (size,)}
    return shapes


def warping_shapes() -> Shapes:
    p = "dense_motion_network"
    hourglass_in = (NUM_KP + 1) * (4 + 1)  # per proposal: a heatmap and 4 compressed feature channels
    widths = [hourglass_in, 64, 128, 256, 512, 1024]
    shapes: Shapes = {}
    for i in range(5):
        b = f"{p}.hourglass.encoder.down_blocks.{i}"
        shapes |= _conv(f"{b}.conv", widths[i + 1], widths[i], (3, 3, 3)) | _batch_norm(f"{b}.norm", widths[i + 1])
    up = [(1024, 512), (1024, 256), (512, 128), (256, 64), (128, 32)]
    for i, (inp, out) in enumerate(up):
        b = f"{p}.hourglass.decoder.up_blocks.{i}"
        shapes |= _conv(f"{b}.conv", out, inp, (3, 3, 3)) | _batch_norm(f"{b}.norm", out)
    hidden = 32 + hourglass_in
    shapes |= _conv(f"{p}.hourglass.decoder.conv", hidden, hidden, (3, 3, 3))
    shapes |= _batch_norm(f"{p}.hourglass.decoder.norm", hidden)
    shapes |= _conv(f"{p}.mask", NUM_KP + 1, hidden, (7, 7, 7))
    shapes |= _conv(f"{p}.compress", 4, 32, (1, 1, 1)) | _batch_norm(f"{p}.norm", 4)
    shapes |= _conv(f"{p}.occlusion", 1, hidden * 16, (7, 7))
    shapes |= _conv("third.conv", 256, 512, (3, 3)) | _batch_norm("third.norm", 256)
    shapes |= _conv("fourth", 256, 256, (1, 1))
    return shapes


def _spectral(prefix: str, out: int, inp: int, kernel: int, bias: bool = True) -> Shapes:
    shapes = {
        f"{prefix}.weight_orig": (out, inp, kernel, kernel),
        f"{prefix}.weight_u": (out,),
        f"{prefix}.weight_v": (inp * kernel * kernel,),
    }
    if bias:
        shapes[f"{prefix}.bias"] = (out,)
    return shapes


def _spade(prefix: str, channels: int) -> Shapes:
    return (
        _conv(f"{prefix}.mlp_shared.0", 128, 256, (3, 3))
        | _conv(f"{prefix}.mlp_gamma", channels, 128, (3, 3))
        | _conv(f"{prefix}.mlp_beta", channels, 128, (3, 3))
    )


def _spade_block(prefix: str, fin: int, fout: int) -> Shapes:
    middle = min(fin, fout)
    shapes = _spectral(f"{prefix}.conv_0", middle, fin, 3) | _spectral(f"{prefix}.conv_1", fout, middle, 3)
    shapes |= _spade(f"{prefix}.norm_0", fin) | _spade(f"{prefix}.norm_1", middle)
    if fin != fout:
        shapes |= _spectral(f"{prefix}.conv_s", fout, fin, 1, bias=False) | _spade(f"{prefix}.norm_s", fin)
    return shapes


def spade_shapes() -> Shapes:
    shapes = _conv("fc", 512, 256, (3, 3))
    for i in range(6):
        shapes |= _spade_block(f"G_middle_{i}", 512, 512)
    shapes |= _spade_block("up_0", 512, 256) | _spade_block("up_1", 256, 64)
    return shapes | _conv("conv_img.0", 12, 64, (3, 3))


def _mlp(sizes: tuple[int, ...]) -> Shapes:
    shapes: Shapes = {}
    for i, (inp, out) in enumerate(itertools.pairwise(sizes)):
        shapes |= {f"mlp.{2 * i}.weight": (out, inp), f"mlp.{2 * i}.bias": (out,)}
    return shapes


def stitching_shapes() -> dict[str, Shapes]:
    """The three MLPs under their names in the official file."""
    return {
        "retarget_shoulder": _mlp((126, 128, 128, 64, 65)),
        "retarget_mouth": _mlp((65, 128, 128, 64, 63)),
        "retarget_eye": _mlp((66, 256, 256, 128, 128, 64, 63)),
    }


def official_shapes() -> dict[str, Shapes]:
    """Every file's keys and shapes; the stitching file's keys flattened as ``retarget_*.mlp.N.weight``."""
    stitching = {f"{part}.{key}": shape for part, keys in stitching_shapes().items() for key, shape in keys.items()}
    return {
        "appearance_feature_extractor": appearance_shapes(),
        "motion_extractor": motion_shapes(),
        "warping_module": warping_shapes(),
        "spade_generator": spade_shapes(),
        "stitching_retargeting_module": stitching,
    }


# -- values ----------------------------------------------------------------------------------------------------


HEAD_GAINS = {"fc_kp": 0.25, "fc_exp": 0.02, "fc_t": 0.05, "fc_scale": 0.05}
"""Keep random keypoints within the volume (|kp| well under 1) and expressions and translations small."""


def _tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    leaf = key.rsplit(".", 1)[-1]
    if shape == ():
        return torch.zeros((), dtype=torch.int64)  # num_batches_tracked
    if leaf in ("running_mean", "weight_u", "weight_v"):  # the spectral vectors are set by power iteration
        return torch.zeros(shape)
    if leaf == "running_var":
        return torch.ones(shape)
    if leaf in ("gamma", "beta"):
        return torch.randn(shape, generator=generator) * 0.01
    if leaf in ("weight", "weight_orig") and len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        gain = next((g for head, g in HEAD_GAINS.items() if f".{head}." in f".{key}"), 1.0)
        return torch.randn(shape, generator=generator) * (gain / math.sqrt(fan_in))
    if leaf == "weight":
        return torch.ones(shape)  # batch and layer norms
    if leaf == "bias":
        return torch.ones(shape) if key.endswith("fc_scale.bias") else torch.randn(shape, generator=generator) * 0.01
    raise ValueError(f"no rule for {key}")


def _with_power_iteration(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    """Set each spectral conv's ``weight_u``/``weight_v`` to its leading singular vectors (10 iterations)."""
    for key in [k for k in state if k.endswith(".weight_orig")]:
        prefix = key[: -len(".weight_orig")]
        matrix = state[key].flatten(1)
        u = torch.randn(matrix.shape[0], generator=generator)
        v = torch.randn(matrix.shape[1], generator=generator)
        for _ in range(10):
            v = torch.nn.functional.normalize(matrix.t() @ u, dim=0)
            u = torch.nn.functional.normalize(matrix @ v, dim=0)
        state[f"{prefix}.weight_u"], state[f"{prefix}.weight_v"] = u, v


def random_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict for file ``name`` (flat keys; the stitching file's as ``retarget_*.mlp...``)."""
    generator = torch.Generator().manual_seed(seed + sorted(OFFICIAL_FILES).index(name))
    state = {key: _tensor(key, shape, generator) for key, shape in official_shapes()[name].items()}
    _with_power_iteration(state, generator)
    return state


def _stitching_nested(flat: dict[str, torch.Tensor], prefix: str) -> dict[str, dict[str, torch.Tensor]]:
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        nested.setdefault(part, {})[prefix + rest] = value
    return nested


def write_liveportrait_weights(
    root: Path, seed: int = 0, layout: str = "official", only: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """Write the five files (or those named in ``only``) under ``root`` and return their paths by network name.

    ``layout``: ``official`` (``.pth`` files in ``base_models/`` and ``retargeting_models/``, the stitching MLPs
    nested under ``retarget_*`` with the ``module.`` prefix of the release), or ``safetensors`` (one folder of
    ``.safetensors`` files, the stitching keys flattened as ``retarget_shoulder_module.mlp.0.weight``, as the
    common conversion does).
    """
    from safetensors.torch import save_file

    paths: dict[str, Path] = {}
    for name, relative in OFFICIAL_FILES.items():
        if only is not None and name not in only:
            continue
        state = random_state(name, seed)
        if layout == "official":
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            payload: object = _stitching_nested(state, "module.") if name.startswith("stitching") else state
            torch.save(payload, path)
        elif layout == "safetensors":
            path = root / Path(relative).with_suffix(".safetensors").name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.startswith("stitching"):
                state = {k.replace(".", "_module.", 1): v for k, v in state.items()}
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            raise ValueError(f"layout must be official or safetensors, got {layout!r}")
        paths[name] = path
    return paths
