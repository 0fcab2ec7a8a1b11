"""The bridge between sequencer strips and plain job data, both ways. Main thread only.

Strip -> input spec: a movie strip becomes ``{"path", "frame_start", "frame_end", "step"}`` over the frames it
shows (its handles, offsets and hold offsets applied); an image sequence becomes ``{"paths", "fps"}`` with one
file per visible frame, as Blender maps timeline frames to elements (speed, reverse and strobe included); a
single image becomes ``{"path"}``.

Result -> strip: :func:`insert_result_strip` adds a job's ``<output_dir>/frames/*.png`` as one image-sequence
strip on the first free channel above the source, from the source's first visible frame, named after the
mode, with the job id, mode, parameters (and seed, for modes that take one) stored as custom properties, plus
any the job asks for (a Generate from Scene job records its scene, camera and pass).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import bpy

from ..bridge.requests import StripSource
from . import compat
from .errors import UserError

MAX_CHANNEL = 128
JOB_ID_PROP = "vfx_job_id"
MODE_PROP = "vfx_mode"
PARAMS_PROP = "vfx_params"
SEED_PROP = "vfx_seed"
LICENCES_PROP = "vfx_licences"
UNREAD_FILE = ".vfx-not-a-file.png"
"""The name a result strip is made on. ``new_image`` decodes the file it is given, whole, to learn its alpha and
colour space (3 ms for a 720x528 PNG, 26 to 56 ms for a 1080p one, on the main thread); given no file it reads
nothing, and the strip then gets the result's frames and the colour space that read would have found."""
RESULT_COLORSPACE = "sRGB"
"""Result frames are 8-bit PNGs without alpha, which Blender reads as sRGB with straight alpha (its default)."""


def selected_strip(scene: bpy.types.Scene) -> bpy.types.bpy_struct:
    """The active strip of the scene's sequencer, if it is selected; else UserError."""
    editor = scene.sequence_editor
    strip = editor.active_strip if editor is not None else None
    if strip is None or not strip.select:
        raise UserError("No strip selected: select a movie, image sequence or image strip in the Sequencer")
    return strip


def strip_source(scene: bpy.types.Scene, strip: bpy.types.bpy_struct) -> StripSource:
    """The input spec for the frames ``strip`` shows. Raises UserError for strips that cannot be sent."""
    if strip.type == "MOVIE":
        spec = _movie_spec(strip)
    elif strip.type == "IMAGE":
        spec = _image_spec(scene, strip)
    else:
        raise UserError(
            f"Strip '{strip.name}' is a {strip.type.lower()} strip: select a movie, image sequence or image strip"
        )
    left = compat.timing(strip, "left_handle")
    return StripSource(
        spec=spec,
        strip_name=strip.name,
        channel=strip.channel,
        frame_start=left,
        frame_count=compat.timing(strip, "duration"),
        content_offset=left - compat.timing(strip, "content_start"),
    )


def readable_file(path: str, what: str) -> str:
    """``path`` made absolute (Blender's ``//`` included) if it is a readable file; else UserError."""
    if not path:
        raise UserError(f"No file set for {what}")
    absolute = os.path.normpath(bpy.path.abspath(path))
    if not os.path.isfile(absolute):
        raise UserError(f"Cannot read {absolute} ({what}): the file does not exist")
    if not os.access(absolute, os.R_OK):
        raise UserError(f"Cannot read {absolute} ({what}): permission denied")
    return absolute


def _movie_spec(strip: bpy.types.MovieStrip) -> dict[str, Any]:
    path = readable_file(strip.filepath, f"movie strip '{strip.name}'")
    if compat.is_retimed(strip) or strip.use_reverse_frames or strip.strobe > 1.0:
        raise UserError(
            f"Movie strip '{strip.name}' is retimed, reversed or strobed: the daemon reads movies frame by frame "
            "in order. Reset its retiming, or render it to an image sequence and use that strip"
        )
    left, content_start = compat.timing(strip, "left_handle"), compat.timing(strip, "content_start")
    first = round(left - content_start) + compat.timing(strip, "content_trim_start")
    return {"path": path, "frame_start": first, "frame_end": first + compat.timing(strip, "duration"), "step": 1}


def _image_spec(scene: bpy.types.Scene, strip: bpy.types.ImageStrip) -> dict[str, Any]:
    directory = strip.directory
    if len(strip.elements) == 1:
        return {
            "path": readable_file(os.path.join(directory, strip.elements[0].filename), f"image strip '{strip.name}'")
        }
    paths = []
    checked: dict[str, str] = {}
    for frame in range(compat.timing(strip, "left_handle"), compat.timing(strip, "right_handle")):
        name = strip.strip_elem_from_frame(frame).filename
        if name not in checked:
            checked[name] = readable_file(os.path.join(directory, name), f"frame {frame} of strip '{strip.name}'")
        paths.append(checked[name])
    return {"paths": paths, "fps": scene.render.fps / scene.render.fps_base}


def reference_spec(scene: bpy.types.Scene) -> dict[str, Any] | None:
    """The reference image chosen in the panel as ``{"path"}``, None if none is chosen; UserError if unusable."""
    state = scene.vfx_mocap
    if state.reference_source == "FILE":
        return {"path": readable_file(state.reference_path, "the reference image")}
    if state.reference_source == "STRIP":
        editor = scene.sequence_editor
        strip = compat.all_strips(editor).get(state.reference_strip) if editor is not None else None
        if strip is None or strip.type != "IMAGE":
            raise UserError(f"Reference strip '{state.reference_strip}' is not an image strip of this scene")
        element = strip.strip_elem_from_frame(compat.timing(strip, "left_handle"))
        return {"path": readable_file(os.path.join(strip.directory, element.filename), "the reference strip")}
    return None


def find_result_strip(scene: bpy.types.Scene, job_id: str) -> bpy.types.bpy_struct | None:
    """The strip already inserted for ``job_id``, if any."""
    editor = scene.sequence_editor
    if editor is None:
        return None
    return next((strip for strip in compat.all_strips(editor) if strip.get(JOB_ID_PROP) == job_id), None)


def first_free_channel(editor: bpy.types.SequenceEditor, above: int, frame_start: int, frame_end: int) -> int:
    """The lowest channel above ``above`` with no top-level strip overlapping ``[frame_start, frame_end)``."""
    busy = {
        strip.channel
        for strip in compat.top_level_strips(editor)
        if compat.timing(strip, "left_handle") < frame_end and compat.timing(strip, "right_handle") > frame_start
    }
    channel = above + 1
    while channel in busy:
        channel += 1
    if channel > MAX_CHANNEL:
        raise UserError(f"No free channel above channel {above} between frames {frame_start} and {frame_end}")
    return channel


def result_frames(output_dir: str) -> tuple[Path, list[str]]:
    """The job's frames folder and its PNG file names in order; UserError if there are none."""
    folder = Path(output_dir) / "frames"
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".png")) if output_dir else []
    except OSError:
        names = []
    if not names:
        raise UserError(f"No result frames in {folder}: the job's folder was moved or deleted; retry the job")
    return folder, names


def insert_result_strip(scene: bpy.types.Scene, job: bpy.types.PropertyGroup) -> bpy.types.ImageStrip:
    """Insert (once) the result of ``job`` (a :class:`~.properties.MocapJob`) as an image-sequence strip.

    It starts where the source's first visible frame is now (the source may have moved since submission;
    if it was deleted, where it was), on the first free channel above it; a job made without a source strip
    starts at the current frame, on the first free channel. A one-frame result (from a still) is stretched
    over the source's length. Returns the new strip, or the one inserted before.
    """
    existing = find_result_strip(scene, job.name)
    if existing is not None:
        return existing
    folder, frames = result_frames(job.output_dir)
    editor = scene.sequence_editor_create()
    source = compat.all_strips(editor).get(job.source_strip) if job.source_strip else None
    if source is not None:
        frame_start = round(compat.timing(source, "content_start") + job.source_content_offset)
        channel = source.channel
    elif job.source_strip:
        frame_start, channel = job.source_frame_start, job.source_channel
    else:
        frame_start, channel = scene.frame_current, 0
    length = len(frames) if len(frames) > 1 else max(1, job.source_frame_count)
    channel = first_free_channel(editor, channel, frame_start, frame_start + length)
    strip = compat.new_image_strip(editor, job.mode, str(folder / UNREAD_FILE), channel, frame_start)
    strip.elements[0].filename = frames[0]
    for name in frames[1:]:
        strip.elements.append(name)
    strip.colorspace_settings.name = RESULT_COLORSPACE
    if len(frames) == 1:
        compat.set_timing(strip, "duration", length)
    params = job.params
    strip[JOB_ID_PROP] = job.name
    strip[MODE_PROP] = job.mode
    strip[PARAMS_PROP] = json.dumps(params, sort_keys=True)
    if params.get("seed") is not None:
        strip[SEED_PROP] = int(params["seed"])
    if job.licences:
        strip[LICENCES_PROP] = job.licences
    for key, value in json.loads(job.strip_props_json or "{}").items():
        strip[key] = value
    job.result_strip = strip.name
    return strip
