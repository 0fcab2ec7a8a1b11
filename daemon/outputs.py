"""Job folders: where a job's work happens and where its published outputs live.

Layout under the data directory::

    jobs/<job_id>/work/        written by the runner while it runs (frames/, ...)
    jobs/<job_id>/outputs/     the last successful run: frames/000000.png..., arrays/<name>.npy, summary.json

A run writes into ``work/``; on success ``work/`` is renamed to ``outputs/`` in one step, so a reader sees
either the previous complete result or the new complete result, never a half-written one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Matched with ``fullmatch`` (``$`` would let a trailing newline through); see :func:`valid_job_id`."""


def valid_job_id(job_id: object) -> TypeGuard[str]:
    """Whether ``job_id`` can name a job folder: 1-64 letters, digits, '_', '-', '.', starting with a letter or
    digit, and no '..' (which would name the folder above)."""
    return isinstance(job_id, str) and JOB_ID_PATTERN.fullmatch(job_id) is not None and ".." not in job_id


class JobFolders:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        if not valid_job_id(job_id):
            raise ValueError(f"{job_id!r} is not a valid job id")
        return self.root / job_id

    def outputs(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "outputs"

    def fresh_work_dir(self, job_id: str) -> Path:
        """An empty ``work/`` folder for a new attempt (leftovers of a crashed attempt are removed)."""
        work = self.job_dir(job_id) / "work"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        return work

    def publish(self, job_id: str, work: Path, summary: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
        """Write arrays and the summary into ``work`` and swap it in as ``outputs`` atomically."""
        (work / "arrays").mkdir(exist_ok=True)
        for name, array in arrays.items():
            if not re.match(r"^[A-Za-z0-9_]+$", name):
                raise ValueError(f"array name {name!r} must be letters, digits and underscores")
            np.save(work / "arrays" / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        outputs = self.outputs(job_id)
        if outputs.exists():
            old = outputs.with_name("outputs.old")
            if old.exists():
                shutil.rmtree(old)
            outputs.rename(old)
            work.rename(outputs)
            shutil.rmtree(old)
        else:
            work.rename(outputs)
        return outputs

    def size(self, job_id: str) -> int:
        """Bytes in a job's folder (0 when it has none)."""
        return sum(p.stat().st_size for p in self.job_dir(job_id).rglob("*") if p.is_file())

    def remove(self, job_id: str) -> int:
        """Delete a job's folder; returns the bytes freed."""
        folder = self.job_dir(job_id)
        if not folder.exists():
            return 0
        freed = self.size(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        return freed

    def discard_work(self, job_id: str) -> None:
        work = self.job_dir(job_id) / "work"
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)

    def read_arrays(self, job_id: str) -> dict[str, np.ndarray]:
        folder = self.outputs(job_id) / "arrays"
        if not folder.is_dir():
            return {}
        return {p.stem: np.load(p, allow_pickle=False) for p in sorted(folder.glob("*.npy"))}

    def frame_file(self, job_id: str, index: int) -> Path:
        return self.outputs(job_id) / "frames" / f"{index:06d}.png"
