"""The data folder is private to the user who runs the daemon: uploaded frames, renders, landmarks, the job
database and the log are nobody else's business, whatever umask the daemon was started with."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path


def make_private(folder: Path) -> None:
    """Create ``folder`` (and its parents) if needed and make it and everything the daemon creates from now on
    private: folders 0700, files 0600.

    The process umask becomes 077, which covers every file created later however it is created (SQLite's
    WAL and SHM files, the log, job folders, uploads, renders, models). A data folder an earlier version left
    readable by others is tightened once, with its contents (group and other bits removed, symbolic links
    and other users' files left alone). Nothing to do on Windows, where a user's folders are private already.
    """
    if sys.platform == "win32":
        folder.mkdir(parents=True, exist_ok=True)
        return
    os.umask(0o077)
    folder.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0:
        return
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            _tighten(Path(root, name))
    _tighten(folder)


def _tighten(path: Path) -> None:
    with contextlib.suppress(OSError):  # gone meanwhile, or another user's file: not ours to change
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
