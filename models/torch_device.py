"""Turn the daemon's device description into torch objects. Imported by runners inside ``load``/``run`` only.

The daemon resolves the device (``daemon/devices.py``) and hands runners a plain description with ``kind``
(cuda, mps, cpu) and ``dtype`` (a torch dtype name). Runners that know an op misbehaves in half precision on
a device ask for ``float32`` there with ``allow_half=False``.
"""

from __future__ import annotations

import sys
from typing import Any


def torch_device(device: Any) -> Any:
    import torch

    kind = getattr(device, "kind", None) or "cpu"
    return torch.device("cuda:0" if kind == "cuda" else kind)


def torch_dtype(device: Any, allow_half: bool = True) -> Any:
    """The dtype the device policy chose, or float32 when ``allow_half`` is False or nothing was chosen."""
    import torch

    name = getattr(device, "dtype", None) or "float32"
    if not allow_half:
        return torch.float32
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(name, torch.float32)


def onnx_providers(device: Any) -> list[str]:
    """onnxruntime providers in preference order (CUDA / CoreML / CPU), as the daemon chose them."""
    providers = list(getattr(device, "onnx_providers", None) or [])
    return providers or ["CPUExecutionProvider"]


def empty_accelerator_cache() -> None:
    """Give the memory torch keeps cached on CUDA and Apple MPS back to the driver. Does nothing when torch has
    not been imported (never imports it: the daemon calls this after unloading any model, torch-based or not)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def accelerator_memory(kind: str) -> tuple[int | None, int | None]:
    """(total, available) bytes of accelerator ``kind``'s memory; (None, None) for the CPU, or when unknown.

    Read from torch only if it is already imported (a runner loaded models): never imported for this. CUDA:
    the driver's free memory plus what torch's caching allocator holds unused (torch hands that out first).
    MPS: the recommended working-set size less what torch has allocated, where this torch has both calls.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None, None
    if kind == "cuda" and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return int(total), int(free + cached)
    if kind != "mps" or not torch.backends.mps.is_available():
        return None, None
    recommended = getattr(torch.mps, "recommended_max_memory", None)
    allocated = getattr(torch.mps, "current_allocated_memory", None)
    if recommended is None or allocated is None:
        return None, None
    total = int(recommended())
    return total, max(total - int(allocated()), 0)
