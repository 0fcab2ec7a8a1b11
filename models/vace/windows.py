"""Long sequences in windows: the window plan, 4k+1 frame counts and the cross-fade that joins windows.

Long sequences. Wan generates windows of 4k+1 frames (81 at its native length). A sequence longer than
``window_frames`` is generated in overlapping windows. Each window after the first starts with
``chunk_overlap`` frames (or a few more, for the last window) that the previous window already made: they
go into the pipeline as conditioning video with a black mask (VACE keeps masked-out frames and generates the
rest), so the new window continues the motion, lighting and identity of the last one. Its regenerated copy
of those frames is then cross-faded with the previous copy, with weights ramping linearly across the
overlap, so neither a jump nor a hard cut remains at the join. Every window also gets the same reference
images, which anchor the subject's look for the whole sequence.

Frame counts. A window must have 4k+1 frames. A request that fits one window but is not 4k+1 frames long is
generated with the next 4k+1 count (the control's last frame repeated) and the extra frames are dropped, so
the output has exactly the frames asked for; the summary and the job log say so. Longer sequences need no
rounding: the last window is moved back so that it ends on the last frame.

The runner that drives the windows is :class:`models.vace.runner.WanVaceRunner`. Importing this module imports
neither torch nor diffusers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TEMPORAL_STRIDE = 4
"""The VAE compresses 4 frames into one latent frame after the first, hence the 4k+1 frame counts."""


def is_4k_plus_1(count: int) -> bool:
    return count >= 1 and (count - 1) % TEMPORAL_STRIDE == 0


def round_up_4k_plus_1(count: int) -> int:
    """The smallest 4k+1 frame count that holds ``count`` frames."""
    return max(1, math.ceil((count - 1) / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1)


@dataclass(frozen=True)
class Window:
    """Frames ``start .. start + length`` of the sequence; the first ``context`` of them were made before."""

    start: int
    length: int
    context: int

    @property
    def end(self) -> int:
        return self.start + self.length


def plan_windows(total: int, window: int, overlap: int) -> list[Window]:
    """Windows of 4k+1 frames covering frames ``0 .. total``, each after the first overlapping its predecessor.

    ``window`` and ``overlap`` are 4k+1 frame counts with ``overlap < window``. A sequence that fits one
    window gets one window of ``round_up_4k_plus_1(total)`` frames (it may run past ``total``). Otherwise the
    windows step by ``window - overlap``; the last one is shortened to the 4k+1 count that reaches ``total``
    and moved back to end exactly there, which can only lengthen its overlap.
    """
    if total <= window:
        return [Window(0, round_up_4k_plus_1(total), 0)]
    windows = [Window(0, window, 0)]
    while windows[-1].end < total:
        previous = windows[-1]
        start = previous.end - overlap
        if start + window >= total:
            length = round_up_4k_plus_1(total - start)
            start = total - length
            windows.append(Window(start, length, previous.end - start))
        else:
            windows.append(Window(start, window, overlap))
    return windows


def join_window(pending: dict[int, np.ndarray], window: Window, generated: np.ndarray) -> None:
    """Merge one window's frames (float 0..1, (length, H, W, 3)) into ``pending`` (uint8 frames by index).

    The first ``window.context`` frames are cross-faded with what ``pending`` already holds: the new copy's
    weight rises linearly from 1/(context+1) to context/(context+1) across the overlap, so the sequence
    passes from the old window to the new one without a step.
    """
    for offset in range(window.length):
        frame_index = window.start + offset
        new = generated[offset].astype(np.float32) * 255.0
        if offset < window.context:
            weight = (offset + 1) / (window.context + 1)
            new = (1.0 - weight) * pending[frame_index].astype(np.float32) + weight * new
        pending[frame_index] = np.clip(np.rint(new), 0, 255).astype(np.uint8)
