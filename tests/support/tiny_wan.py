"""A tiny Wan 2.1 VACE pipeline in the official diffusers layout, built offline for tests and benchmarks.

The components have the dimensions diffusers' own WanVACEPipeline tests use (an 8x-spatial, 4x-temporal VAE
of base width 3, a 3-layer transformer of width 24 with VACE blocks at layers 0 and 2), a 2-layer UMT5 text
encoder of width 32 and a Unigram tokenizer trained here with the ``tokenizers`` library. The official
tokenizer is a SentencePiece Unigram model loaded as ``T5TokenizerFast``, and that class (in transformers 5)
only loads Unigram vocabularies, so a word-level vocabulary would need another tokenizer class and another
loading path than the real weights.

:func:`build_tiny_wan_vace` writes every file of the official ``Wan-AI/Wan2.1-VACE-1.3B-diffusers``
repository that the runners need, under the same names: the text encoder in 3 shards and the transformer in
2, with their index files, as the official repository has them. Weights are random but seeded, so two builds
give identical files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_SENTENCES = (
    "a dancer spins on a bright stage",
    "a person walks through the park in the rain",
    "a red robot waves at the camera",
    "blurry low quality distorted static watermark text",
)
"""What the tiny tokenizer learns its vocabulary from; prompts outside it still tokenize (character pieces)."""

TEXT_ENCODER_SHARDS = 3
TRANSFORMER_SHARDS = 2
"""Shard counts of the official Wan2.1-VACE-1.3B-diffusers text encoder and transformer."""


def build_tiny_wan_vace(folder: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it into ``folder`` (replaced if present).

    Returns ``folder``. Takes a few seconds on two CPU cores.
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from diffusers.utils import logging as diffusers_logging
    from transformers import UMT5Config, UMT5EncoderModel
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    tokenizer = _train_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        vace_layers=[0, 2],
        vace_in_channels=96,
    )
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    _reshard(text_encoder, folder / "text_encoder", TEXT_ENCODER_SHARDS)
    _reshard(transformer, folder / "transformer", TRANSFORMER_SHARDS)
    _write_special_tokens_map(folder / "tokenizer", tokenizer)
    _name_tokenizer_class_as_official(folder / "model_index.json")
    return folder


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(list(TOKENIZER_SENTENCES) * 4, trainer)
    return T5TokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def _reshard(model, folder: Path, shards: int) -> None:
    """Save ``model`` into ``folder`` again, split into exactly ``shards`` safetensors files plus an index."""
    import math

    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    for written in list(folder.iterdir()):
        if written.name != "config.json":
            written.unlink()
    scratch = folder.with_name(folder.name + ".shards")
    # Shard sizes are greedy over tensors of uneven size, so try limits from large to small until the count fits.
    for percent in range(min(99, 100 // shards + 40), 0, -1):
        shutil.rmtree(scratch, ignore_errors=True)
        model.save_pretrained(scratch, max_shard_size=math.ceil(total * percent / 100))
        if len(list(scratch.glob("*.safetensors"))) == shards:
            for item in scratch.iterdir():
                if item.name != "config.json":
                    item.replace(folder / item.name)
            shutil.rmtree(scratch)
            return
    shutil.rmtree(scratch, ignore_errors=True)
    raise RuntimeError(f"could not split {folder.name} into exactly {shards} shards")


def _write_special_tokens_map(folder: Path, tokenizer) -> None:
    """The official tokenizer folder holds special_tokens_map.json; transformers 5 no longer writes it."""
    path = folder / "special_tokens_map.json"
    if path.exists():
        return
    tokens = {"eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token, "unk_token": tokenizer.unk_token}
    path.write_text(json.dumps(tokens, indent=2) + "\n", encoding="utf-8")


def _name_tokenizer_class_as_official(model_index: Path) -> None:
    """transformers 5 saves ``T5Tokenizer``, an alias of ``T5TokenizerFast``; the official index names the latter."""
    index = json.loads(model_index.read_text(encoding="utf-8"))
    index["tokenizer"] = ["transformers", "T5TokenizerFast"]
    model_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(entries) -> str:
    """``entries`` (``WeightFile`` and ``WeightSnapshot`` objects) as the text of a manifest.toml."""
    from models.manifest import WeightFile

    def strings(values) -> str:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"

    lines: list[str] = []
    for item in entries:
        if isinstance(item, WeightFile):
            lines += ["[[file]]", f"name = {_toml_string(item.name)}", f"modes = {strings(item.modes)}"]
            lines += [f"path = {_toml_string(item.path)}", f"url = {_toml_string(item.url)}", f"size = {item.size}"]
            lines += [f'sha256 = "{item.sha256}"', f"licence = {_toml_string(item.licence)}", ""]
            continue
        lines += ["[[snapshot]]", f"name = {_toml_string(item.name)}", f"modes = {strings(item.modes)}"]
        lines += [f"path = {_toml_string(item.path)}", f"hub_repo = {_toml_string(item.hub_repo)}"]
        lines += [f"revision = {_toml_string(item.revision)}", f"licence = {_toml_string(item.licence)}"]
        lines += [f"files = {strings(item.files)}", ""]
        for pin in item.pins:
            lines += ["[[snapshot.pin]]", f"path = {_toml_string(pin.path)}", f"size = {pin.size}"]
            lines += [f'sha256 = "{pin.sha256}"', ""]
    return "\n".join(lines)


def write_tiny_manifest(path: Path, models_dir: Path) -> None:
    """A manifest for a daemon whose ``models_dir`` holds the tiny pipeline (``build_tiny_wan_vace`` into
    ``models_dir / WAN_VACE_1_3B.folder``): the real 1.3B ``[[snapshot]]`` entry (name, modes, folder, repository,
    revision, files) without its pins (they pin the real files), plus the real manifest's other entries unchanged
    (so the 14B modes stay "missing weights", as on a machine that fetched only the 1.3B model). The depth model's
    entry is treated like the 1.3B one when ``models_dir`` holds the tiny depth model too (``support/tiny_depth.py``
    into ``models_dir / DEPTH_FOLDER``). Also writes each such snapshot's lock into its folder, with the tiny files'
    sizes and sha256, as ``fetch-models`` does once it has verified a download."""
    import dataclasses

    from models.manifest import MANIFEST_PATH, WeightSnapshot, load_manifest
    from models.vace.depth import DEPTH_FOLDER, DEPTH_REPOSITORY
    from models.vace.runner import WAN_VACE_1_3B

    tiny_names = {*WAN_VACE_1_3B.weights}
    if (Path(models_dir) / DEPTH_FOLDER).is_dir():
        tiny_names.add(DEPTH_REPOSITORY)
    entries = []
    for entry in load_manifest(MANIFEST_PATH).values():
        if entry.name in tiny_names:
            assert isinstance(entry, WeightSnapshot)
            entry = dataclasses.replace(entry, pins=())
            lock_as_fetched(entry, Path(models_dir))
        entries.append(entry)
    Path(path).write_text(manifest_text(entries), encoding="utf-8")


def lock_as_fetched(snapshot, models_dir: Path) -> None:
    """Write ``snapshot``'s lock into its folder for the files there, as ``fetch-models`` does after verifying."""
    import hashlib

    from models.manifest import LockedFile, SnapshotLock

    folder = snapshot.location(models_dir)
    locked = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = file.relative_to(folder).as_posix()
        if snapshot.selects(relative):
            data = file.read_bytes()
            locked.append(LockedFile(path=relative, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
    SnapshotLock(
        hub_repo=snapshot.hub_repo,
        revision=snapshot.revision,
        commit=snapshot.revision,
        endpoint="built by tests/support",
        files=tuple(locked),
    ).write(snapshot.lock_path(models_dir))
