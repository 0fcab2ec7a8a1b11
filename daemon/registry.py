"""The model registry: one runner instance per mode, loaded lazily, unloaded when idle, under memory
pressure, on a "release memory" request, and at shutdown.

Thread contract: ``use`` is entered on the worker thread (jobs) and on live-session threads; ``sweep``,
``release`` and ``readiness`` may be called from the daemon's main thread. A runner in use is never unloaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.manifest import WeightEntry, missing_weights
from models.runner import Runner
from models.torch_device import empty_accelerator_cache
from shared.errors import MODE_UNAVAILABLE, NOT_FOUND, WEIGHTS_MISSING, VfxError

from .devices import Device, device_memory, installed, system_memory

log = logging.getLogger("vfx.registry")

MemoryReader = Callable[[str], Mapping[str, tuple[int | None, int | None]]]
"""Given the device's kind, (total, available) bytes for each memory that may run short, by name."""


def read_memory(kind: str) -> dict[str, tuple[int | None, int | None]]:
    """System memory, and the accelerator's own memory when the device is not the CPU."""
    readings = {"system memory": system_memory()}
    if kind != "cpu":
        readings[f"{kind} memory"] = device_memory(kind)
    return readings


@dataclass
class _Slot:
    runner: Runner
    loaded: bool = False
    users: int = 0
    """Jobs and live sessions holding the runner right now; it is never unloaded while this is above 0."""
    loaded_at: float = 0.0
    last_used: float = 0.0
    load_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def in_use(self) -> bool:
        return self.users > 0


class ModelRegistry:
    def __init__(
        self,
        runners: dict[str, type[Runner]],
        *,
        device: Callable[[], Device],
        manifest: dict[str, WeightEntry],
        models_dir: Path,
        idle_unload_s: float = 600.0,
        min_available_fraction: float = 0.10,
        memory: MemoryReader = read_memory,
        fetch_fix: str = "python -m daemon fetch-models {mode}",
    ) -> None:
        """``fetch_fix``: the command health and submit errors name to fetch a mode's weights (``{mode}`` stands for
        the mode); the daemon passes one that works for itself (its interpreter, models folder and manifest)."""
        self._slots = {mode: _Slot(cls()) for mode, cls in runners.items()}
        for slot in self._slots.values():
            slot.runner.models_dir = models_dir
        self._device = device
        self.manifest = manifest
        self.models_dir = models_dir
        self.idle_unload_s = idle_unload_s
        self.min_available_fraction = min_available_fraction
        self._read_memory = memory
        self.fetch_fix = fetch_fix
        self._lock = threading.RLock()

    @property
    def modes(self) -> list[str]:
        return sorted(self._slots)

    def runner(self, mode: str) -> Runner:
        slot = self._slots.get(mode)
        if slot is None:
            raise VfxError(
                f"mode {mode!r} is unknown; available modes: {', '.join(self.modes)}",
                code=NOT_FOUND,
                detail={"field": "mode"},
            )
        return slot.runner

    def readiness(self, mode: str, device: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Whether ``mode`` can run now, and if not, what is missing and which command fixes it; the licences
        of its models; given the ``device`` (its ``kind`` and ``free_memory``), the runner's memory plan."""
        runner = self.runner(mode)
        packages = [p for p in runner.python_packages if not installed(p)]
        weights = missing_weights(self.manifest, runner.weights, self.models_dir)
        missing = [f"python package {p}" for p in packages] + weights
        fix = []
        if packages:
            fix.append(f"pip install {' '.join(packages)} (in the daemon's Python)")
        if weights:
            fix.append(self.fetch_fix.replace("{mode}", mode))
        options = {option: self._option_readiness(names) for option, names in runner.option_weights.items()}
        state = {"ready": not missing, "missing": missing, "fix": fix, "options": options, **runner.describe()}
        state["licences"] = self.licences(runner)
        if device is not None:
            plan = runner.memory_plan(device["kind"], device.get("free_memory"))
            if plan is not None:
                state["memory_plan"] = plan
        return state

    def licences(self, runner: Runner) -> list[dict[str, str]]:
        """``{"model", "licence"}`` of every model ``runner`` may use: the manifest's entries of its weights and
        option weights, then the models it names itself (``bundled_licences``)."""
        names = [*runner.weights, *(n for names in runner.option_weights.values() for n in names)]
        listed = [{"model": n, "licence": self.manifest[n].licence} for n in dict.fromkeys(names) if n in self.manifest]
        return listed + [{"model": m, "licence": text} for m, text in runner.bundled_licences.items()]

    def _option_readiness(self, names: tuple[str, ...]) -> dict[str, Any]:
        """Whether the weights an option needs are there; each missing entry is fetched under its own mode."""
        missing: list[str] = []
        fetch_modes: dict[str, None] = {}
        for name in names:
            problems = missing_weights(self.manifest, (name,), self.models_dir)
            missing += problems
            if problems and name in self.manifest:
                fetch_modes.update(dict.fromkeys(self.manifest[name].modes[:1]))
        return {
            "ready": not missing,
            "missing": missing,
            "fix": [self.fetch_fix.replace("{mode}", m) for m in fetch_modes],
        }

    def check_ready(self, mode: str, params: Mapping[str, Any] | None = None) -> None:
        """Raise a clear error at submit time if the mode's packages or weights are missing, or (given the job's
        validated ``params``) the weights a chosen option value needs (the runner's ``option_weights``)."""
        state = self.readiness(mode)
        if not state["ready"]:
            weights_missing = any(item.startswith("weights") for item in state["missing"])
            raise VfxError(
                f"mode {mode} is not ready: missing {'; '.join(state['missing'])}. Fix: {'; '.join(state['fix'])}",
                code=WEIGHTS_MISSING if weights_missing else MODE_UNAVAILABLE,
                detail={"missing": state["missing"], "fix": state["fix"]},
            )
        for option, option_state in state["options"].items():
            name, _, value = option.partition("=")
            if params is None or str(params.get(name)) != value or option_state["ready"]:
                continue
            raise VfxError(
                f"{option} needs weights that are missing: {'; '.join(option_state['missing'])}. Fix: "
                f"{'; '.join(option_state['fix'])}, or choose another {name}",
                code=WEIGHTS_MISSING,
                detail={"field": f"params.{name}", "missing": option_state["missing"], "fix": option_state["fix"]},
            )

    @contextmanager
    def use(self, mode: str, on_load: Callable[[], None] | None = None) -> Iterator[Runner]:
        """The loaded runner for ``mode``, held in use for the duration of the block."""
        self.runner(mode)
        self.relieve_memory_pressure(keep=mode)
        with self._lock:
            slot = self._slots[mode]
            slot.users += 1
        try:
            with slot.load_lock:  # a job and a live session starting together load once
                if not slot.loaded:
                    if on_load is not None:
                        on_load()
                    slot.runner.load(self._device())
                    slot.loaded, slot.loaded_at = True, time.time()
            yield slot.runner
        finally:
            with self._lock:
                slot.users -= 1
                slot.last_used = time.time()

    def _unload(self, mode: str) -> bool:
        slot = self._slots[mode]
        if not slot.loaded or slot.in_use:
            return False
        slot.runner.unload()
        slot.loaded = False
        return True

    def sweep(self, now: float | None = None) -> list[str]:
        """Unload runners idle for longer than ``idle_unload_s``."""
        now = time.time() if now is None else now
        with self._lock:
            idle = [m for m, s in self._slots.items() if s.loaded and now - s.last_used > self.idle_unload_s]
            return [m for m in idle if self._unload(m)]

    def relieve_memory_pressure(self, keep: str | None = None) -> list[str]:
        """Unload least recently used runners while system memory, or the accelerator's own memory, has less
        than ``min_available_fraction`` available."""
        released: list[str] = []
        with self._lock:
            candidates = sorted(
                (s.last_used, m) for m, s in self._slots.items() if s.loaded and not s.in_use and m != keep
            )
            if not candidates:
                return released
            # A runner is loaded, so the device was resolved already: asking for it again costs nothing.
            kind = getattr(self._device(), "kind", None) or "cpu"
            for _, mode in candidates:
                short = self._memory_short(kind)
                if short is None:
                    break
                if self._unload(mode):
                    log.info("%s is short: unloaded %s", short, mode)
                    released.append(mode)
                    empty_accelerator_cache()  # so the device's free memory shows what the unload gave back
        return released

    def _memory_short(self, kind: str) -> str | None:
        """The first memory below the threshold, described with its numbers; None when none is."""
        for name, (total, available) in self._read_memory(kind).items():
            if total and available is not None and available < total * self.min_available_fraction:
                return f"{name} ({available / 2**20:.0f} MiB available of {total / 2**20:.0f} MiB)"
        return None

    def release(self) -> list[str]:
        """Unload every runner not in use (the "release memory" request, and shutdown)."""
        with self._lock:
            released = [m for m in self._slots if self._unload(m)]
        if released:  # only then was a device resolved, so torch (if used) is fully imported
            empty_accelerator_cache()
        return released

    def loaded(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"mode": m, "loaded_at": s.loaded_at, "last_used": s.last_used, "in_use": s.in_use}
                for m, s in sorted(self._slots.items())
                if s.loaded
            ]
