"""Results of a daemon on another machine, copied to this one through the protocol. No bpy.

The add-on reads a succeeded job's outputs as files: ``summary.json``, ``arrays/<name>.npy`` and
``frames/000000.png...`` (the layout of ``daemon/outputs.py``). A daemon on this machine, or one whose data folder
is on a drive mounted at the same path here, is read in place. For any other daemon, :func:`download` writes the
same layout into a folder of this machine, and the job's ``output_dir`` names that folder from then on, so strips,
bakes and reports work on it unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...shared.client import Client
from ...shared.errors import VfxError
from ...shared.pose_data import frame_file_name

SUMMARY = "summary.json"
"""Written last: a folder holding it is complete."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Job ids and array names become file names here: nothing a daemon sends may reach outside the folder."""


def readable_here(output_dir: str) -> bool:
    """Whether a succeeded job's output folder, as the daemon names it, can be read on this machine."""
    return bool(output_dir) and (Path(output_dir) / SUMMARY).is_file()


def download(client: Client, job_id: str, frame_count: int, folder: Path, progress: Callable[[float], None]) -> Path:
    """Copy a succeeded job's outputs into ``folder/<job_id>`` and return that folder.

    Frames come as the daemon stored them (the PNG files' bytes), arrays and the summary as the ``result`` request
    gives them. ``progress(fraction)`` is called after each frame. The copy is built in a ``.partial`` folder and
    renamed when complete, so an interrupted download (a lost connection, Blender quitting) leaves nothing that
    looks finished; a complete copy is reused, not fetched again. Raises what the client raises.
    """
    if not _SAFE_NAME.fullmatch(job_id):
        raise VfxError(f"the daemon named a job {job_id!r:.80}, which is not a job id")
    done = folder / job_id
    if (done / SUMMARY).is_file():
        return done
    work = folder / f"{job_id}.partial"
    shutil.rmtree(work, ignore_errors=True)
    (work / "frames").mkdir(parents=True)
    (work / "arrays").mkdir()
    summary, arrays = client.result(job_id)
    unsafe = [name for name in arrays if not _SAFE_NAME.fullmatch(name)]
    if unsafe:
        raise VfxError(f"the daemon sent results of job {job_id} with names that are not file names: {unsafe!r:.200}")
    for index in range(frame_count):
        (work / "frames" / frame_file_name(index)).write_bytes(client.frame_file(job_id, index))
        progress((index + 1) / frame_count)
    for name, array in arrays.items():
        np.save(work / "arrays" / f"{name}.npy", array, allow_pickle=False)
    (work / SUMMARY).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    shutil.rmtree(done, ignore_errors=True)  # an incomplete copy left by an older version
    work.rename(done)
    return done
