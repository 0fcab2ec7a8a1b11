"""The input-spec format: how a job or a live session names its media, as plain data on the wire.

One parser for every reader (the engine at submit, the media layer that opens the files, live sessions through
it). It checks the form and the types of the values only; whether a file exists or a blob was uploaded is the
daemon's business (:mod:`daemon.job_inputs`). Forms (keys marked ``?`` are optional):

- ``{"path": str, "frame_start"?: int, "frame_end"?: int, "step"?: int}``: a video file, or one image;
- ``{"paths": [str, ...], "fps"?: float}``: an image sequence;
- ``{"blob": sha256, "fps"?: float}``: frames uploaded with ``upload`` (on the wire only);
- ``{"array": frames, "fps"?: float}``: frames in memory (inside the daemon only, once a blob is loaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput

OPTIONS = {
    "path": ("frame_start", "frame_end", "step"),
    "paths": ("fps",),
    "blob": ("fps",),
    "array": ("fps",),
}
"""Each form's key and the optional keys it takes."""
WIRE_FORMS = ("path", "paths", "blob")
"""The forms a client may send."""
MEDIA_FORMS = ("path", "paths", "array")
"""The forms the media layer opens (a blob is loaded into an array first)."""
DEFAULT_FPS = 24.0
"""Frame rate of an image sequence or frames that do not say."""


@dataclass(frozen=True)
class InputSpec:
    """One parsed input. ``form`` is the key that named it; ``value`` is the path (str), the paths (list of
    str), the blob id (str) or the frames (an array, checked by the media layer). ``frame_end`` None: to the
    end; ``fps`` applies to the forms that take it."""

    name: str
    form: str
    value: Any
    frame_start: int = 0
    frame_end: int | None = None
    step: int = 1
    fps: float = DEFAULT_FPS


def _listed(forms: Sequence[str]) -> str:
    quoted = [f"'{form}'" for form in forms]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def parse_input(name: str, spec: Any, forms: Sequence[str] = WIRE_FORMS) -> InputSpec:
    """Read input ``name``'s spec, accepting ``forms``. Raises :class:`InvalidInput` (``field == name``) for
    another form, unknown keys or values of the wrong type, saying what is allowed."""
    if not isinstance(spec, Mapping):
        raise InvalidInput(name, f"must be a mapping with {_listed(forms)}, got {type(spec).__name__}")
    found = [form for form in forms if form in spec]
    if len(found) != 1:
        keys = ", ".join(sorted(map(str, spec))) or "nothing"
        raise InvalidInput(name, f"needs exactly one of {_listed(forms)}, got {keys}")
    form = found[0]
    options = OPTIONS[form]
    unknown = sorted(str(key) for key in spec if key != form and key not in options)
    if unknown:
        allowed = ", ".join((form, *options))
        raise InvalidInput(name, f"unknown keys {', '.join(unknown)} for a '{form}' input (allowed: {allowed})")
    value = spec[form]
    if form == "path":
        frame_end = spec.get("frame_end")
        return InputSpec(
            name,
            form,
            _path_value(name, "path", value),
            frame_start=_int_value(name, "frame_start", spec.get("frame_start", 0)),
            frame_end=None if frame_end is None else _int_value(name, "frame_end", frame_end),
            step=_int_value(name, "step", spec.get("step", 1)),
        )
    if form == "paths":
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InvalidInput(name, f"paths must be a list of image file paths, got {type(value).__name__}")
        value = [_path_value(name, f"paths[{i}]", p) for i, p in enumerate(value)]
    elif form == "blob" and not isinstance(value, str):
        raise InvalidInput(name, f"blob must be the sha256 an upload returned, got {value!r}")
    return InputSpec(name, form, value, fps=_fps_value(name, spec))


def _path_value(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(name, f"{key} must be a non-empty file path, got {value!r}")
    return value


def _int_value(name: str, key: str, value: Any) -> int:
    # bool is an int subclass; True as a frame number is always a mistake on the client side.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"{key} must be a whole number of frames, got {value!r}")
    return value


def _fps_value(name: str, spec: Mapping[str, Any]) -> float:
    fps = spec.get("fps", DEFAULT_FPS)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < float("inf"):
        raise InvalidInput(name, f"fps must be a positive number of frames per second, got {fps!r}")
    return float(fps)
