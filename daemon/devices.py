"""Device policy: which accelerator runs the models, in which dtype, with which onnxruntime providers.

``auto`` picks CUDA, then Apple MPS, then the CPU. Torch is imported only when a device is resolved (never
when the daemon is imported), and only if it is installed; without torch the daemon runs on the CPU (the pose
mode needs no torch).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from models.torch_device import accelerator_memory
from shared.errors import VfxError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")

# fp16 halves memory and is fast on every CUDA GPU we target; bf16 is preferred where supported because it
# does not overflow in attention. MPS runs fp16 for most ops, but some (3D grid sampling, a few reductions)
# need fp32 or fall back to the CPU, so runners may ask for fp32 there. The CPU runs fp32.
DTYPE_BY_DEVICE = {"cuda": "float16", "mps": "float16", "cpu": "float32"}

ONNX_PROVIDERS_BY_DEVICE = {
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "mps": ("CoreMLExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
}


class DeviceUnavailable(VfxError):
    """The requested device does not exist here; the message says what is available."""

    code = "device_unavailable"


@dataclass
class Device:
    """The resolved device. ``total_memory``/``free_memory`` in bytes (None when unknown)."""

    kind: str
    name: str
    dtype: str
    requested: str = "auto"
    total_memory: int | None = None
    free_memory: int | None = None
    torch_version: str | None = None
    onnxruntime_version: str | None = None
    onnx_providers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cpu_name() -> str:
    return platform.processor() or platform.machine() or "CPU"


def system_memory() -> tuple[int | None, int | None]:
    """(total, available) system memory in bytes, from /proc/meminfo or sysconf; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return info.get("MemTotal"), info.get("MemAvailable")
    except (OSError, ValueError, IndexError):
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return total, None
    except (ValueError, OSError, AttributeError):
        return None, None


def device_memory(kind: str) -> tuple[int | None, int | None]:
    """(total, available) bytes of accelerator ``kind``'s memory: :func:`models.torch_device.accelerator_memory`."""
    return accelerator_memory(kind)


def pick_onnx_providers(kind: str, available: list[str]) -> list[str]:
    """The providers to use for ``kind``, in preference order, limited to those installed."""
    wanted = ONNX_PROVIDERS_BY_DEVICE[kind]
    chosen = [p for p in wanted if p in available]
    return chosen or ["CPUExecutionProvider"]


def resolve_device(requested: str = "auto") -> Device:
    """Resolve ``requested`` to a concrete device, importing torch if it is installed.

    Raises DeviceUnavailable when ``cuda`` or ``mps`` is asked for explicitly and is not usable here.
    """
    if requested not in DEVICE_CHOICES:
        raise DeviceUnavailable(f"device {requested!r} is unknown; choose one of {', '.join(DEVICE_CHOICES)}")
    if sys.platform == "darwin":
        # Ops MPS lacks run on the CPU instead of failing; must be set before torch is imported.
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    total, free = system_memory()
    device = Device(
        kind="cpu",
        name=cpu_name(),
        dtype="float32",
        requested=requested,
        total_memory=total,
        free_memory=free,
    )
    if installed("torch"):
        import torch

        device.torch_version = torch.__version__
        cuda_ok = torch.cuda.is_available()
        mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        if requested == "cuda" and not cuda_ok:
            raise DeviceUnavailable("CUDA was requested but torch sees no CUDA GPU; use --device auto or cpu")
        if requested == "mps" and not mps_ok:
            raise DeviceUnavailable("MPS was requested but this Mac has no usable Metal device; use cpu")
        if requested in ("auto", "cuda") and cuda_ok:
            free_b, total_b = torch.cuda.mem_get_info()
            bf16 = torch.cuda.is_bf16_supported()
            device.kind, device.name = "cuda", torch.cuda.get_device_name(0)
            device.dtype = "bfloat16" if bf16 else "float16"
            device.total_memory, device.free_memory = int(total_b), int(free_b)
        elif requested in ("auto", "mps") and mps_ok:
            device.kind, device.name, device.dtype = "mps", f"Apple {platform.machine()} GPU", "float16"
            device.notes.append("ops missing on MPS fall back to the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)")
    elif requested in ("cuda", "mps"):
        raise DeviceUnavailable(f"{requested} was requested but torch is not installed in the daemon's Python")
    if installed("onnxruntime"):
        import onnxruntime

        device.onnxruntime_version = onnxruntime.__version__
        device.onnx_providers = pick_onnx_providers(device.kind, onnxruntime.get_available_providers())
    return device
