"""Every difference between the Blender versions the extension supports (4.2 and later), in one place.

- Sequencer: ``SequenceEditor.sequences`` / ``sequences_all`` became ``strips`` / ``strips_all`` in 4.4,
  and the old names are gone in 5.0. The strip constructors (``new_image``, ``new_movie``) kept their
  signature; only the collection that owns them moved.
- Strip timing: Blender 5.2 renamed ``frame_start`` to ``content_start``, ``frame_final_start`` /
  ``frame_final_end`` / ``frame_final_duration`` to ``left_handle`` / ``right_handle`` / ``duration``,
  ``frame_offset_start`` to ``left_handle_offset`` and ``animation_offset_start`` to ``content_trim_start``;
  the old names warn and go away in 6.0. :func:`timing` and :func:`set_timing` take the new names.
- Effect strips: ``new_effect`` took ``frame_end`` until 4.5 and takes ``length`` from 5.0 on.
- Retiming keys (``Strip.retiming_keys``) exist since 4.0; read them through :func:`is_retimed`.
- Render output: Blender 5.0 chooses multilayer OpenEXR with ``media_type``; before, it was a ``file_format``
  (:func:`use_multilayer_exr`). Its multilayer files are multi-part from 5.0 on (``scene_control/exr.py`` reads
  both).
- Slotted actions (4.4+): F-curves live in a layer/strip/channelbag per slot, reached with
  ``Action.fcurve_ensure_for_datablock``; before 4.4 they hang off ``Action.fcurves``.

Main thread only: everything here touches Blender data.
"""

from __future__ import annotations

from typing import Literal, overload

import bpy

HAS_STRIPS_API = "strips" in bpy.types.SequenceEditor.bl_rna.properties
HAS_SLOTTED_ACTIONS = "slots" in bpy.types.Action.bl_rna.properties

_STRIP_TYPE = getattr(bpy.types, "Strip", None) or bpy.types.Sequence  # renamed in 4.4
HAS_HANDLE_NAMES = "left_handle" in _STRIP_TYPE.bl_rna.properties

TIMING_NAMES = {
    "content_start": "frame_start",
    "left_handle": "frame_final_start",
    "right_handle": "frame_final_end",
    "duration": "frame_final_duration",
    "left_handle_offset": "frame_offset_start",
    "content_trim_start": "animation_offset_start",
}
"""Strip timing properties: Blender 5.2 name -> name before 5.2. All in timeline frames."""

STRIPS_ATTR = "strips" if HAS_STRIPS_API else "sequences"
"""Name of the top-level strip collection of a ``SequenceEditor``."""
ALL_STRIPS_ATTR = "strips_all" if HAS_STRIPS_API else "sequences_all"
"""Name of the collection of every strip, meta strip contents included (for ``prop_search``)."""


WholeFrameTiming = Literal["left_handle", "right_handle", "duration", "content_trim_start"]
"""The timing properties Blender keeps in whole frames (int)."""
FractionalTiming = Literal["content_start", "left_handle_offset"]
"""The timing properties Blender keeps as a float: the content may start between two frames."""


@overload
def timing(strip: bpy.types.bpy_struct, name: WholeFrameTiming) -> int: ...
@overload
def timing(strip: bpy.types.bpy_struct, name: FractionalTiming) -> float: ...
def timing(strip: bpy.types.bpy_struct, name: str) -> float:
    """A strip's timing property by its Blender 5.2 name (a key of TIMING_NAMES)."""
    return getattr(strip, name if HAS_HANDLE_NAMES else TIMING_NAMES[name])


def set_timing(strip: bpy.types.bpy_struct, name: WholeFrameTiming | FractionalTiming, value: float) -> None:
    """Set a strip's timing property by its Blender 5.2 name (a key of TIMING_NAMES)."""
    setattr(strip, name if HAS_HANDLE_NAMES else TIMING_NAMES[name], value)


def top_level_strips(sequence_editor: bpy.types.SequenceEditor) -> bpy.types.bpy_prop_collection:
    """The strips that are not inside a meta strip; new strips are created through this collection."""
    return getattr(sequence_editor, STRIPS_ATTR)


def all_strips(sequence_editor: bpy.types.SequenceEditor) -> bpy.types.bpy_prop_collection:
    """Every strip, including the contents of meta strips."""
    return getattr(sequence_editor, ALL_STRIPS_ATTR)


def new_image_strip(
    sequence_editor: bpy.types.SequenceEditor, name: str, filepath: str, channel: int, frame_start: int
) -> bpy.types.ImageStrip:
    """Add an image strip showing ``filepath`` on ``channel`` from timeline frame ``frame_start``."""
    return top_level_strips(sequence_editor).new_image(
        name=name, filepath=filepath, channel=channel, frame_start=frame_start
    )


def new_movie_strip(
    sequence_editor: bpy.types.SequenceEditor, name: str, filepath: str, channel: int, frame_start: int
) -> bpy.types.MovieStrip:
    """Add a movie strip playing ``filepath`` on ``channel`` from timeline frame ``frame_start``."""
    return top_level_strips(sequence_editor).new_movie(
        name=name, filepath=filepath, channel=channel, frame_start=frame_start
    )


def new_color_strip(
    sequence_editor: bpy.types.SequenceEditor, name: str, channel: int, frame_start: int, length: int
) -> bpy.types.ColorStrip:
    """Add a color strip of ``length`` frames on ``channel`` from ``frame_start``."""
    strips = top_level_strips(sequence_editor)
    if "length" in strips.bl_rna.functions["new_effect"].parameters:
        return strips.new_effect(name=name, type="COLOR", channel=channel, frame_start=frame_start, length=length)
    return strips.new_effect(
        name=name, type="COLOR", channel=channel, frame_start=frame_start, frame_end=frame_start + length
    )


def is_retimed(strip: bpy.types.bpy_struct) -> bool:
    """True if the strip carries retiming keys, i.e. may play its content at another speed."""
    return len(getattr(strip, "retiming_keys", ())) > 0


def fcurve_ensure(
    action: bpy.types.Action, datablock: bpy.types.ID, data_path: str, index: int = 0
) -> bpy.types.FCurve:
    """The F-curve animating ``datablock.data_path[index]`` in ``action``, created if missing.

    ``action`` must be assigned to ``datablock`` (``datablock.animation_data.action``). With slotted actions
    the F-curve lands in the channelbag of the datablock's slot, created on first use.
    """
    if HAS_SLOTTED_ACTIONS:
        return action.fcurve_ensure_for_datablock(datablock, data_path, index=index)
    fcurve = action.fcurves.find(data_path, index=index)
    return fcurve if fcurve is not None else action.fcurves.new(data_path, index=index)


def action_channels(action: bpy.types.Action, datablock: bpy.types.ID) -> bpy.types.bpy_struct:
    """What holds ``action``'s ``fcurves`` and ``groups`` for ``datablock``: its slot's channel bag (4.4+), or
    the action itself. With slotted actions, call it once an F-curve was written (that makes the channel bag)."""
    if HAS_SLOTTED_ACTIONS:
        from bpy_extras import anim_utils

        return anim_utils.action_get_channelbag_for_slot(action, datablock.animation_data.action_slot)
    return action


def action_slot_identifier(datablock: bpy.types.ID) -> str:
    """The identifier of the action slot ``datablock`` is animated through; empty before 4.4 (no slots)."""
    animation = datablock.animation_data
    if not HAS_SLOTTED_ACTIONS or animation is None or animation.action_slot is None:
        return ""
    return str(animation.action_slot.identifier)


def use_multilayer_exr(image_settings: bpy.types.ImageFormatSettings) -> None:
    """Make renders write multilayer OpenEXR (every pass in one file). Blender 5.0 split the choice into
    ``media_type = 'MULTI_LAYER_IMAGE'`` and ``file_format = 'OPEN_EXR'``; before, it was ``OPEN_EXR_MULTILAYER``.
    (A multilayer file is single-part before 5.0 and has one part per pass from 5.0 on.)"""
    if "media_type" in image_settings.bl_rna.properties:
        image_settings.media_type = "MULTI_LAYER_IMAGE"
    else:
        image_settings.file_format = "OPEN_EXR_MULTILAYER"
