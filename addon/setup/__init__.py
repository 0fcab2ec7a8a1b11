"""Setting the daemon up from Blender: the Set Up Daemon button (an environment installed into the data folder),
fetching a mode's model weights, and this Blender's key for a daemon on another machine."""

from __future__ import annotations

from . import client_key_ui, daemon_setup_ui, model_fetch_ui

CLASSES = (*daemon_setup_ui.CLASSES, *model_fetch_ui.CLASSES, *client_key_ui.CLASSES)


def unregister() -> None:
    """End a set-up or fetch in progress and their redraw timers."""
    daemon_setup_ui.unregister()
    model_fetch_ui.unregister()
