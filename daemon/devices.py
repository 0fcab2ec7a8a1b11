"""Device policy: which accelerator runs the models, in which dtype, with which onnxruntime providers.

``auto`` picks CUDA, then Apple MPS, then the CPU. The daemon resolves its device with :func:`probe_device`,
in a child interpreter (``python -m daemon.devices``) that imports torch and onnxruntime, prints the answer and
exits: the daemon itself imports torch only when a mode that needs it loads (the pose mode never does), so a
pose-only daemon stays small. Without torch the daemon runs on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    """Whether ``module`` can be imported, without importing it. A module already imported counts: while another
    thread is importing it (OpenCV's loader swaps ``sys.modules["cv2"]`` during its import), ``find_spec`` would
    raise ``ValueError: cv2.__spec__ is None`` instead of answering."""
    if module in sys.modules:
        return True
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
            raise DeviceUnavailable(
                "CUDA was requested (--device cuda) but torch sees no CUDA GPU; use --device auto or --device cpu"
            )
        if requested == "mps" and not mps_ok:
            raise DeviceUnavailable(
                "MPS was requested (--device mps) but torch sees no usable Apple Metal device; "
                "use --device auto or --device cpu"
            )
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
        raise DeviceUnavailable(
            f"{requested} was requested (--device {requested}) but torch is not installed in the daemon's Python; "
            "install it or use --device cpu"
        )
    if installed("onnxruntime"):
        import onnxruntime

        device.onnxruntime_version = onnxruntime.__version__
        device.onnx_providers = pick_onnx_providers(device.kind, onnxruntime.get_available_providers())
    return device


PROBE_TIMEOUT_S = 300.0
"""A first torch import on a cold disk with CUDA can take a minute; the probe is abandoned after this."""


class DeviceProbeFailed(VfxError):
    """The child interpreter probing the devices did not answer; the message has its last words."""

    code = "device_probe_failed"


def probe_device(requested: str = "auto", timeout: float = PROBE_TIMEOUT_S) -> Device:
    """:func:`resolve_device` run in a child interpreter, so that this process imports neither torch nor
    onnxruntime for it (about 250 MB and 1 to 3 s of CPU that a pose-only daemon never needs).

    Raises DeviceUnavailable as :func:`resolve_device` does, and DeviceProbeFailed when the child crashes or
    takes longer than ``timeout`` seconds.
    """
    if requested not in DEVICE_CHOICES:
        raise DeviceUnavailable(f"device {requested!r} is unknown; choose one of {', '.join(DEVICE_CHOICES)}")
    if sys.platform == "darwin":
        # Ops MPS lacks run on the CPU instead of failing; must be set before torch is imported here, later.
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    root = Path(__file__).resolve().parents[1]  # where ``daemon`` is importable from
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "daemon.devices", requested],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DeviceProbeFailed(f"the device probe took more than {timeout:.0f} s (importing torch)") from exc
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if done.returncode != 0 or not isinstance(answer, dict):
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DeviceProbeFailed(f"the device probe exited {done.returncode}: {last}")
    if "unavailable" in answer:
        raise DeviceUnavailable(answer["unavailable"])
    return Device(**answer)


def _probe_main(argv: list[str]) -> int:
    """The child side of :func:`probe_device`: one JSON line, the device or why it is unavailable."""
    try:
        answer = resolve_device(argv[0] if argv else "auto").describe()
    except DeviceUnavailable as exc:
        answer = {"unavailable": str(exc)}
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
