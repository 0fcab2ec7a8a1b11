"""The Wan 2.1 VACE pipelines the modes share: loading, sharing between modes, placement and release.

The modes (``vace_pose``, ``vace_motion``, ``r2v``) share one loaded pipeline per model: the registry loads
and unloads runners per mode, and :func:`acquire_pipeline` counts the modes holding a pipeline, so running
pose after motion loads nothing twice and the memory goes back when the last of them unloads.

Importing this module imports neither torch nor diffusers; they are imported when a pipeline is loaded.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..torch_device import accelerator_memory, empty_accelerator_cache
from .memory import MemoryPlan

FP8_SKIPPED_LAYERS = ("pos_embed", "patch_embed", "norm", "^proj_in$", "^proj_out$", r"\.wo$")
"""Layers fp8 storage leaves in the compute dtype: diffusers' defaults (embeddings, norms, input and output
projections) and UMT5's feed-forward outputs, whose input UMT5 casts to the weight's own dtype."""


@dataclass
class LoadedPipeline:
    """A ``WanVACEPipeline`` and the modes holding it.

    ``free_at_load`` is the device's free memory in bytes before this pipeline took any (None on the CPU or
    when unknown): automatic memory plans are chosen from it. ``plan`` is the plan in force (None: still on
    the CPU as loaded).
    """

    pipe: Any
    folder: Path
    device: Any
    dtype: Any
    users: set[str]
    free_at_load: int | None = None
    plan: MemoryPlan | None = None


_PIPELINES: dict[tuple[str, str, str], LoadedPipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def acquire_pipeline(folder: Path, device: Any, user: str) -> LoadedPipeline:
    """The pipeline in ``folder`` for ``device`` (loaded on first use), now also held by ``user``."""
    from ..torch_device import torch_dtype

    dtype = torch_dtype(device)
    kind = getattr(device, "kind", None) or "cpu"
    key = (str(folder), kind, str(dtype))
    with _PIPELINES_LOCK:
        loaded = _PIPELINES.get(key)
        if loaded is None:
            free = accelerator_memory(kind)[1]
            loaded = LoadedPipeline(_load_pipeline(folder, dtype), folder, device, dtype, set(), free_at_load=free)
            _PIPELINES[key] = loaded
        loaded.users.add(user)
        return loaded


def release_pipeline(loaded: LoadedPipeline, user: str) -> None:
    """``user`` no longer holds ``loaded``; the last user's release frees it."""
    with _PIPELINES_LOCK:
        loaded.users.discard(user)
        if loaded.users:
            return
        for key, value in list(_PIPELINES.items()):
            if value is loaded:
                del _PIPELINES[key]
        loaded.pipe = None
    gc.collect()
    empty_accelerator_cache()


def _load_pipeline(folder: Path, dtype: Any) -> Any:
    """Load the pipeline on the CPU: the VAE in float32 (Wan's VAE loses detail in half precision), the
    transformer and text encoder in ``dtype``. Placement on the device happens per job (see ``place``)."""
    import torch
    from diffusers import AutoencoderKLWan, WanVACEPipeline

    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{folder / 'model_index.json'} is missing: the Wan VACE weights are not in the models folder"
        )
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
    pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def place(loaded: LoadedPipeline, plan: MemoryPlan, notes: list[str]) -> None:
    """Put the pipeline where ``plan`` wants it on the job's device (only tiling changes when the weights are
    placed as the plan wants already). Leaving fp8 storage, group or sequential offload reloads the weights
    from the folder: those cannot be undone in place (fp8 lost precision; the offload hooks own the weights)."""
    from ..torch_device import torch_device

    pipe = loaded.pipe
    previous = loaded.plan
    if previous is None or previous.placement != plan.placement:
        if previous is not None and (previous.fp8 or previous.offload in ("group", "sequential")):
            notes.append(f"memory plan changed from {previous.offload} to {plan.offload}: weights reloaded")
            loaded.pipe = pipe = None
            gc.collect()
            empty_accelerator_cache()
            loaded.pipe = pipe = _load_pipeline(loaded.folder, loaded.dtype)
        elif previous is not None and previous.offload == "model":
            pipe.remove_all_hooks()
        _apply(pipe, plan, torch_device(loaded.device), loaded.dtype)
    if plan.vae_tiling:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
    loaded.plan = plan


def _apply(pipe: Any, plan: MemoryPlan, device: Any, dtype: Any) -> None:
    import torch
    from diffusers.hooks import apply_layerwise_casting

    if plan.fp8:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        apply_layerwise_casting(pipe.text_encoder, torch.float8_e4m3fn, dtype, skip_modules_pattern=FP8_SKIPPED_LAYERS)
    if plan.offload == "none":
        pipe.to(device)
        return
    pipe.to("cpu")  # every offload starts from the weights in system memory
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "group":
        # Layer by layer (leaf level reaches inside the text encoder's stack too); the next layer is copied on
        # a CUDA stream while the current one runs. The VAE is small and stays on the device.
        pipe.enable_group_offload(
            onload_device=device,
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=device.type == "cuda",
            exclude_modules=["vae"],
        )
    else:
        pipe.enable_sequential_cpu_offload(device=device)
