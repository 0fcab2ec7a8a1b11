"""Turning a job's input specs (plain data from the wire) into :class:`models.runner.Media`.

Used at submit time, to refuse an undecodable file or an empty frame range before the job is queued, and
again by the worker that runs the job and by live sessions. Opening reads metadata only (a video's frame
count and size, the first image of a sequence); frames are decoded when a runner iterates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.runner import InvalidInput, Media

from .blobs import BlobStore


def open_inputs(blobs: BlobStore, specs: Mapping[str, Any]) -> dict[str, Media]:
    """Open every input of ``specs``. Raises :class:`InvalidInput` naming the input (``field`` is its name)
    when a spec is malformed, a file cannot be decoded, or a blob was never uploaded."""
    from models.media import open_media

    media: dict[str, Media] = {}
    for name, spec in specs.items():
        if not isinstance(spec, dict):
            raise InvalidInput(name, "must be a map such as {'path': '/abs/file.png'}")
        if "blob" in spec:
            if not isinstance(spec["blob"], str) or not blobs.has(spec["blob"]):
                raise InvalidInput(name, f"blob {spec['blob']!r} was never uploaded; upload it first")
            unknown = sorted(str(key) for key in spec if key not in ("blob", "fps"))
            if unknown:
                raise InvalidInput(name, f"unknown keys {', '.join(unknown)} for a 'blob' input (allowed: blob, fps)")
            array = blobs.load(spec["blob"])  # memory-mapped: opening it reads the header only
            frames = array[np.newaxis] if array.ndim == 3 else array
            spec = {"array": frames, "fps": spec.get("fps", 24.0)}
        media[name] = open_media(name, spec)
    return media
