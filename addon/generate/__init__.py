"""Generate and jobs: the Generate panel and its operators, the job list's panel and buttons, results kept with the
.blend, and generating from the 3D scene (rendering control passes, then submitting the job)."""

from __future__ import annotations

from . import operators, panels, project_results, scene_generate

CLASSES = (*operators.CLASSES, *panels.CLASSES, *scene_generate.CLASSES)


def register() -> None:
    """The scene-generation settings, and the file handlers that keep results with the .blend."""
    project_results.register()
    scene_generate.register()


def unregister() -> None:
    scene_generate.unregister()
    project_results.unregister()
