"""A daemon plugin (``--plugin vace_control_recorder``) for tests: the real ``vace_pose`` and ``vace_motion`` runners,
which also save the control video they hand the pipeline as ``<job folder>/received_control/000000.png`` upward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.runner import RunContext
from models.vace.motion import VaceMotionRunner
from models.vace.pose import VacePoseRunner

RECEIVED_FOLDER = "received_control"


def _save(frames: list[np.ndarray], ctx: RunContext) -> None:
    import cv2

    folder = ctx.output_dir / RECEIVED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{index:06d}.png"), np.ascontiguousarray(frame[..., ::-1]))


class RecordingVacePose(VacePoseRunner):
    def control_frames(
        self, frames: list[np.ndarray], params: Mapping[str, Any], ctx: RunContext, notes: list[str]
    ) -> list[np.ndarray]:
        control = super().control_frames(frames, params, ctx, notes)
        _save(control, ctx)
        return control


class RecordingVaceMotion(VaceMotionRunner):
    def control_frames(
        self, frames: list[np.ndarray], params: Mapping[str, Any], ctx: RunContext, notes: list[str]
    ) -> list[np.ndarray]:
        control = super().control_frames(frames, params, ctx, notes)
        _save(control, ctx)
        return control


RUNNERS = {"vace_pose": RecordingVacePose, "vace_motion": RecordingVaceMotion}
