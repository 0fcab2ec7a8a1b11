"""The "vace_motion" mode: a reference image moves as a driving strip moves (Wan 2.1 VACE, flow or depth).

Unlike ``vace_pose``, the control is not a skeleton but one of two pictures of the driving strip:

- ``control=flow`` (the default): its dense optical flow, drawn in the Middlebury flow colours (see
  :mod:`models.vace.optical_flow`; OpenCV, no weights). Flow carries every moving thing, not only a body: camera pans
  and zooms, cloth, hair, objects, several people at once, and the timing of each. It does not carry shapes that
  stand still, nor limb positions as such, so the subject's build and pose at rest come from the reference image
  and the prompt.
- ``control=depth``: its depth maps, near bright and far dark (see :mod:`models.vace.depth`; Depth Anything V2 Small,
  ``fetch-models vace_motion_depth``). Depth carries the shapes and layout of every frame, still or moving: the
  silhouette, the scene's layout and the camera's path through it, so the output keeps the driving shot's
  composition, and less of the look of the reference where the two disagree.
- ``control=as_is``: the driving strip already is a control video, such as the depth pass the add-on renders from
  a Blender scene (near bright, far dark) or its layout pass, and goes to the model unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..runner import InvalidInput, Media, MediaSlot, Param, RunContext
from .depth import DEPTH_FETCH_MODE, DEPTH_FOLDER, DEPTH_REPOSITORY, DepthEstimator
from .memory import MemoryPlan
from .optical_flow import FLOW_METHODS, NORMALISATIONS, flow_video
from .pipeline import LoadedPipeline
from .runner import (
    COMMON_PARAMS,
    CONDITIONING_PARAM,
    REFERENCE_SLOT,
    WAN_VACE_1_3B,
    WAN_VACE_14B,
    Settings,
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
        "control",
        "choice",
        default="flow",
        choices=("flow", "depth", "as_is"),
        help="flow: the strip's optical flow (all motion, no weights). depth: its depth maps (shapes and layout; "
        f"needs fetch-models {DEPTH_FETCH_MODE}). as_is: the strip already is a control video (a depth or layout "
        "pass rendered from a Blender scene), used unchanged.",
    ),
    Param(
        "flow_method",
        "choice",
        default="dis",
        choices=FLOW_METHODS,
        help="control=flow: dis (fast, sharp motion edges) or farneback (smoother motion fields).",
    ),
    Param(
        "flow_normalise",
        "choice",
        default="frame",
        choices=NORMALISATIONS,
        help="control=flow: frame (each frame's fastest motion at full colour, as VACE's flow annotator) or clip "
        "(one scale for the clip, its 99th percentile speed: colours compare across frames).",
    ),
    Param(
        "flow_scale_px",
        "float",
        minimum=0.1,
        maximum=500.0,
        help="control=flow: speed in pixels per frame (at the output size) drawn at full colour in every frame "
        "(overrides flow_normalise). Fix it to compare clips.",
    ),
)


class VaceMotionRunner(WanVaceRunner):
    """Motion transfer with Wan 2.1 VACE 1.3B: the output moves as ``driving`` moves, frame for frame.

    The summary records ``control`` besides what every VACE mode records; with flow, the notes give
    ``flow_scale_px``, the speed drawn at full colour.
    """

    mode = "vace_motion"
    description = (
        "Animate a reference image with the motion of a driving strip (dense optical flow, or depth maps), "
        "Wan 2.1 VACE 1.3B."
    )
    model = WAN_VACE_1_3B
    params = (*COMMON_PARAMS, CONDITIONING_PARAM, *MOTION_PARAMS)
    inputs = (
        REFERENCE_SLOT,
        MediaSlot("driving", "video", help="The footage whose motion to copy: a strip, a video file or images."),
    )
    weights = WAN_VACE_1_3B.weights
    option_weights: ClassVar[dict[str, tuple[str, ...]]] = {"control=depth": (DEPTH_REPOSITORY,)}
    """Manifest entries an option needs beyond ``weights``; health reports each option's readiness."""

    def __init__(self) -> None:
        super().__init__()
        self._depth: DepthEstimator | None = None

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = super().validate(params)
        if values["control"] != "flow" and values["flow_scale_px"] is not None:
            raise InvalidInput("flow_scale_px", f"is for control=flow; leave it out with control={values['control']}")
        return values

    def unload(self) -> None:
        self._depth = None
        super().unload()

    def control_media(self, inputs: Mapping[str, Media]) -> tuple[str, Media]:
        return "driving", inputs["driving"]

    def control_frames(
        self, frames: list[np.ndarray], params: Mapping[str, Any], ctx: RunContext, notes: list[str]
    ) -> list[np.ndarray]:
        if params["control"] == "as_is":
            notes.append("control=as_is: the driving frames are the control video, unchanged")
            return frames
        if params["control"] == "depth":
            ctx.progress(0.0, "depth maps")
            if self._depth is None:  # loaded on the first depth job, kept with the pipeline until unload
                self._depth = DepthEstimator(self.models_root / DEPTH_FOLDER, ctx.device)
            notes.append(
                "control=depth: Depth Anything V2 Small, each frame's depth stretched from far (black) to near (white)"
            )
            return self._depth.depth_video(frames, cancelled=ctx.raise_if_cancelled)
        ctx.progress(0.0, "optical flow")
        colors, scales = flow_video(
            frames,
            method=params["flow_method"],
            scale=params.get("flow_scale_px"),
            normalise=params["flow_normalise"],
            cancelled=ctx.raise_if_cancelled,
        )
        low, high = min(scales), max(scales)
        span = f"{low:.2f}" if low == high else f"{low:.2f} to {high:.2f}"
        notes.append(f"flow_scale_px={span}: motion of that many pixels per frame is drawn at full colour")
        return list(colors)

    def summary(
        self, params: Mapping[str, Any], settings: Settings, loaded: LoadedPipeline, plan: MemoryPlan
    ) -> dict[str, Any]:
        return {**super().summary(params, settings, loaded, plan), "control": params["control"]}


class VaceMotion14BRunner(VaceMotionRunner):
    """:class:`VaceMotionRunner` with the 14B model (480p or 720p)."""

    mode = "vace_motion_14b"
    description = (
        "Animate a reference image with the motion of a driving strip (optical flow, or depth maps), Wan 2.1 VACE 14B."
    )
    model = WAN_VACE_14B
    weights = WAN_VACE_14B.weights
