"""Live view: a mode's live output shown in Blender's image editor, its panel, and recording takes into the
Sequencer."""

from __future__ import annotations

from . import live_view_ui

CLASSES = live_view_ui.CLASSES


def register() -> None:
    live_view_ui.register()


def unregister() -> None:
    live_view_ui.unregister()
