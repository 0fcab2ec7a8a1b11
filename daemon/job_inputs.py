"""Turning a job's input specs (plain data from the wire, :mod:`shared.inputs`) into :class:`models.runner.Media`.

Used at submit time, to refuse an undecodable file or an empty frame range before the job is queued, and
again by the worker that runs the job and by live sessions. Opening reads metadata only (a video's frame
count and size, the first image of a sequence); frames are decoded when a runner iterates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.runner import InvalidInput, Media
from shared.inputs import WIRE_FORMS, parse_input

from .blobs import BlobStore


def open_inputs(blobs: BlobStore, specs: Mapping[str, Any]) -> dict[str, Media]:
    """Open every input of ``specs`` (:mod:`shared.inputs` forms). Raises :class:`InvalidInput` naming the input
    (``field`` is its name) when a spec is malformed, a file cannot be decoded, or a blob was never uploaded."""
    from models.media import open_media

    media: dict[str, Media] = {}
    for name, spec in specs.items():
        parsed = parse_input(name, spec, WIRE_FORMS)
        if parsed.form == "blob":
            if not blobs.has(parsed.value):
                raise InvalidInput(name, f"blob {parsed.value!r} was never uploaded; upload it first")
            array = blobs.load(parsed.value)  # memory-mapped: opening it reads the header only
            frames = array[np.newaxis] if array.ndim == 3 else array
            spec = {"array": frames, "fps": parsed.fps}
        media[name] = open_media(name, spec)
    return media
