"""The weight manifest (``manifest.toml``): which weights each mode needs and how to check them.

Two kinds of entry:

- ``[[file]]``: one file with its URL, exact size and sha256, all written in the manifest.
- ``[[snapshot]]``: a folder of a Hugging Face repository at a pinned revision. The manifest names the
  repository, the revision and which of its files to take; the sizes and checksums come from the Hub's file
  listing at fetch time (sha256 for Git LFS files, the git blob sha1 for small ones), except where the manifest
  pins a file's size and sha256 itself (``[[snapshot.pin]]``): a pin wins, and a Hub value that disagrees with it
  stops the fetch. After every file is verified, ``fetch-models`` writes a lock file into the folder
  (:data:`LOCK_NAME`: revision, commit, each file's path, size and sha256 as downloaded); readiness and later
  fetches check the folder against it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")

LOCK_NAME = "vfx-snapshot.lock.json"
"""The lock file ``fetch-models`` writes into a snapshot's folder once every file is verified."""

LOCK_FORMAT = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HUB_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


class ManifestError(ValueError):
    """The manifest itself is malformed (a bug in the project, or a broken user override)."""


def is_inside(relative: str) -> bool:
    """Whether the relative path ``relative`` stays inside the folder it is relative to."""
    parts = PurePosixPath(relative).parts
    return bool(parts) and not PurePosixPath(relative).is_absolute() and ".." not in parts and "\\" not in relative


@dataclass(frozen=True)
class WeightFile:
    """A ``[[file]]`` entry: one file, its source, exact size and sha256."""

    name: str
    modes: tuple[str, ...]
    path: str
    url: str
    size: int
    sha256: str
    licence: str

    def location(self, models_dir: Path) -> Path:
        return models_dir / self.path

    def problem(self, models_dir: Path) -> str | None:
        """Why the file is not ready, or None when it is: the cheap check health and submit make (the file
        exists with the expected size; sha256 is checked by ``fetch-models``)."""
        target = self.location(models_dir)
        if not target.is_file():
            return "missing"
        size = target.stat().st_size
        return None if size == self.size else f"{size} bytes, expected {self.size}"

    def present(self, models_dir: Path) -> bool:
        return self.problem(models_dir) is None


@dataclass(frozen=True)
class FilePin:
    """A snapshot file's size and sha256 as the manifest states them (from a published Git LFS pointer)."""

    path: str
    """Relative to the snapshot's folder, as in the repository."""
    size: int
    sha256: str


@dataclass(frozen=True)
class LockedFile:
    path: str
    """Relative to the snapshot's folder."""
    size: int
    """Bytes, as downloaded and verified."""
    sha256: str


@dataclass(frozen=True)
class SnapshotLock:
    """What ``fetch-models`` verified and wrote into a snapshot's folder (:data:`LOCK_NAME`)."""

    hub_repo: str
    revision: str
    """The revision the manifest asked for."""
    commit: str
    """The commit that revision pointed to when the files were fetched."""
    endpoint: str
    """Where they came from (the Hub, or a mirror)."""
    files: tuple[LockedFile, ...]

    def write(self, path: Path) -> None:
        """Write atomically: a reader sees the old lock, no lock, or the whole new one."""
        data = {
            "format": LOCK_FORMAT,
            "hub_repo": self.hub_repo,
            "revision": self.revision,
            "commit": self.commit,
            "endpoint": self.endpoint,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        scratch.replace(path)

    @classmethod
    def read(cls, path: Path) -> SnapshotLock | None:
        """The lock at ``path``; None when it is absent, unreadable or not a lock this version writes."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != LOCK_FORMAT:
                return None
            files = tuple(
                LockedFile(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"])) for f in data["files"]
            )
            lock = cls(
                hub_repo=str(data["hub_repo"]),
                revision=str(data["revision"]),
                commit=str(data["commit"]),
                endpoint=str(data["endpoint"]),
                files=files,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if not all(is_inside(f.path) for f in files):
            return None
        return lock


@dataclass(frozen=True)
class WeightSnapshot:
    """A ``[[snapshot]]`` entry: files of a Hugging Face repository at a revision, in a folder of their own."""

    name: str
    modes: tuple[str, ...]
    path: str
    """The folder, relative to the models folder; the repository's layout is kept inside it."""
    hub_repo: str
    """``owner/name`` on the Hub."""
    revision: str
    """A commit hash (reproducible) or a branch name."""
    licence: str
    files: tuple[str, ...]
    """Which files to take: an entry ending in ``/`` takes everything below that folder, any other entry that
    exact file. Empty: the whole repository."""
    pins: tuple[FilePin, ...]
    download_size: int = 0
    """About how many bytes the selected files are (the manifest's estimate, for the UI); 0 when not stated."""

    def location(self, models_dir: Path) -> Path:
        return models_dir / self.path

    def lock_path(self, models_dir: Path) -> Path:
        return self.location(models_dir) / LOCK_NAME

    def selects(self, path: str) -> bool:
        """Whether the repository file ``path`` is one to take."""
        if not self.files:
            return True
        return any(path.startswith(item) if item.endswith("/") else path == item for item in self.files)

    def read_lock(self, models_dir: Path) -> SnapshotLock | None:
        """The folder's lock if it was written for this entry (same repository, revision and pins)."""
        lock = SnapshotLock.read(self.lock_path(models_dir))
        return lock if lock is not None and self._lock_problem(lock) is None else None

    def _lock_problem(self, lock: SnapshotLock) -> str | None:
        """Why ``lock`` was not written for this entry, or None when it was."""
        if lock.hub_repo != self.hub_repo or lock.revision != self.revision:
            return (
                f"fetched from {lock.hub_repo} at {lock.revision}, but the manifest asks for {self.hub_repo} at "
                f"{self.revision}"
            )
        locked = {f.path: f for f in lock.files}
        for pin in self.pins:
            entry = locked.get(pin.path)
            if entry is None or entry.size != pin.size or entry.sha256 != pin.sha256:
                return f"{pin.path} was fetched with another size or sha256 than the manifest pins"
        absent = [item for item in self.files if not item.endswith("/") and item not in locked]
        return f"{absent[0]} was never fetched" if absent else None

    def problem(self, models_dir: Path, shown: int = 3) -> str | None:
        """Why the folder is not ready, or None when it is: the cheap check health and submit make (the lock
        matches this entry and every locked file exists with its locked size, see :func:`locked_files_problem`;
        checksums are checked by ``fetch-models``)."""
        lock_path = self.lock_path(models_dir)
        lock = SnapshotLock.read(lock_path)
        if lock is None:
            return f"{LOCK_NAME} is unreadable" if lock_path.exists() else "no lock file (never fetched)"
        return self._lock_problem(lock) or locked_files_problem(self.location(models_dir), lock, shown)

    def present(self, models_dir: Path) -> bool:
        return self.problem(models_dir) is None


def locked_files_problem(folder: Path, lock: SnapshotLock, shown: int = 3) -> str | None:
    """The first ``shown`` of ``lock``'s files that are missing from ``folder`` or have another size than locked,
    described (e.g. ``vae/config.json is missing``); None when every one is there at its locked size."""
    wrong = []
    for item in lock.files:
        target = folder / item.path
        if not target.is_file():
            wrong.append(f"{item.path} is missing")
        elif target.stat().st_size != item.size:
            wrong.append(f"{item.path} is {target.stat().st_size} bytes, locked at {item.size}")
    if not wrong:
        return None
    more = f" and {len(wrong) - shown} more" if len(wrong) > shown else ""
    return ", ".join(wrong[:shown]) + more


WeightEntry = WeightFile | WeightSnapshot
"""One entry of the manifest, of either kind; runners list entry names in their ``weights``."""


def _relative_path(value: Any, where: str) -> str:
    text = str(value)
    if not is_inside(text.rstrip("/") or "/"):
        raise ManifestError(f"{where}: path {text!r} must be relative and stay inside its folder")
    return text


def _load_file(entry: Mapping[str, Any], where: str) -> WeightFile:
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
        raise ManifestError(f"{where} is missing or has a bad field: {exc}") from exc
    if not _SHA256.fullmatch(item.sha256):
        raise ManifestError(f"{where}: {item.name} has a malformed sha256")
    if not is_inside(item.path):
        raise ManifestError(f"{where}: {item.name} path must stay inside the models folder")
    return item


def _load_snapshot(entry: Mapping[str, Any], where: str) -> WeightSnapshot:
    try:
        name = str(entry["name"])
        where = f"{where} ({name})"
        pins = tuple(
            FilePin(path=_relative_path(pin["path"], where), size=int(pin["size"]), sha256=str(pin["sha256"]).lower())
            for pin in entry.get("pin", [])
        )
        item = WeightSnapshot(
            name=name,
            modes=tuple(entry["modes"]),
            path=_relative_path(entry["path"], where),
            hub_repo=str(entry["hub_repo"]),
            revision=str(entry["revision"]),
            licence=str(entry["licence"]),
            files=tuple(_relative_path(f, where) for f in entry.get("files", [])),
            pins=pins,
            download_size=int(entry.get("download_size", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{where} is missing or has a bad field: {exc}") from exc
    if not _HUB_REPO.fullmatch(item.hub_repo):
        raise ManifestError(f"{where}: hub_repo {item.hub_repo!r} is not owner/name")
    if not item.revision or any(c.isspace() for c in item.revision):
        raise ManifestError(f"{where}: revision {item.revision!r} is not a commit hash or branch name")
    for pin in item.pins:
        if not _SHA256.fullmatch(pin.sha256):
            raise ManifestError(f"{where}: the pin of {pin.path} has a malformed sha256")
        if not item.selects(pin.path):
            raise ManifestError(f"{where}: {pin.path} is pinned but not among the files the snapshot takes")
    if len({pin.path for pin in item.pins}) != len(item.pins):
        raise ManifestError(f"{where}: a file is pinned twice")
    return item


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, WeightEntry]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    entries: dict[str, WeightEntry] = {}
    loaded: list[WeightEntry] = [_load_file(e, f"{path}: [[file]] {i}") for i, e in enumerate(data.get("file", []))]
    loaded += [_load_snapshot(e, f"{path}: [[snapshot]] {i}") for i, e in enumerate(data.get("snapshot", []))]
    for item in loaded:
        if item.name in entries:
            raise ManifestError(f"{path}: two entries are named {item.name!r}")
        entries[item.name] = item
    return entries


def files_for_mode(manifest: Mapping[str, WeightEntry], mode: str) -> list[WeightFile]:
    return [f for f in manifest.values() if isinstance(f, WeightFile) and mode in f.modes]


def snapshots_for_mode(manifest: Mapping[str, WeightEntry], mode: str) -> list[WeightSnapshot]:
    return [s for s in manifest.values() if isinstance(s, WeightSnapshot) and mode in s.modes]


def missing_weights(manifest: Mapping[str, WeightEntry], names: Iterable[str], models_dir: Path) -> list[str]:
    """One line per entry among ``names`` that is not ready: its name, path and what is wrong (for health and the
    submit-time error), e.g. ``weights owner/repo (repo): no lock file (never fetched)``."""
    lines = []
    for name in names:
        entry = manifest.get(name)
        problem = "not in the manifest" if entry is None else entry.problem(models_dir)
        if problem is not None:
            where = f" ({entry.path})" if entry is not None else ""
            lines.append(f"weights {name}{where}: {problem}")
    return lines


def sha256_of(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
