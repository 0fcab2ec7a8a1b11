"""The weight manifest (``manifest.toml``): which files each mode needs and how to check them."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")


class ManifestError(ValueError):
    """The manifest itself is malformed (a bug in the project, or a broken user override)."""


@dataclass(frozen=True)
class WeightFile:
    name: str
    modes: tuple[str, ...]
    path: str
    url: str
    size: int
    sha256: str
    licence: str

    def location(self, models_dir: Path) -> Path:
        return models_dir / self.path

    def present(self, models_dir: Path) -> bool:
        """Cheap check used by health: the file exists with the expected size (sha256 is checked on fetch)."""
        target = self.location(models_dir)
        return target.is_file() and target.stat().st_size == self.size


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, WeightFile]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    files: dict[str, WeightFile] = {}
    for i, entry in enumerate(data.get("file", [])):
        try:
            item = WeightFile(
                name=str(entry["name"]),
                modes=tuple(entry["modes"]),
                path=str(entry["path"]),
                url=str(entry["url"]),
                size=int(entry["size"]),
                sha256=str(entry["sha256"]).lower(),
                licence=str(entry["licence"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: entry {i} is missing or has a bad field: {exc}") from exc
        if not re.fullmatch(r"[0-9a-f]{64}", item.sha256):
            raise ManifestError(f"{path}: {item.name} has a malformed sha256")
        if Path(item.path).is_absolute() or ".." in Path(item.path).parts:
            raise ManifestError(f"{path}: {item.name} path must stay inside the models folder")
        files[item.name] = item
    return files


def files_for_mode(manifest: dict[str, WeightFile], mode: str) -> list[WeightFile]:
    return [f for f in manifest.values() if mode in f.modes]


def missing_files(manifest: dict[str, WeightFile], names: Iterable[str], models_dir: Path) -> list[str]:
    """Names among ``names`` whose files are absent (or unknown to the manifest)."""
    return [n for n in names if n not in manifest or not manifest[n].present(models_dir)]


def sha256_of(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
