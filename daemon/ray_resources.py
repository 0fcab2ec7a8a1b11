"""What a mode's Ray actor asks the cluster for: CPUs, GPUs (a fraction where several fit on one GPU),
memory, and custom resources. Built-in defaults per mode, overridden per mode by a TOML file
(``serve --ray-resources FILE``)::

    [vace_pose]            # every key optional; a table replaces the mode's default entirely
    num_gpus = 1
    memory_gb = 20
    [face_swap]
    num_gpus = 0.25
    [default]              # modes without a table of their own (plugins)
    num_cpus = 1
    resources = { render_node = 1 }

Plain data only: the bridge process turns a request into Ray actor options.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import INVALID_INPUT, VfxError

GIB = 2**30


@dataclass(frozen=True)
class ResourceRequest:
    """One actor's reservation. ``memory_gb`` is system memory in GiB (0: no reservation)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_gb: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)

    def actor_options(self) -> dict[str, Any]:
        """Keyword arguments for Ray's ``ActorClass.options``."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_gb:
            options["memory"] = int(self.memory_gb * GIB)
        if self.resources:
            options["resources"] = dict(self.resources)
        return options

    def as_resources(self) -> dict[str, float]:
        """The request in Ray's resource names (``CPU``, ``GPU``, ``memory`` in bytes, custom names)."""
        wanted = {"CPU": self.num_cpus, "GPU": self.num_gpus, "memory": self.memory_gb * GIB, **self.resources}
        return {name: amount for name, amount in wanted.items() if amount}

    def describe(self) -> dict[str, Any]:
        return asdict(self)


_VACE_1_3B = ResourceRequest(num_cpus=1, num_gpus=1, memory_gb=16)
_VACE_14B = ResourceRequest(num_cpus=1, num_gpus=1, memory_gb=48)

DEFAULT_REQUESTS: dict[str, ResourceRequest] = {
    "pose": ResourceRequest(num_cpus=1),  # MediaPipe runs on the CPU
    "face_swap": ResourceRequest(num_cpus=1, num_gpus=0.25, memory_gb=4),  # ~1-2 GB of GPU memory: 4 per GPU
    "liveportrait": ResourceRequest(num_cpus=1, num_gpus=0.25, memory_gb=4),
    "vace_pose": _VACE_1_3B,
    "vace_motion": _VACE_1_3B,
    "r2v": _VACE_1_3B,
    "vace_pose_14b": _VACE_14B,
    "vace_motion_14b": _VACE_14B,
    "r2v_14b": _VACE_14B,
    "default": ResourceRequest(num_cpus=1),
}


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise VfxError(
            f"{path}: {where} must be a number, 0 or more, got {value!r}",
            code=INVALID_INPUT,
            detail={"field": where},
        )
    return float(value)


def load_requests(path: Path | None) -> dict[str, ResourceRequest]:
    """The defaults, with the tables of the TOML file at ``path`` (if any) replacing their modes' entries.
    Raises :class:`VfxError` naming the file and the key for anything malformed."""
    requests = dict(DEFAULT_REQUESTS)
    if path is None:
        return requests
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise VfxError(
            f"--ray-resources {path}: {exc}", code=INVALID_INPUT, detail={"field": "ray_resources"}
        ) from None
    for mode, table in tables.items():
        if not isinstance(table, dict):
            raise VfxError(
                f"{path}: {mode} must be a table such as [{mode}] with num_cpus, num_gpus, memory_gb, resources",
                code=INVALID_INPUT,
                detail={"field": mode},
            )
        unknown = sorted(set(table) - {"num_cpus", "num_gpus", "memory_gb", "resources"})
        if unknown:
            raise VfxError(
                f"{path}: [{mode}] has unknown keys {', '.join(unknown)} (allowed: num_cpus, num_gpus, memory_gb, "
                "resources)",
                code=INVALID_INPUT,
                detail={"field": f"{mode}.{unknown[0]}"},
            )
        custom = table.get("resources", {})
        if not isinstance(custom, dict):
            raise VfxError(
                f"{path}: {mode}.resources must be a table of name = amount",
                code=INVALID_INPUT,
                detail={"field": f"{mode}.resources"},
            )
        requests[mode] = ResourceRequest(
            num_cpus=_number(path, f"{mode}.num_cpus", table.get("num_cpus", 1)),
            num_gpus=_number(path, f"{mode}.num_gpus", table.get("num_gpus", 0)),
            memory_gb=_number(path, f"{mode}.memory_gb", table.get("memory_gb", 0)),
            resources={str(k): _number(path, f"{mode}.resources.{k}", v) for k, v in custom.items()},
        )
    return requests


def request_for(requests: dict[str, ResourceRequest], mode: str) -> ResourceRequest:
    return requests.get(mode) or requests["default"]
