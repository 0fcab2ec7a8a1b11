"""Where the daemon's data lives for the add-on, and keeping results with the .blend that uses them. No bpy.

- :func:`move_old_store`: versions before 0.2 kept the job database, job folders and weights inside the
  extension's own user folder, which Blender deletes with the extension. They are moved, once, into the platform's
  data folder (:func:`shared.connection.default_data_dir`).
- :func:`keep_beside_blend`: a result inserted into a saved .blend is copied (hard-linked where the file system
  allows) into ``<folder of the .blend>/vfx_results/<job id>/``, so the file and its media travel together.

Which saved .blend files still use frames inside the daemon's job folders is recorded by
:mod:`shared.references`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

RESULTS_FOLDER = "vfx_results"
"""Beside a saved .blend: one sub-folder per kept job."""
STORE_MARKER = "jobs.sqlite3"
"""A data folder holds a job store when this file is in it."""


def _held_by_a_daemon(folder: Path) -> bool:
    """Whether a daemon still runs on ``folder`` (it holds ``daemon.lock``; POSIX only, elsewhere moving an open
    file fails and is reported)."""
    lock_path = folder / "daemon.lock"
    if sys.platform == "win32" or not lock_path.is_file():
        return False
    import fcntl

    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return False


def move_old_store(old: Path, new: Path) -> str:
    """Move the job store an older version kept in ``old`` (inside the extension's folder) into ``new``.

    Returns the message to show the user, or "" when there was nothing to move. Nothing is merged: when ``new``
    already holds a store, or a daemon still runs on ``old``, ``old`` stays where it is and the message says so.
    """
    if not (old / STORE_MARKER).is_file():
        return ""
    if _held_by_a_daemon(old):
        return f"The job store in {old} is still in use by a daemon; it is moved to {new} after that daemon stops."
    if (new / STORE_MARKER).is_file():
        return (
            f"An older job store was left in {old} because {new} already holds one. Blender deletes {old} when the "
            "extension is removed: copy any results you still need out of it."
        )
    new.mkdir(parents=True, exist_ok=True)
    try:
        for entry in sorted(old.iterdir()):
            shutil.move(str(entry), str(new / entry.name))
    except OSError as exc:
        return f"Moving the job store from {old} to {new} stopped half way ({exc}); move the rest by hand."
    with contextlib.suppress(OSError):
        old.rmdir()
    return (
        f"Moved the job history, results and weights from the extension's folder ({old}) to {new}, where removing "
        "or updating the extension no longer deletes them."
    )


def remapped(path: str, old: Path, new: Path) -> str | None:
    """``path`` with the moved store's prefix ``old`` replaced by ``new``; None when ``path`` is not inside ``old``."""
    try:
        rest = Path(path).relative_to(old)
    except ValueError:
        return None
    return str(new / rest) + (os.sep if path.endswith(("/", "\\")) else "")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # frames are never rewritten: sharing them costs no space
    except OSError:
        shutil.copy2(source, target)


def keep_beside_blend(frames: Path, blend_dir: Path, job_id: str) -> Path:
    """The folder ``<blend_dir>/vfx_results/<job_id>/`` holding a copy of every file in ``frames``; made once.

    The copy is assembled under a temporary name and renamed into place, so a folder under the real name is
    always complete. Raises OSError when it cannot be written.
    """
    target = blend_dir / RESULTS_FOLDER / job_id
    if target.is_dir():
        return target
    partial = target.with_name(f".{job_id}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for source in sorted(frames.iterdir()):
        if source.is_file():
            _link_or_copy(source, partial / source.name)
    partial.rename(target)
    return target
