"""Results that survive: the data folder outside the extension, and results kept with the .blend that uses them.

- At registration the job store an older version kept inside the extension's folder is moved, once, into the
  data folder (:func:`move_old_store`); strips of files opened later that point into the old place are repointed.
- When a .blend is saved with **Keep Results With the .blend** on, every result strip whose frames are in the
  daemon's job folders gets a copy beside the file (``//vfx_results/<job id>/``, hard links where possible) and
  points there with a relative path (:func:`keep_results_beside`).
- After a save, the job folders the file's strips still use are recorded in the data folder
  (:mod:`shared.references`), so that ``prune`` keeps them and names the file.

Main thread only (Blender handlers).
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from ...shared.references import record_references
from ..bridge import remote_results
from ..bridge.data_folder import keep_beside_blend, move_old_store, remapped
from ..common import compat, preferences, runtime
from ..common.strips import JOB_ID_PROP

_moved: tuple[Path, Path] | None = None
"""(old store, data folder) once a store was moved this session: strips of files opened later are repointed."""


def _result_strips() -> list[tuple[bpy.types.ImageStrip, Path]]:
    """Every image strip that holds a job's result, with the absolute folder of its frames."""
    found = []
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        for strip in compat.all_strips(scene.sequence_editor):
            if strip.type == "IMAGE" and strip.get(JOB_ID_PROP):
                found.append((strip, Path(bpy.path.abspath(strip.directory))))
    return found


def _in_job_folders(folder: Path) -> bool:
    """Whether ``folder`` is in the job folders of a daemon on this machine (which prune may delete)."""
    jobs = preferences.data_dir() / "jobs"
    return folder.is_relative_to(jobs)


def _kept_apart_from_the_blend(folder: Path) -> bool:
    """Whether ``folder`` is a daemon's job folder or a copy of a remote daemon's results: both are copied beside
    a .blend saved with **Keep Results With the .blend**."""
    return _in_job_folders(folder) or folder.is_relative_to(preferences.data_dir() / remote_results.FOLDER)


def move_old_store_once() -> None:
    """Move an older version's store out of the extension's folder (only when no data folder was chosen)."""
    global _moved
    if preferences.get().output_dir:
        return
    old, new = preferences.old_store_dir(), preferences.data_dir()
    message = move_old_store(old, new)
    if not message:
        return
    print(f"VFX Motion Capture: {message}")
    runtime.get().notice = message
    if message.startswith("Moved"):
        _moved = (old, new)


@persistent
def repoint_moved_results(*_args: object) -> None:
    """load_post: strips (and jobs) that point into the moved store point into the data folder instead."""
    if _moved is None:
        return
    old, new = _moved
    for strip, folder in _result_strips():
        moved = remapped(str(folder), old, new)
        if moved is not None:
            strip.directory = moved + os.sep
    for scene in bpy.data.scenes:
        for job in scene.vfx_mocap.jobs:
            moved = remapped(job.output_dir, old, new)
            if moved is not None:
                job.output_dir = moved


@persistent
def keep_results_beside(filepath: str = "", *_args: object) -> None:
    """save_pre: copy the results the file's strips show from the job folders to ``//vfx_results`` beside the
    file being written, and point the strips there. A result that cannot be copied stays where it is (reported)."""
    if not filepath or not preferences.get().keep_results_with_blend:
        return
    blend_dir = Path(filepath).parent
    # Relative to where Blender resolves "//" now: when saving to another folder Blender rebases relative paths
    # from the current file's folder to the new one while writing.
    base = Path(bpy.data.filepath).parent if bpy.data.filepath else blend_dir
    for strip, folder in _result_strips():
        if not _kept_apart_from_the_blend(folder) or not folder.is_dir():
            continue
        try:
            kept = keep_beside_blend(folder, blend_dir, str(strip[JOB_ID_PROP]))
        except OSError as exc:
            runtime.report_internal_error(f"Keeping the result of strip '{strip.name}' beside the .blend", exc)
            continue
        strip.directory = bpy.path.relpath(str(kept), start=str(base)) + "/"


@persistent
def record_job_folders_in_use(filepath: str = "", *_args: object) -> None:
    """save_post: record which job folders the saved file still uses, so that prune keeps them."""
    if not filepath:
        return
    jobs = {str(strip[JOB_ID_PROP]) for strip, folder in _result_strips() if _in_job_folders(folder)}
    try:
        record_references(preferences.data_dir(), Path(filepath), jobs)
    except OSError as exc:
        runtime.report_internal_error("Recording which results the saved file uses", exc)


HANDLERS = (
    ("load_post", repoint_moved_results),
    ("save_pre", keep_results_beside),
    ("save_post", record_job_folders_in_use),
)


def register() -> None:
    move_old_store_once()
    for name, handler in HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)


def unregister() -> None:
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)
