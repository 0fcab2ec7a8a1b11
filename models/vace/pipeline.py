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

from ..torch_device import empty_accelerator_cache


@dataclass
class LoadedPipeline:
    """A ``WanVACEPipeline`` and the modes holding it. ``placement`` is the offload mode in force."""

    pipe: Any
    device: Any
    dtype: Any
    users: set[str]
    placement: str | None = None


_PIPELINES: dict[tuple[str, str, str], LoadedPipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def acquire_pipeline(folder: Path, device: Any, user: str) -> LoadedPipeline:
    """The pipeline in ``folder`` for ``device`` (loaded on first use), now also held by ``user``."""
    from ..torch_device import torch_dtype

    dtype = torch_dtype(device)
    key = (str(folder), getattr(device, "kind", None) or "cpu", str(dtype))
    with _PIPELINES_LOCK:
        loaded = _PIPELINES.get(key)
        if loaded is None:
            loaded = LoadedPipeline(pipe=_load_pipeline(folder, dtype), device=device, dtype=dtype, users=set())
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
        if loaded.placement not in (None, "none"):
            loaded.pipe.remove_all_hooks()
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


def place(loaded: LoadedPipeline, offload: str, notes: list[str]) -> None:
    """Put the pipeline where ``offload`` wants it on the job's device (a no-op when it is already there)."""
    from ..torch_device import torch_device

    kind = getattr(loaded.device, "kind", None) or "cpu"
    target = offload
    if kind == "cpu" and offload != "none":
        notes.append(f"offload={offload} has no effect on the CPU; the models stay in memory")
        target = "none"
    if loaded.placement == target:
        return
    pipe = loaded.pipe
    device = torch_device(loaded.device)
    if loaded.placement not in (None, "none"):
        pipe.remove_all_hooks()
    if target == "none":
        pipe.to(device)
    elif target == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    loaded.placement = target
