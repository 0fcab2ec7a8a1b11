"""Main-thread time to insert a finished job's result strip (270 frames) into the sequencer, in real Blender.

    .venv-bpy50/bin/python -m scripts.bench.blender.strip_insert [--frames 270] [--repeats 7]

The extension is installed into a temporary Blender user folder; job folders of ``--frames`` PNG frames (the
daemon's layout, 720x528 and 1920x1080 skeleton renders) are written once. Each repeat times
``strips.insert_result_strip`` for a fresh job, the whole call as the timer tick runs it (listing the frames,
making the strip, its elements and properties). The baseline, timed in the same run, is the plain way: ``new_image``
on the first frame, then one ``elements.append`` per frame. Goal: the insertion's median <= 4 ms at both sizes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from scripts.bench import common
from scripts.bench.blender.extension import install_extension

GOAL_MS = 4.0
SIZES = {"528p": (720, 528), "1080p": (1920, 1080)}


def write_job_folder(bpy, folder: Path, size: tuple[int, int], frames: int) -> Path:
    """``folder/frames/000000.png``...: one skeleton-like PNG saved by Blender, copied ``frames`` times."""
    (folder / "frames").mkdir(parents=True)
    width, height = size
    image = bpy.data.images.new("frame", width, height)
    pixels = np.zeros((height, width, 4), np.float32)
    pixels[..., 3] = 1.0
    pixels[height // 3 : height // 2, width // 3 : width // 2, 1] = 1.0
    image.pixels.foreach_set(pixels.ravel())
    first = folder / "frames" / "000000.png"
    image.filepath_raw, image.file_format = str(first), "PNG"
    image.save()
    bpy.data.images.remove(image)
    for index in range(1, frames):
        shutil.copyfile(first, folder / "frames" / f"{index:06d}.png")
    return folder


def plain_insert(editor, compat, folder: Path, channel: int) -> float:
    """The baseline: new_image on the first file (Blender decodes it), one append per further frame; ms."""
    began = time.perf_counter()
    names = sorted(path.name for path in (folder / "frames").glob("*.png"))
    strip = compat.new_image_strip(editor, "plain", str(folder / "frames" / names[0]), channel, 1)
    for name in names[1:]:
        strip.elements.append(name)
    return (time.perf_counter() - began) * 1000.0


def run(args: argparse.Namespace, work: Path) -> dict:
    addon = install_extension(work)
    import bpy

    strips, compat = addon.common.strips, addon.common.compat
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    numbers: dict = {"blender": bpy.app.version_string, "frames": args.frames, "repeats": args.repeats}
    for label, size in SIZES.items():
        folder = write_job_folder(bpy, work / label, size, args.frames)
        inserted, plain = [], []
        for repeat in range(args.repeats + 1):  # the first of each is a warm-up
            job = types.SimpleNamespace(
                name=f"{label}-{repeat}", mode="pose", output_dir=str(folder), params={}, result_strip="",
                source_strip="", source_frame_start=1, source_channel=1, source_frame_count=args.frames, licences="",
                strip_props_json="",
            )  # fmt: skip
            began = time.perf_counter()
            strip = strips.insert_result_strip(scene, job)
            elapsed = (time.perf_counter() - began) * 1000.0
            if len(strip.elements) != args.frames or compat.timing(strip, "duration") != args.frames:
                raise RuntimeError(f"the inserted strip has {len(strip.elements)} elements, not {args.frames}")
            baseline = plain_insert(editor, compat, folder, strip.channel + 1)
            if repeat:
                inserted.append(elapsed)
                plain.append(baseline)
        numbers[label] = {
            "insert_ms_median": round(statistics.median(inserted), 3),
            "insert_ms_max": round(max(inserted), 3),
            "plain_ms_median": round(statistics.median(plain), 3),
            "insert_runs_ms": [round(value, 3) for value in inserted],
            "plain_runs_ms": [round(value, 3) for value in plain],
        }
    return numbers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=270)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vfx-bench-strip-"))
    try:
        numbers = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Blender {numbers['blender']}: inserting a {args.frames}-frame result strip, medians of {args.repeats}")
    for label in SIZES:
        n = numbers[label]
        print(
            f"  {label:<6} insert_result_strip {n['insert_ms_median']:7.2f} ms (max {n['insert_ms_max']:.2f})   "
            f"new_image on the first frame + appends {n['plain_ms_median']:7.2f} ms"
        )
    worst = max(numbers[label]["insert_ms_median"] for label in SIZES)
    headline = ", ".join(f"{numbers[label]['insert_ms_median']:.2f} ms ({label})" for label in SIZES)
    common.result_line(numbers, headline, worst <= GOAL_MS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
