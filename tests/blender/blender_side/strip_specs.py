"""Strips to input specs and result folders to strips, without a daemon; plus the version layer's F-curves.

``--frames DIR`` holds ten PNGs (``f000.png`` ...); job output folders made of copies go under ``--output DIR``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import harness


def spec_or_error(addon: ModuleType, scene: Any, strip: Any) -> dict[str, Any]:
    try:
        source = addon.common.strips.strip_source(scene, strip)
    except addon.common.errors.UserError as exc:
        return {"error": str(exc)}
    spec = dict(source.spec)
    if "paths" in spec:
        spec["paths"] = [Path(path).name for path in spec["paths"]]
    if "path" in spec:
        spec["path"] = Path(spec["path"]).name
    return {
        "spec": spec,
        "strip_left_handle": addon.common.compat.timing(strip, "left_handle"),
        "frame_start": source.frame_start,
        "frame_count": source.frame_count,
        "content_offset": source.content_offset,
        "channel": source.channel,
    }


def job_folder(frames: Path, folder: Path, count: int) -> Path:
    """A job output folder as the daemon writes it: ``frames/000000.png`` upward."""
    (folder / "frames").mkdir(parents=True)
    for index in range(count):
        shutil.copy(frames / f"f{index:03d}.png", folder / "frames" / f"{index:06d}.png")
    return folder


def fake_job(addon: ModuleType, scene: Any, job_id: str, output_dir: Path, source: Any, content_offset: float) -> Any:
    job = scene.vfx_mocap.jobs.add()
    job.name, job.mode, job.state, job.output_dir = job_id, "pose", "succeeded", str(output_dir)
    job.params_json = '{"seed": 7, "strength": 0.5}'
    job.source_strip, job.source_channel = source.name, source.channel
    job.source_frame_start, job.source_frame_count = (
        addon.common.compat.timing(source, "left_handle"),
        addon.common.compat.timing(source, "duration"),
    )
    job.source_content_offset = content_offset
    return job


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    compat, strips = addon.common.compat, addon.common.strips
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    frames = Path(args.frames)

    movie = compat.new_movie_strip(editor, "movie", args.video, 1, 10)
    compat.set_timing(movie, "content_trim_start", 5)
    compat.set_timing(movie, "left_handle_offset", 20)
    compat.set_timing(movie, "duration", 8)
    record["movie"] = spec_or_error(addon, scene, movie)
    movie.use_reverse_frames = True
    record["movie_reversed"] = spec_or_error(addon, scene, movie)
    movie.use_reverse_frames = False

    # Blender plays a movie one file frame per timeline frame whatever the two rates: so does the spec.
    scene.render.fps, scene.render.fps_base = 24, 1.0
    thirty = compat.new_movie_strip(editor, "thirty", args.video_30, 7, 1)
    record["movie_30fps"] = {
        **spec_or_error(addon, scene, thirty),
        "scene_fps": scene.render.fps,
        "movie_fps": round(thirty.fps),
    }
    compat.top_level_strips(editor).remove(thirty)

    sequence = compat.new_image_strip(editor, "sequence", str(frames / "f000.png"), 2, 1)
    for index in range(1, 10):
        sequence.elements.append(f"f{index:03d}.png")
    compat.set_timing(sequence, "left_handle_offset", 2)
    compat.set_timing(sequence, "duration", 5)
    record["sequence"] = spec_or_error(addon, scene, sequence)
    sequence.use_reverse_frames = True
    record["sequence_reversed"] = spec_or_error(addon, scene, sequence)
    sequence.use_reverse_frames = False

    still = compat.new_image_strip(editor, "still", str(frames / "f003.png"), 3, 50)
    compat.set_timing(still, "duration", 20)
    record["still"] = spec_or_error(addon, scene, still)
    color = compat.new_color_strip(editor, "color", 4, 1, 10)
    record["color"] = spec_or_error(addon, scene, color)

    output = Path(args.output)
    sequence_job = fake_job(addon, scene, "a" * 32, job_folder(frames, output / "a", 5), sequence, 2.0)
    compat.set_timing(
        sequence, "content_start", compat.timing(sequence, "content_start") + 10
    )  # the user moved the source after submitting: the result follows it
    compat.new_color_strip(editor, "busy", 3, 12, 3)  # channel 3 overlaps the moved source
    inserted = strips.insert_result_strip(scene, sequence_job)
    record["sequence_result"] = {
        "channel": inserted.channel,
        "frame_final_start": compat.timing(inserted, "left_handle"),
        "source_frame_final_start": compat.timing(sequence, "left_handle"),
        "frame_final_duration": compat.timing(inserted, "duration"),
        "seed": inserted.get("vfx_seed"),
        "job_result_strip": sequence_job.result_strip,
        "files": [element.filename for element in inserted.elements],
        "directory": inserted.directory,
        "colorspace": inserted.colorspace_settings.name,
        "alpha_mode": inserted.alpha_mode,
    }
    read = compat.new_image_strip(editor, "read", str(output / "a" / "frames" / "000000.png"), 9, 1)
    record["first_frame_read_by_blender"] = {"colorspace": read.colorspace_settings.name, "alpha_mode": read.alpha_mode}
    still_job = fake_job(addon, scene, "b" * 32, job_folder(frames, output / "b", 1), still, 0.0)
    addon.common.compat.top_level_strips(editor).remove(still)  # the source was deleted: the stored place is used
    inserted = strips.insert_result_strip(scene, still_job)
    record["still_result"] = {
        "channel": inserted.channel,
        "frame_final_start": compat.timing(inserted, "left_handle"),
        "frame_final_duration": compat.timing(inserted, "duration"),
    }
    empty_job = fake_job(addon, scene, "c" * 32, output / "missing", sequence, 0.0)
    try:
        strips.insert_result_strip(scene, empty_job)
    except addon.common.errors.UserError as exc:
        record["missing_result"] = str(exc)

    empty = bpy.data.objects.new("empty", None)
    scene.collection.objects.link(empty)
    action = bpy.data.actions.new("baked")
    empty.animation_data_create().action = action
    curve = compat.fcurve_ensure(action, empty, "location", 2)
    curve.keyframe_points.add(2)
    curve.keyframe_points.foreach_set("co", [1.0, 0.0, 11.0, 5.0])
    curve.update()
    scene.frame_set(6)
    record["fcurve"] = {
        "same_curve_again": compat.fcurve_ensure(action, empty, "location", 2) == curve,
        "z_at_frame_6": empty.location.z,
        "slotted": compat.HAS_SLOTTED_ACTIONS,
        "strips_api": compat.HAS_STRIPS_API,
    }


if __name__ == "__main__":
    harness.run_scenario(
        harness.parse_args(
            ("--frames", {"required": True}), ("--output", {"required": True}), ("--video-30", {"required": True})
        ),
        main,
    )
