"""The "vace_motion" mode: a reference image moves as a driving strip moves (Wan 2.1 VACE, optical flow).

Unlike ``vace_pose``, the control is not a skeleton but the dense optical flow of the driving strip, drawn
in the Middlebury flow colours (see :mod:`models.optical_flow`; OpenCV, no weights). Flow carries every
moving thing, not only a body: camera pans and zooms, cloth, hair, objects, several people at once, and the
timing of each. It does not carry shapes that stand still, nor limb positions as such, so the subject's build
and pose at rest come from the reference image and the prompt. Depth control is not offered: it needs a depth
model this project does not ship.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .optical_flow import FLOW_METHODS, flow_video
from .runner import Media, MediaSlot, Param, RunContext
from .vace import (
    COMMON_PARAMS,
    CONDITIONING_PARAM,
    REFERENCE_SLOT,
    WAN_VACE_1_3B,
    WAN_VACE_14B,
    WanVaceRunner,
)

MOTION_PARAMS = (
    Param(
        "frame_count",
        "int",
        minimum=1,
        maximum=100_000,
        help="How many frames of the driving strip to follow, from its first (default: all of them).",
    ),
    Param(
        "flow_method",
        "choice",
        default="dis",
        choices=FLOW_METHODS,
        help="dis: fast, sharp motion edges; farneback: smoother motion fields.",
    ),
    Param(
        "flow_scale_px",
        "float",
        minimum=0.1,
        maximum=500.0,
        help="Speed in pixels per frame (at the output size) drawn at full colour (default: the clip's 99th "
        "percentile). Fix it to compare clips, or lower it to make slow motion count more.",
    ),
)


class VaceMotionRunner(WanVaceRunner):
    """Motion transfer with Wan 2.1 VACE 1.3B: the output moves as ``driving`` moves, frame for frame.

    The summary records ``flow_scale_px``, the speed drawn at full colour, besides what every VACE mode records.
    """

    mode = "vace_motion"
    description = (
        "Animate a reference image with the motion of a driving strip (dense optical flow), Wan 2.1 VACE 1.3B."
    )
    model = WAN_VACE_1_3B
    params = (*COMMON_PARAMS, CONDITIONING_PARAM, *MOTION_PARAMS)
    inputs = (
        REFERENCE_SLOT,
        MediaSlot("driving", "video", help="The footage whose motion to copy: a strip, a video file or images."),
    )
    weights = WAN_VACE_1_3B.weights

    def control_media(self, inputs: Mapping[str, Media]) -> tuple[str, Media]:
        return "driving", inputs["driving"]

    def control_frames(
        self, frames: list[np.ndarray], params: Mapping[str, Any], ctx: RunContext, notes: list[str]
    ) -> list[np.ndarray]:
        ctx.progress(0.0, "optical flow")
        colors, scale = flow_video(
            frames, method=params["flow_method"], scale=params.get("flow_scale_px"), cancelled=ctx.raise_if_cancelled
        )
        notes.append(f"flow_scale_px={scale:.2f}: motion of that many pixels per frame is drawn at full colour")
        return list(colors)


class VaceMotion14BRunner(VaceMotionRunner):
    """:class:`VaceMotionRunner` with the 14B model (480p or 720p)."""

    mode = "vace_motion_14b"
    description = "Animate a reference image with the motion of a driving strip (optical flow), Wan 2.1 VACE 14B."
    model = WAN_VACE_14B
    weights = WAN_VACE_14B.weights
