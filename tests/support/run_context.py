"""A real ``models.runner.RunContext`` for running a runner directly, without the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.runner import JobCancelled


class RecordingContext:
    """Writes into ``output_dir``, keeps every progress call (with a copy of its preview frame, or None) and log
    line, and cancels once ``cancel_after`` progress calls were made (never when None)."""

    def __init__(self, output_dir: Path, cancel_after: int | None = None, device: Any = "cpu") -> None:
        self.output_dir = output_dir
        self.device = device
        self.progress_calls: list[tuple[float, str, np.ndarray | None]] = []
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    def progress(self, fraction: float, stage: str, preview: np.ndarray | None = None) -> None:
        self.progress_calls.append((fraction, stage, None if preview is None else preview.copy()))

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.progress_calls) >= self.cancel_after

    def raise_if_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled()

    def log(self, message: str) -> None:
        self.messages.append(message)
