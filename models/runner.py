"""The contract between the daemon and a mode's runner.

A runner knows nothing of sockets or SQLite. The daemon validates a job's parameters against the runner's
``params`` schema and resolves its media inputs before calling :meth:`Runner.run` on a worker thread, with a
:class:`RunContext` for progress, previews and cooperative cancel.

Lifecycle (owned by the daemon's model registry):
``Runner()`` is cheap and imports nothing heavy. ``load(device)`` does the heavy imports and loads weights;
``run`` may be called many times after one ``load``; ``unload`` frees memory and must leave the runner
loadable again. The registry never calls two of them at once; ``load`` and ``run`` happen on the worker
thread, ``unload`` may come from the daemon's main thread (idle unload, "release memory").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from shared.errors import InvalidInput

from .frame_writer import encode_png, frame_path, store_atomically

__all__ = ["InvalidInput"]  # defined with the other wire errors; runners import it from here


class JobCancelled(Exception):
    """Raised by :meth:`RunContext.raise_if_cancelled` to unwind a runner after a cancel request."""


@dataclass(frozen=True)
class Param:
    """One job parameter: its type, default and bounds. ``kind`` is int, float, str, bool or choice."""

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise :class:`InvalidInput`."""
        if value is None:
            if self.required:
                raise InvalidInput(self.name, "is required")
            return self.default
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidInput(self.name, f"must be true or false, got {value!r}")
            return value
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(self.name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidInput(self.name, f"must be a finite number, got {value!r}")
            if self.kind == "int":
                if float(value) != int(value):
                    raise InvalidInput(self.name, f"must be a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            if self.minimum is not None and value < self.minimum:
                raise InvalidInput(self.name, f"must be at least {self.minimum}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise InvalidInput(self.name, f"must be at most {self.maximum}, got {value}")
            return value
        if self.kind in ("str", "choice"):
            if not isinstance(value, str):
                raise InvalidInput(self.name, f"must be text, got {value!r}")
            if self.kind == "choice" and value not in self.choices:
                raise InvalidInput(self.name, f"must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        raise InvalidInput(self.name, f"has an unknown kind {self.kind!r} (a bug in the runner)")

    def describe(self) -> dict[str, Any]:
        """Plain data for clients that build a UI from the schema."""
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices),
            "required": self.required,
            "help": self.help,
        }


@dataclass(frozen=True)
class MediaSlot:
    """A media input a runner takes. ``kind`` is ``video`` (frames) or ``image`` (one frame)."""

    name: str
    kind: str
    required: bool = True
    help: str = ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "required": self.required, "help": self.help}


def validate_params(schema: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against ``schema``: unknown names are refused, defaults filled in."""
    known = {p.name for p in schema}
    for name in values:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise InvalidInput(str(name), f"is not a parameter of this mode (allowed: {allowed})")
    return {p.name: p.validate(values.get(p.name)) for p in schema}


class Media(Protocol):
    """Frames of one input, decoded lazily. Frames are RGB ``uint8`` arrays of shape (height, width, 3)."""

    @property
    def frame_count(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        ...

    def frames(self, on_decoded: Callable[[np.ndarray], object] | None = None) -> Iterator[np.ndarray]:
        """The frames in order. ``on_decoded``, if given, is called with each frame before it is yielded; files
        call it on their decoding thread as the frame is decoded, so work that needs only the frame (finding shot
        cuts) runs ahead of the consumer, by as many frames as wait for it."""
        ...


class RunContext(Protocol):
    """What a running job may do besides computing. Called from the worker thread only."""

    output_dir: Path
    device: Any

    def progress(self, fraction: float, stage: str, preview: np.ndarray | None = None) -> None:
        """Report progress: ``fraction`` in 0..1, a short ``stage`` label, an optional RGB preview frame."""
        ...

    def cancelled(self) -> bool: ...

    def raise_if_cancelled(self) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class RunResult:
    """What a run produced.

    ``summary`` is small plain data (msgpack types only) shown to the user. ``arrays`` are numeric results
    (float32, int32, uint8, bool ...) the client can fetch. ``frame_count`` counts the images the runner
    wrote into ``output_dir / "frames"`` (named ``000000.png`` upward); 0 when it wrote none.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    frame_count: int = 0


@dataclass
class LiveResult:
    """What a live processor made of one frame: small plain ``data`` and numeric ``arrays`` (an RGB frame for
    generative live modes, landmarks for live pose)."""

    data: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class LiveProcessor(ABC):
    """The per-session state of a live mode (a tracking graph, a source face ...).

    Created by :meth:`Runner.start_live` on the session's inference thread, after the runner is loaded; all
    its methods run on that thread.
    """

    @abstractmethod
    def process(self, frame: np.ndarray, timestamp_s: float) -> LiveResult:
        """Process one RGB uint8 frame captured at ``timestamp_s`` (seconds, increasing)."""

    def update(self, params: Mapping[str, Any]) -> None:  # noqa: B027 - processors without options ignore it
        """Apply changed options (already validated against ``live_params``) while running."""

    def close(self) -> None:  # noqa: B027 - processors without resources need no close
        """Release what the session held."""


class Runner(ABC):
    """One mode. Subclasses set the class attributes and implement ``load``, ``run`` and ``unload``."""

    mode: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    inputs: ClassVar[tuple[MediaSlot, ...]] = ()
    python_packages: ClassVar[tuple[str, ...]] = ()
    """Import names the runner needs (checked with ``importlib.util.find_spec``, nothing is imported)."""
    weights: ClassVar[tuple[str, ...]] = ()
    """Names of manifest files (``models/manifest.toml``) the runner needs on disk."""
    option_weights: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Manifest entries that one parameter value needs beyond ``weights`` (``{"control=depth": (...)}``):
    the mode is ready without them; that value is refused, naming them, until they are fetched."""
    models_dir: Path = Path("models")
    """The folder the manifest's ``path`` entries are relative to. Set by the daemon before ``load``."""
    bundled_licences: ClassVar[dict[str, str]] = {}
    """Model -> licence for models the runner uses that the manifest does not list (shipped inside a package,
    or supplied by the user); ``health`` lists them with the manifest's licences of ``weights``."""

    live_params: ClassVar[tuple[Param, ...] | None] = None
    """Options of the mode's live variant (camera in, results streamed); None when it has none."""

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate parameters before the job is queued. Override to add checks across fields."""
        return validate_params(self.params, params)

    def check_media(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> None:  # noqa: B027
        """Checks across parameters and the opened inputs (frame counts, sizes), made before the job is
        queued; raise :class:`InvalidInput` naming the input (or ``params.<name>``). Nothing is decoded yet.
        Runners whose parameters fit any media have nothing to check."""

    def validate_live(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate live options (at start and on every change). Override to add checks across fields."""
        if self.live_params is None:
            raise InvalidInput("mode", f"{self.mode} has no live variant")
        return validate_params(self.live_params, params)

    def start_live(self, params: Mapping[str, Any], inputs: Mapping[str, Media]) -> LiveProcessor:
        """A processor for one live session; ``params`` are validated against ``live_params``."""
        raise InvalidInput("mode", f"{self.mode} has no live variant")

    @abstractmethod
    def load(self, device: Any) -> None:
        """Import heavy libraries and load weights onto ``device``. Called on the worker thread."""

    @abstractmethod
    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        """Compute the job. Write frames with :class:`models.frame_writer.FrameWriter` (or :func:`write_frame`);
        poll ``ctx.cancelled()`` often."""

    def unload(self) -> None:  # noqa: B027 - runners without resources need no unload
        """Free memory; the runner must be loadable again afterwards."""

    def memory_plan(self, kind: str, free_memory: int | None) -> dict[str, Any] | None:
        """For ``health``: how the runner places its models on a ``kind`` device with ``free_memory`` bytes
        free (or the placement in force once loaded); None when it has no choice to make."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "mode": cls.mode,
            "description": cls.description,
            "params": [p.describe() for p in cls.params],
            "inputs": [m.describe() for m in cls.inputs],
            "live": None if cls.live_params is None else [p.describe() for p in cls.live_params],
        }


def write_frame(output_dir: Path, index: int, rgb: np.ndarray) -> Path:
    """Write one RGB uint8 frame as PNG atomically (a temporary name, then rename), on the calling thread. A
    runner writing many frames uses :class:`models.frame_writer.FrameWriter`, which does this off its thread."""
    path = frame_path(output_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    store_atomically(path, encode_png(rgb))
    return path
