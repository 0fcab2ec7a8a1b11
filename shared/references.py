"""Which saved .blend files use frames inside the daemon's job folders, so that ``prune`` keeps those jobs.

The add-on writes one small JSON file per saved .blend into ``<data dir>/references/`` when the file is saved
(:func:`record_references`): the .blend's path and the job ids whose folders its strips read. The daemon reads
them when pruning (:func:`referenced_jobs`); a record whose .blend no longer exists is dropped. Results kept beside
the .blend (``//vfx_results``) need no record: they do not live in the daemon's folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

REFERENCES_FOLDER = "references"


def _record_path(data_dir: Path, blend: Path) -> Path:
    name = hashlib.sha1(str(blend).encode("utf-8")).hexdigest()[:20]
    return data_dir / REFERENCES_FOLDER / f"{name}.json"


def record_references(data_dir: Path, blend: Path, job_ids: Iterable[str]) -> None:
    """Record that the saved file ``blend`` uses the job folders of ``job_ids`` (none: forget the file)."""
    path = _record_path(data_dir, blend)
    jobs = sorted(set(job_ids))
    if not jobs:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"blend": str(blend), "jobs": jobs}, indent=1), encoding="utf-8")
    scratch.replace(path)


def referenced_jobs(data_dir: Path) -> dict[str, list[str]]:
    """Job id -> the saved .blend files (that still exist) using its folder. Unreadable records are skipped;
    records of deleted .blend files are removed."""
    jobs: dict[str, list[str]] = {}
    folder = data_dir / REFERENCES_FOLDER
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            blend, ids = str(record["blend"]), [str(j) for j in record["jobs"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not Path(blend).is_file():
            path.unlink(missing_ok=True)
            continue
        for job_id in ids:
            jobs.setdefault(job_id, []).append(blend)
    return jobs
