"""Handing memory that native libraries freed back to the operating system.

A MediaPipe graph allocates about 120 MB, much of it on the graph's own threads. When the graph closes, glibc keeps
those pages in the threads' malloc arenas, and the next graph's threads mostly take other arenas: a daemon that
builds a graph per shot and per job grew by 110-150 MB a job (363, 509, 656 MB after three pose jobs on
Megamind.avi). ``malloc_trim`` gives the free pages of every arena back.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this interpreter runs on
    except OSError:
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


_TRIM = _malloc_trim()


def release_freed_memory() -> bool:
    """Give the pages native code has freed back to the operating system, where the C library can (glibc).
    Returns whether it could. Takes a few milliseconds: call it after freeing much, not per frame."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
