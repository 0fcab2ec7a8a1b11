"""Panel helpers: the add-on's sidebar panels are made here, and long messages wrap here.

Every panel of the add-on sits in the "Motion Capture" tab of the sidebar of the Sequencer and the 3D viewport
(the live view's also in the image editor); :data:`ORDER` is the order they appear in, top to bottom.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

import bpy

CATEGORY = "Motion Capture"
WRAP_CHARS = 48
"""Characters per line of a wrapped message: fits the sidebar at its default width."""
EDITORS = (("SEQUENCE_EDITOR", "sequencer"), ("VIEW_3D", "view3d"))
"""The editors (space type, name part) every panel shows in."""
ORDER = ("daemon", "generate", "jobs", "posetoarmature", "livepose", "live_view", "scene_generate")
"""Panel keys from top to bottom (a sub-panel sits in its parent)."""


def wrapped(layout: bpy.types.UILayout, text: str, icon: str = "NONE") -> None:
    """Long messages as several labels (Blender labels do not wrap)."""
    column = layout.column(align=True)
    for index, line in enumerate(textwrap.wrap(text, WRAP_CHARS) or [""]):
        column.label(text=line, icon=icon if index == 0 else "BLANK1")


class PanelDrawing:
    """Base of a class handed to :func:`sidebar_panels` for its ``draw(self, context)``: the panels made from it
    derive from ``bpy.types.Panel`` too, which gives them ``layout``."""

    if TYPE_CHECKING:
        layout: bpy.types.UILayout


def sidebar_panels(
    key: str,
    label: str,
    draw: Callable[[bpy.types.UILayout, bpy.types.Context], None] | type,
    editors: tuple[tuple[str, str], ...] = EDITORS,
    closed: bool = False,
    parent: str = "",
) -> tuple[type, ...]:
    """One registrable panel class per editor, ``VFXMOCAP_PT_<editor name>_<key>``, drawn by
    ``draw(layout, context)``, or by ``draw``'s own ``draw(self, context)`` method when ``draw`` is a class
    (then the panels derive from it). ``closed``: folded until opened; ``parent``: the key of the panel it sits
    in."""
    classes = []
    for space, prefix in editors:
        name = f"VFXMOCAP_PT_{prefix}_{key}"
        attributes: dict[str, object] = {
            "bl_idname": name,
            "bl_label": label,
            "bl_space_type": space,
            "bl_region_type": "UI",
            "bl_category": CATEGORY,
        }
        bases: tuple[type, ...] = (bpy.types.Panel,)
        if isinstance(draw, type):
            bases = (draw, *bases)
        else:
            attributes["draw"] = _draw_method(draw)
        if key in ORDER:
            attributes["bl_order"] = ORDER.index(key)
        if closed:
            attributes["bl_options"] = {"DEFAULT_CLOSED"}
        if parent:
            attributes["bl_parent_id"] = f"VFXMOCAP_PT_{prefix}_{parent}"
        classes.append(type(name, bases, attributes))
    return tuple(classes)


def _draw_method(
    draw: Callable[[bpy.types.UILayout, bpy.types.Context], None],
) -> Callable[[bpy.types.Panel, bpy.types.Context], None]:
    def draw_panel(panel: bpy.types.Panel, context: bpy.types.Context) -> None:
        draw(panel.layout, context)

    return draw_panel
