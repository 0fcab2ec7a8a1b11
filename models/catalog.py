"""Which runner serves which mode, named by import path so nothing heavy is imported to list them."""

from __future__ import annotations

import importlib
from typing import Any

from .runner import Runner

BUILTIN_RUNNERS: dict[str, str] = {
    "pose": "models.pose:PoseRunner",
    "liveportrait": "models.liveportrait_runner:LivePortraitRunner",
    "face_swap": "models.face_swap.runner:FaceSwapRunner",
    "vace_pose": "models.vace.pose:VacePoseRunner",
    "vace_pose_14b": "models.vace.pose:VacePose14BRunner",
    "vace_motion": "models.vace.motion:VaceMotionRunner",
    "vace_motion_14b": "models.vace.motion:VaceMotion14BRunner",
    "r2v": "models.vace.r2v:R2VRunner",
    "r2v_14b": "models.vace.r2v:R2V14BRunner",
}


def import_runner(target: str | type[Runner]) -> type[Runner]:
    """Resolve ``"package.module:Class"`` (or a class) to a Runner subclass."""
    if isinstance(target, type):
        cls: Any = target
    else:
        module_name, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise TypeError(f"{target!r} is not a Runner subclass")
    return cls


def plugin_runners(module_name: str) -> dict[str, type[Runner]]:
    """Runners a plugin module offers through its ``RUNNERS`` mapping (mode -> class or import path)."""
    module = importlib.import_module(module_name)
    offered = getattr(module, "RUNNERS", None)
    if not isinstance(offered, dict):
        raise TypeError(f"plugin {module_name} has no RUNNERS mapping of mode -> Runner")
    return {mode: import_runner(target) for mode, target in offered.items()}
