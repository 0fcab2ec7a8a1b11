"""Content-addressed input storage: an array sent once is kept under its sha256 and reused by later jobs."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

import numpy as np

from shared.wire import blob_id

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    """Arrays stored as ``<root>/<sha256>.npy`` (no pickle), written atomically."""

    def __init__(self, root: Path) -> None:
        """Opened at the daemon's start, which holds the data folder's lock: no upload is under way, so the
        temporary files of uploads a crash or a full disk interrupted are removed."""
        self.root = root
        self._lock = threading.Lock()
        self._writing: set[Path] = set()
        """Temporary files of uploads being stored now."""
        root.mkdir(parents=True, exist_ok=True)
        self.remove_partial_uploads()

    def path(self, digest: str) -> Path:
        if not _SHA256.match(digest):
            raise ValueError(f"{digest!r} is not a sha256 hex digest")
        return self.root / f"{digest}.npy"

    def has(self, digest: str) -> bool:
        return _SHA256.match(digest) is not None and self.path(digest).exists()

    def put(self, array: np.ndarray) -> str:
        """Store ``array`` (if new) and return its content address."""
        digest = blob_id(array)
        target = self.path(digest)
        try:
            os.utime(target)  # stored before: as new for prune, which keeps blobs written since its cutoff
            return digest
        except FileNotFoundError:
            pass
        # unique per thread too: two I/O threads may store the same upload at once
        tmp = target.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            self._writing.add(tmp)
        try:
            with open(tmp, "wb") as out:
                np.save(out, np.ascontiguousarray(array), allow_pickle=False)
            tmp.replace(target)
        except BaseException:  # a full disk, a file size limit: leave nothing half-written behind
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with self._lock:
                self._writing.discard(tmp)
        return digest

    def remove_partial_uploads(self) -> int:
        """Delete the temporary files of interrupted uploads, not those of uploads being stored now (on the
        daemon's I/O threads). Returns the bytes freed."""
        freed = 0
        with self._lock:  # held throughout: an upload that starts meanwhile waits to register its file
            for path in self.root.glob(".*.tmp"):
                if path in self._writing:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    freed += path.stat().st_size
                    path.unlink()
        return freed

    def remove_unreferenced(self, referenced: set[str], older_than: float) -> int:
        """Delete blobs no job refers to and not written since ``older_than`` (unix seconds; a blob uploaded
        for a job that is about to be submitted is newer). Returns the bytes freed."""
        freed = 0
        for path in self.root.glob("*.npy"):
            stat = path.stat()
            if path.stem not in referenced and stat.st_mtime < older_than:
                path.unlink(missing_ok=True)
                freed += stat.st_size
        return freed

    def load(self, digest: str) -> np.ndarray:
        """The stored array, memory-mapped read-only."""
        return np.load(self.path(digest), mmap_mode="r", allow_pickle=False)
