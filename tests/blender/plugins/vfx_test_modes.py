"""Extra daemon modes for the Blender tests, loaded with ``python -m daemon serve --plugin vfx_test_modes``.

They give the add-on what the built-in modes do not offer yet: a mode that needs a reference image, and a
mode that is never ready because a package it needs is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.runner import Media, MediaSlot, RunContext, Runner, RunResult, write_frame


class ReferenceOverlayRunner(Runner):
    """Each video frame with the reference image pasted into its top-left corner."""

    mode = "reference_overlay"
    description = "Test mode: the reference image pasted into the corner of every frame."
    inputs = (MediaSlot("video", "video"), MediaSlot("reference", "image"))

    def load(self, device: Any) -> None:
        """Nothing to load."""

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        reference = next(iter(inputs["reference"].frames()))
        video = inputs["video"]
        count = 0
        for index, frame in enumerate(video.frames()):
            ctx.raise_if_cancelled()
            height, width = min(frame.shape[0], reference.shape[0]), min(frame.shape[1], reference.shape[1])
            out = frame.copy()
            out[:height, :width] = reference[:height, :width]
            write_frame(ctx.output_dir, index, out)
            count += 1
            ctx.progress(count / max(video.frame_count, 1), "pasting")
        return RunResult(summary={"frame_count": count}, frame_count=count)


class MissingPackageRunner(Runner):
    """Never ready: the daemon reports its package as missing, so it is never loaded or run."""

    mode = "needs_missing_package"
    description = "Test mode whose Python package is not installed."
    inputs = (MediaSlot("video", "video"),)
    python_packages = ("vfx_package_that_does_not_exist",)

    def load(self, device: Any) -> None:
        raise RuntimeError("needs_missing_package cannot load: its package is not installed")

    def run(self, inputs: Mapping[str, Media], params: Mapping[str, Any], ctx: RunContext) -> RunResult:
        raise RuntimeError("needs_missing_package cannot run: its package is not installed")


RUNNERS = {runner.mode: runner for runner in (ReferenceOverlayRunner, MissingPackageRunner)}
