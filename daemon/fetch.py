"""``fetch-models``: download a mode's weight files from the manifest and verify size and sha256.

Files are downloaded to ``<target>.part`` and renamed only after the checksum matches, so a models folder
never holds a half-downloaded or corrupt file under its real name. Files already present and correct are
skipped. Without network access the first request fails at once with a message saying so.
"""

from __future__ import annotations

import hashlib
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from models.manifest import WeightFile, files_for_mode, sha256_of
from shared.errors import VfxError

CHUNK = 1024 * 1024


class FetchError(VfxError):
    code = "fetch_failed"


def _bar(out: TextIO, name: str, done: int, total: int, started: float) -> None:
    fraction = done / total if total else 1.0
    rate = done / max(1e-6, time.monotonic() - started) / 1e6
    filled = int(fraction * 30)
    out.write(
        f"\r  {name}: [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} {done / 1e6:8.1f} MB {rate:6.1f} MB/s"
    )
    out.flush()


def download(
    item: WeightFile,
    models_dir: Path,
    out: TextIO = sys.stderr,
    opener: Callable[..., object] = urllib.request.urlopen,
) -> Path:
    target = item.location(models_dir)
    if target.is_file() and target.stat().st_size == item.size and sha256_of(target) == item.sha256:
        out.write(f"  {item.name}: present and verified\n")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    done, started = 0, time.monotonic()
    try:
        with opener(item.url, timeout=30) as response, open(part, "wb") as f:  # type: ignore[attr-defined]
            while block := response.read(CHUNK):
                f.write(block)
                digest.update(block)
                done += len(block)
                _bar(out, item.name, done, item.size, started)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"could not download {item.name} from {item.url}: {exc}. Check the network connection, or download "
            f"the file by hand and place it at {target}"
        ) from exc
    out.write("\n")
    if done != item.size or digest.hexdigest() != item.sha256:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{item.name} failed verification (got {done} bytes, sha256 {digest.hexdigest()[:16]}...; expected "
            f"{item.size} bytes, {item.sha256[:16]}...): the download was corrupted or the source changed"
        )
    part.replace(target)
    return target


def fetch_mode(mode: str, manifest: dict[str, WeightFile], models_dir: Path, out: TextIO = sys.stderr) -> list[Path]:
    files = files_for_mode(manifest, mode)
    if not files:
        out.write(f"mode {mode} needs no downloads\n")
        return []
    total = sum(f.size for f in files)
    out.write(f"fetching {len(files)} file(s) for {mode} ({total / 1e9:.2f} GB) into {models_dir}\n")
    for item in files:
        out.write(f"  {item.name} ({item.licence})\n")
    return [download(item, models_dir, out) for item in files]
