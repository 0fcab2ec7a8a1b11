"""The "vace_pose" mode: a reference image moves as a pose control video says (Wan 2.1 VACE).

The control is a strip of OpenPose-style skeletons on black, such as the pose mode renders with
``skeleton_background=black``. It fixes where the body parts are in every frame and nothing else: the look
comes from the reference image and the prompt, the setting and camera from the prompt. Frame ``i`` of the
output follows skeleton ``i``. See :mod:`models.vace.runner` for sizes and memory options, and
:mod:`models.vace.windows` for frame counts and windows.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..runner import Media, MediaSlot, Param
from .runner import (
    COMMON_PARAMS,
    CONDITIONING_PARAM,
    REFERENCE_SLOT,
    WAN_VACE_1_3B,
    WAN_VACE_14B,
    WanVaceRunner,
)

POSE_FRAME_COUNT = Param(
    "frame_count",
    "int",
    minimum=1,
    maximum=100_000,
    help="How many frames of the pose video to follow, from its first (default: all of them).",
)


class VacePoseRunner(WanVaceRunner):
    """Pose transfer with Wan 2.1 VACE 1.3B: output frame ``i`` puts the reference subject in pose ``i``.

    Results: ``frame_count`` RGB frames at ``width`` x ``height`` (see the summary), at the pose video's
    frame rate; the summary also records the seed, steps, windows and any notes on rounding.
    """

    mode = "vace_pose"
    description = "Animate a reference image with a pose control video (skeleton renders), Wan 2.1 VACE 1.3B."
    model = WAN_VACE_1_3B
    params = (*COMMON_PARAMS, CONDITIONING_PARAM, POSE_FRAME_COUNT)
    inputs = (
        REFERENCE_SLOT,
        MediaSlot(
            "pose",
            "video",
            help="Skeleton renders on black, one per output frame (the pose mode with skeleton_background=black).",
        ),
    )
    weights = WAN_VACE_1_3B.weights

    def control_media(self, inputs: Mapping[str, Media]) -> tuple[str, Media]:
        return "pose", inputs["pose"]


class VacePose14BRunner(VacePoseRunner):
    """:class:`VacePoseRunner` with the 14B model: finer detail and 720p. Its weights take about 32 GB
    (transformer) and 11 GB (text encoder) in bf16: an 80 GB GPU as it is, a 48 GB GPU with
    ``offload=model``, ``offload=sequential`` on smaller ones (estimates from the file sizes)."""

    mode = "vace_pose_14b"
    description = "Animate a reference image with a pose control video, Wan 2.1 VACE 14B (480p or 720p)."
    model = WAN_VACE_14B
    weights = WAN_VACE_14B.weights
