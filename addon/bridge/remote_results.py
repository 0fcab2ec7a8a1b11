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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from ...shared.client import Client
from ...shared.errors import LIMIT_EXCEEDED, DaemonUnavailable, RemoteError, VfxError
from ...shared.pose_data import frame_file_name

FOLDER = "remote_results"
"""Inside the add-on's data folder: the copies, one folder per job."""
SUMMARY = "summary.json"
"""Written last: a folder holding it is complete."""
REQUEST_TIMEOUT_S = 60.0
"""A copy's requests carry whole frames and arrays, over whatever network is between the machines."""
PARALLEL_COPIES = 2
PACED_WAIT_S = 0.5
"""How long a copy waits when the daemon says it asks too fast (its per-client rate limit), before asking again."""
RETRY_AFTER_S = 30.0
"""A copy that failed (a lost connection, a full disk) is tried again at most this often, resuming."""
_Fetched = TypeVar("_Fetched")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Job ids and array names become file names here: nothing a daemon sends may reach outside the folder."""


def readable_here(job_id: str, output_dir: str) -> bool:
    """Whether a succeeded job's output folder, as the daemon names it, can be read on this machine: it is the
    daemon's ``.../<job id>/outputs`` folder (no other folder is taken for it) and holds the summary."""
    path = Path(output_dir)
    return bool(output_dir) and path.name == "outputs" and path.parent.name == job_id and (path / SUMMARY).is_file()


def download(client: Client, job_id: str, frame_count: int, folder: Path, progress: Callable[[float], None]) -> Path:
    """Copy a succeeded job's outputs into ``folder/<job_id>`` and return that folder.

    Frames come as the daemon stored them (the PNG files' bytes), arrays and the summary as the ``result`` request
    gives them. ``progress(fraction done)`` is called before each frame and before the copy is published; it may
    raise to stop the copy. The copy is built in a ``.partial`` folder, one whole file at a time, and renamed when
    complete: an interrupted copy (a lost connection, Blender quitting) resumes from the frames it has, and a
    complete one is reused, not fetched again. Raises what the client raises.
    """
    if not _SAFE_NAME.fullmatch(job_id):
        raise VfxError(f"the daemon named a job {job_id!r:.80}, which is not a job id")
    done = folder / job_id
    if (done / SUMMARY).is_file():
        return done
    work = folder / f"{job_id}.partial"
    (work / "frames").mkdir(parents=True, exist_ok=True)
    for index in range(frame_count):
        progress(index / frame_count)
        frame = work / "frames" / frame_file_name(index)
        if not frame.is_file():
            _write_whole(frame, _paced(partial(client.frame_file, job_id, index)))
    progress(1.0)
    summary, arrays = _paced(partial(client.result, job_id))
    unsafe = [name for name in arrays if not _SAFE_NAME.fullmatch(name)]
    if unsafe:
        raise VfxError(f"the daemon sent results of job {job_id} with names that are not file names: {unsafe!r:.200}")
    (work / "arrays").mkdir(exist_ok=True)
    for name, array in arrays.items():
        np.save(work / "arrays" / f"{name}.npy", array, allow_pickle=False)
    (work / SUMMARY).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    shutil.rmtree(done, ignore_errors=True)  # an incomplete copy left by an older version
    work.rename(done)
    return done


def _paced(fetch: Callable[[], _Fetched]) -> _Fetched:
    """``fetch()``, asked again after :data:`PACED_WAIT_S` while the daemon answers that this client asks too fast
    (a long job's frames can outrun the daemon's per-client rate limit)."""
    while True:
        try:
            return fetch()
        except RemoteError as exc:
            if exc.code != LIMIT_EXCEEDED:
                raise
        time.sleep(PACED_WAIT_S)


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` so that it exists only complete (a resumed copy keeps the files it finds)."""
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


@dataclass(frozen=True)
class Copy:
    """One job's copy for :class:`Downloads`. ``connect()`` makes the copy's own client (clients are not
    thread-safe). The callbacks run on the copy's thread: ``progress(fraction)`` as the copy goes, then exactly
    one of ``done(folder)`` and ``failed(message)``."""

    job_id: str
    frame_count: int
    connect: Callable[[], Client]
    progress: Callable[[float], None]
    done: Callable[[Path], None]
    failed: Callable[[str], None]


class _Closing(Exception):
    """Ends a copy when the add-on goes away."""


class Downloads:
    """Copies of succeeded jobs' results into ``folder``, each on a daemon thread of its own, at most
    :data:`PARALLEL_COPIES` at a time (a file opened with many finished jobs queues them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._running: set[str] = set()
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(PARALLEL_COPIES)
        self._closing = threading.Event()

    def start(self, copy: Copy) -> bool:
        """Start ``copy`` unless a copy of its job runs or waits, or failed less than :data:`RETRY_AFTER_S` ago,
        or :meth:`close` was called (then no callback is called either). Returns whether it started."""
        with self._lock:
            if self._closing.is_set() or copy.job_id in self._running:
                return False
            if time.monotonic() - self._failed_at.get(copy.job_id, -RETRY_AFTER_S) < RETRY_AFTER_S:
                return False
            self._running.add(copy.job_id)
        name = f"vfx-mocap-download-{copy.job_id[:8]}"
        threading.Thread(target=self._copy, args=(copy,), name=name, daemon=True).start()
        return True

    def readable_here(self, job_id: str, output_dir: str) -> bool:
        """Whether a succeeded job's results can be read as ``output_dir`` names them: the daemon's own folder
        (:func:`readable_here`) or this copy of them."""
        return readable_here(job_id, output_dir) or Path(output_dir) == self.folder / job_id

    def close(self) -> None:
        """End every copy before its next request; no callback is called after this."""
        self._closing.set()

    def _copy(self, copy: Copy) -> None:
        def checked(fraction: float) -> None:
            if self._closing.is_set():
                raise _Closing
            copy.progress(fraction)

        try:
            with self._slots, copy.connect() as client:
                folder = download(client, copy.job_id, copy.frame_count, self.folder, checked)
        except _Closing:
            return
        except Exception as exc:  # reported, and the copy resumed later: it must never just stop
            with self._lock:
                self._failed_at[copy.job_id] = time.monotonic()
            if not self._closing.is_set():
                copy.failed(_reason(exc, self.folder))
        else:
            with self._lock:
                self._failed_at.pop(copy.job_id, None)
            if not self._closing.is_set():
                copy.done(folder)
        finally:
            with self._lock:
                self._running.discard(copy.job_id)


def _reason(exc: Exception, folder: Path) -> str:
    """Why a copy failed, for the panel."""
    if isinstance(exc, DaemonUnavailable):
        return f"the daemon did not answer within {REQUEST_TIMEOUT_S:g} s; the copy resumes in {RETRY_AFTER_S:g} s"
    if isinstance(exc, VfxError):
        return exc.message
    if isinstance(exc, OSError):
        return f"cannot write into {folder}: {exc}"
    return f"{type(exc).__name__}: {exc}"
