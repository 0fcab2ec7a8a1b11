"""The "r2v" mode: reference images and a prompt become a video, with no control video (Wan 2.1 VACE).

One to three references: typically the subject, and optionally a second subject or the background. The
prompt decides what happens; the references decide who and where. Output plays at Wan's native 16 fps.
"""

from __future__ import annotations

from ..runner import MediaSlot, Param
from .runner import COMMON_PARAMS, REFERENCE_SLOT, WAN_VACE_1_3B, WAN_VACE_14B, WanVaceRunner

R2V_FRAME_COUNT = Param(
    "frame_count",
    "int",
    default=81,
    minimum=1,
    maximum=100_000,
    help="Frames to generate (81 is about 5 s at 16 fps); more than window_frames uses overlapping windows.",
)


class R2VRunner(WanVaceRunner):
    """Reference-to-video with Wan 2.1 VACE 1.3B: ``frame_count`` frames at 16 fps, 832x480 by default."""

    mode = "r2v"
    description = "Generate a video of the subjects in one to three reference images from a prompt, Wan 2.1 VACE 1.3B."
    model = WAN_VACE_1_3B
    reference_slots = ("reference", "reference_2", "reference_3")
    params = (*COMMON_PARAMS, R2V_FRAME_COUNT)
    inputs = (
        REFERENCE_SLOT,
        MediaSlot("reference_2", "image", required=False, help="A second subject, or the background."),
        MediaSlot("reference_3", "image", required=False, help="A third subject, or the background."),
    )
    weights = WAN_VACE_1_3B.weights


class R2V14BRunner(R2VRunner):
    """:class:`R2VRunner` with the 14B model (480p or 720p)."""

    mode = "r2v_14b"
    description = "Generate a video of the subjects in one to three reference images from a prompt, Wan 2.1 VACE 14B."
    model = WAN_VACE_14B
    weights = WAN_VACE_14B.weights
