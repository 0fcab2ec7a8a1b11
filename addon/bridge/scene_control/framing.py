"""Sizes and frame counts of a shot sent to Wan 2.1 VACE, following the model's rules.

Sizes: width and height are multiples of 16, chosen for the camera's aspect at the quality preset's pixel area
exactly as the daemon chooses them for a strip (``models.vace.runner.size_for_aspect``; a test holds the two equal). The
rounding makes the generation aspect differ slightly from the camera's, so a pass is rendered at the smallest
size of the camera's aspect that covers the generation size and its centre is cropped to it (no borders, no
distortion), as the daemon fits any other strip.

Frames: the shot's frames are sent one for one; Wan makes windows of 4k+1 frames, so a count that is not 4k+1 is
generated with the next one and the extra frames are dropped by the daemon (:func:`frame_notes` says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SIZE_MULTIPLE = 16
TEMPORAL_STRIDE = 4
QUALITY_AREAS = {"draft": 480 * 272, "standard": 832 * 480, "high": 832 * 480}
"""Pixel area of each quality preset of the 1.3B modes (``models.vace.runner.QUALITY_PRESETS``)."""


def round_to_multiple(value: float, multiple: int = SIZE_MULTIPLE) -> int:
    return max(multiple, round(value / multiple) * multiple)


def generation_size(aspect: float, area: int) -> tuple[int, int]:
    """(width, height), multiples of 16, of about ``area`` pixels with ``aspect`` = width / height."""
    if not aspect > 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    height = math.sqrt(area / aspect)
    return round_to_multiple(height * aspect), round_to_multiple(height)


@dataclass(frozen=True)
class Framing:
    """How a camera's frame becomes the generation frame.

    The pass is rendered at ``render_size`` (the camera's aspect, square pixels) and pixels
    ``[left, left + width) x [top, top + height)`` of it are kept.
    """

    width: int
    height: int
    render_size: tuple[int, int]
    left: int
    top: int

    @property
    def cropped(self) -> bool:
        return self.render_size != (self.width, self.height)

    def describe(self) -> str:
        """The framing in words, for reports and the strip."""
        render_width, render_height = self.render_size
        if not self.cropped:
            return f"{self.width}x{self.height}, the camera's whole frame"
        return (
            f"{self.width}x{self.height}: the camera's frame rendered at {render_width}x{render_height} and its "
            f"centre cropped ({render_width - self.width} px of width, {render_height - self.height} px of height)"
        )


def fit_camera(camera_aspect: float, width: int, height: int) -> Framing:
    """The cover-and-crop framing of a camera of ``camera_aspect`` (width / height) for a ``width`` x ``height``
    generation: the render is as small as possible while covering it, the crop centred (left/top rounded down)."""
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise ValueError(f"width and height must be multiples of {SIZE_MULTIPLE}, got {width}x{height}")
    if width / height >= camera_aspect:
        render_width, render_height = width, max(height, round(width / camera_aspect))
    else:
        render_width, render_height = max(width, round(height * camera_aspect)), height
    left, top = (render_width - width) // 2, (render_height - height) // 2
    return Framing(width, height, (render_width, render_height), left, top)


def round_up_4k_plus_1(count: int) -> int:
    """The smallest 4k+1 frame count that holds ``count`` frames."""
    return max(1, math.ceil((count - 1) / TEMPORAL_STRIDE) * TEMPORAL_STRIDE + 1)


def frame_notes(count: int, window_frames: int) -> list[str]:
    """What the model's frame rules do to a shot of ``count`` frames, in words (empty when nothing)."""
    notes = []
    if count <= window_frames and round_up_4k_plus_1(count) != count:
        generated = round_up_4k_plus_1(count)
        notes.append(
            f"Wan makes 4k+1 frames: {generated} are generated for the shot's {count} and the last "
            f"{generated - count} dropped, so the result has exactly the shot's frames"
        )
    if count > window_frames:
        notes.append(
            f"{count} frames are more than one window of {window_frames}: the daemon generates overlapping "
            "windows and cross-fades them"
        )
    return notes
