"""Results of a daemon on another machine, copied to this one through the protocol. No bpy.

The add-on reads a succeeded job's outputs as files: ``summary.json``, ``arrays/<name>.npy`` and
``frames/000000.png...`` (the layout of ``daemon/outputs.py``). A daemon on this machine, or one whose data folder
is on a drive mounted at the same path here, is read in place. For any other daemon, :func:`download` writes the
same layout into a folder of this machine, and the job's ``output_dir`` names that folder from then on, so strips,
bakes and reports work on it unchanged. :class:`Downloads` runs each copy on a thread of its own, so the
connection thread goes on serving requests and events meanwhile.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
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


RETRY_AFTER_S = 30.0
"""A copy that failed (a lost connection, a full disk) is tried again at most this often."""


class _Closing(Exception):
    """Ends a copy when the add-on goes away."""


class Downloads:
    """Copies of succeeded jobs' results into ``folder``, each on a daemon thread of its own (Blender may quit
    during one: the ``.partial`` folder it leaves is replaced by the next try)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._running: set[str] = set()
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def start(
        self,
        job_id: str,
        frame_count: int,
        connect: Callable[[], Client],
        progress: Callable[[float], None],
        done: Callable[[Path], None],
        failed: Callable[[str], None],
    ) -> bool:
        """Start copying ``job_id`` unless a copy of it runs, or failed less than :data:`RETRY_AFTER_S` ago.
        ``connect()`` makes the copy's own client (clients are not thread-safe). The callbacks run on the copy's
        thread: ``progress(fraction)`` after each frame, then exactly one of ``done(folder)`` and
        ``failed(message)`` (neither once :meth:`close` was called). Returns whether a copy started."""
        with self._lock:
            if self._closing.is_set() or job_id in self._running:
                return False
            if time.monotonic() - self._failed_at.get(job_id, -RETRY_AFTER_S) < RETRY_AFTER_S:
                return False
            self._running.add(job_id)
        args = (job_id, frame_count, connect, progress, done, failed)
        threading.Thread(target=self._copy, args=args, name=f"vfx-mocap-download-{job_id[:8]}", daemon=True).start()
        return True

    def close(self) -> None:
        """End every copy at its next frame."""
        self._closing.set()

    def _copy(
        self,
        job_id: str,
        frame_count: int,
        connect: Callable[[], Client],
        progress: Callable[[float], None],
        done: Callable[[Path], None],
        failed: Callable[[str], None],
    ) -> None:
        def checked(fraction: float) -> None:
            if self._closing.is_set():
                raise _Closing
            progress(fraction)

        try:
            with connect() as client:
                copy = download(client, job_id, frame_count, self.folder, checked)
        except _Closing:
            return
        except (VfxError, OSError) as exc:
            with self._lock:
                self._failed_at[job_id] = time.monotonic()
            failed(exc.message if isinstance(exc, VfxError) else f"cannot write into {self.folder}: {exc}")
        else:
            done(copy)
        finally:
            with self._lock:
                self._running.discard(job_id)
