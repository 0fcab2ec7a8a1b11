"""``fetch-models``: download a mode's weights from the manifest and verify every byte.

``[[file]]`` entries are checked against the size and sha256 the manifest states. ``[[snapshot]]`` entries (a
folder of a Hugging Face repository at a revision) are checked against the Hub's own file listing at that
revision: Git LFS files by sha256 and size, small files by their git blob sha1 (``sha1(b"blob <size>\\0" +
content)``), and the manifest's pins take precedence: a Hub value that disagrees with a pin stops the fetch
before anything is downloaded. Once every file of a snapshot is verified, a lock file (path, size and sha256 of
each file, revision and commit) is written into its folder; health reads it, and a later fetch checks the folder
against it without going online.

Files are downloaded to ``<target>.part`` and renamed only after they verify, so a models folder never holds a
half-downloaded or corrupt file under its real name. Files already present and correct are skipped. Without
network access the first request fails at once with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from models.manifest import (
    LOCK_NAME,
    LockedFile,
    SnapshotLock,
    WeightEntry,
    WeightFile,
    WeightSnapshot,
    files_for_mode,
    is_inside,
    sha256_of,
    snapshots_for_mode,
)
from shared.errors import VfxError

CHUNK = 1024 * 1024
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
USER_AGENT = "vfx-motion-capture-fetch-models"
_SHA1 = re.compile(r"[0-9a-f]{40}")
"""A commit hash or a git object id."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NEXT_PAGE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class FetchError(VfxError):
    code = "fetch_failed"


def hub_endpoint(explicit: str | None = None) -> str:
    """``--hub-endpoint``, else ``$HF_ENDPOINT``, else the Hugging Face Hub."""
    return (explicit or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")


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


# -- snapshots of Hugging Face repositories ------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    """One file of a snapshot as it will be verified: by sha256 (Git LFS files and pins) and/or git blob sha1."""

    path: str
    size: int
    sha256: str | None
    git_sha1: str | None
    pinned: bool


def _git_blob_sha1(size: int) -> Any:
    """A sha1 primed with git's blob header; feed it the content to get the file's git object id."""
    return hashlib.sha1(b"blob %d\0" % size)


def _request(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": USER_AGENT})


def _hub_json(url: str, endpoint: str, what: str) -> tuple[Any, str | None]:
    """GET ``url`` from the Hub API: the decoded JSON and the next page's URL (``Link: <...>; rel="next"``)."""
    try:
        with urllib.request.urlopen(_request(url), timeout=30) as response:
            body = response.read()
            link = response.headers.get("Link") or ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(f"{what}: not found at {endpoint} (HTTP 404 for {url})") from exc
        if exc.code in (401, 403):
            raise FetchError(f"{what}: {endpoint} refused access (HTTP {exc.code}); is the repository gated?") from exc
        raise FetchError(f"{what}: {endpoint} answered HTTP {exc.code} for {url}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"could not reach the Hugging Face Hub at {endpoint} ({reason}). Check the network connection, or "
            "point --hub-endpoint (or HF_ENDPOINT) at a mirror"
        ) from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise FetchError(f"{what}: {endpoint} did not answer JSON for {url}") from exc
    match = _NEXT_PAGE.search(link)
    return data, urllib.parse.urljoin(url, match.group(1)) if match else None


def hub_listing(endpoint: str, hub_repo: str, revision: str) -> tuple[str, list[dict[str, Any]]]:
    """The commit ``revision`` points to and every entry of the repository's tree at that commit."""
    what = f"{hub_repo} at revision {revision}"
    commit = revision
    if not _SHA1.fullmatch(revision):
        info, _ = _hub_json(
            f"{endpoint}/api/models/{hub_repo}/revision/{urllib.parse.quote(revision, safe='')}", endpoint, what
        )
        commit = str(info.get("sha", "")) if isinstance(info, dict) else ""
        if not _SHA1.fullmatch(commit):
            raise FetchError(f"{what}: {endpoint} did not say which commit the revision points to")
    entries: list[dict[str, Any]] = []
    url: str | None = f"{endpoint}/api/models/{hub_repo}/tree/{commit}?recursive=true"
    while url is not None:
        page, url = _hub_json(url, endpoint, what)
        if not isinstance(page, list):
            raise FetchError(f"{what}: {endpoint} answered something other than a file list")
        entries += [e for e in page if isinstance(e, dict)]
    return commit, entries


def plan_snapshot(snapshot: WeightSnapshot, entries: list[dict[str, Any]], commit: str) -> list[HubFile]:
    """The files to take from the Hub's ``entries``, each with what it must verify against.

    Refuses, before anything is downloaded: a path leaving the folder, a file without a usable checksum, a Hub
    size or sha256 that disagrees with a pin, and a pinned or listed file the revision does not have.
    """
    where = f"{snapshot.hub_repo} at {commit}"
    pins = {pin.path: pin for pin in snapshot.pins}
    files: list[HubFile] = []
    for entry in entries:
        if entry.get("type", "file") != "file":
            continue
        path = str(entry.get("path", ""))
        if not is_inside(path) or path == LOCK_NAME:
            raise FetchError(f"{where}: the Hub lists a file at {path!r}, which would leave the snapshot's folder")
        if not snapshot.selects(path):
            continue
        lfs = entry.get("lfs")
        try:
            if isinstance(lfs, dict):
                size, sha256, sha1 = int(lfs["size"]), str(lfs["oid"]).lower(), None
            else:
                size, sha256, sha1 = int(entry["size"]), None, str(entry.get("oid", "")).lower() or None
        except (KeyError, TypeError, ValueError) as exc:
            raise FetchError(f"{where}: the Hub's entry for {path} lacks its size or checksum ({exc})") from exc
        if (sha256 is not None and not _SHA256.fullmatch(sha256)) or (sha1 is not None and not _SHA1.fullmatch(sha1)):
            raise FetchError(f"{where}: the Hub's checksum for {path} is malformed")
        pin = pins.get(path)
        if pin is not None:
            if pin.size != size or (sha256 is not None and sha256 != pin.sha256):
                raise FetchError(
                    f"{where}: the Hub's {path} ({size} bytes, sha256 {sha256 or 'not given'}) disagrees with the "
                    f"manifest's pin ({pin.size} bytes, sha256 {pin.sha256}); refusing to fetch it. Either the "
                    "repository changed at this revision or the endpoint serves other files"
                )
            sha256 = pin.sha256
        if sha256 is None and sha1 is None:
            raise FetchError(f"{where}: the Hub gives no checksum for {path}, so it cannot be verified")
        files.append(HubFile(path=path, size=size, sha256=sha256, git_sha1=sha1, pinned=pin is not None))
    found = {f.path for f in files}
    for path in pins:
        if path not in found:
            raise FetchError(f"{where}: the manifest pins {path}, but the repository has no such file")
    for item in snapshot.files:
        if item.endswith("/") and not any(p.startswith(item) for p in found):
            raise FetchError(f"{where}: the manifest takes {item}, but the repository has nothing there")
        if not item.endswith("/") and item not in found:
            raise FetchError(f"{where}: the manifest takes {item}, but the repository has no such file")
    return sorted(files, key=lambda f: f.path)


def _hash_file(path: Path, item: HubFile) -> tuple[str, str | None]:
    """sha256 and (when the Hub gave one) git blob sha1 of a file on disk."""
    sha256, sha1 = hashlib.sha256(), _git_blob_sha1(item.size) if item.git_sha1 else None
    with open(path, "rb") as f:
        while block := f.read(4 * CHUNK):
            sha256.update(block)
            if sha1 is not None:
                sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None


def _verified(item: HubFile, size: int, sha256: str, sha1: str | None) -> bool:
    return (
        size == item.size
        and (item.sha256 is None or sha256 == item.sha256)
        and (item.git_sha1 is None or sha1 == item.git_sha1)
    )


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _fetch_hub_file(item: HubFile, folder: Path, url: str, label: str, out: TextIO) -> LockedFile:
    """Make ``folder/item.path`` the verified file: keep it if it already is, else download and verify it."""
    target = folder / item.path
    if _has_size(target, item.size):
        sha256, sha1 = _hash_file(target, item)
        if _verified(item, item.size, sha256, sha1):
            out.write(f"  {label}: present and verified\n")
            return LockedFile(path=item.path, size=item.size, sha256=sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest, sha1_digest = hashlib.sha256(), _git_blob_sha1(item.size) if item.git_sha1 else None
    done, started = 0, time.monotonic()
    try:
        with urllib.request.urlopen(_request(url), timeout=30) as response, open(part, "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                digest.update(block)
                if sha1_digest is not None:
                    sha1_digest.update(block)
                done += len(block)
                _bar(out, label, done, item.size, started)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"could not download {item.path} from {url}: {exc}. Check the network connection and run "
            "fetch-models again: files already verified are kept"
        ) from exc
    out.write("\n")
    sha256, sha1 = digest.hexdigest(), sha1_digest.hexdigest() if sha1_digest is not None else None
    if not _verified(item, done, sha256, sha1):
        part.unlink(missing_ok=True)
        expected = f"sha256 {item.sha256}" if item.sha256 else f"git blob sha1 {item.git_sha1}"
        got = f"sha256 {sha256}" if item.sha256 else f"git blob sha1 {sha1}"
        raise FetchError(
            f"{item.path} failed verification (got {done} bytes, {got}; expected {item.size} bytes, {expected}"
            f"{', pinned by the manifest' if item.pinned else ''}): the download was corrupted or the source "
            "changed; nothing was kept under its name"
        )
    part.replace(target)
    return LockedFile(path=item.path, size=item.size, sha256=sha256)


def _matches_lock(folder: Path, lock: SnapshotLock, out: TextIO) -> bool:
    for item in lock.files:
        target = folder / item.path
        if not _has_size(target, item.size) or sha256_of(target) != item.sha256:
            out.write(f"  {item.path}: missing or changed since it was locked\n")
            return False
    return True


def _check_disk_space(folder: Path, needed: int) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise FetchError(
            f"{folder} needs {needed / 1e9:.1f} GB more and its disk has {free / 1e9:.1f} GB free; free some space "
            "or choose another --models-dir"
        )


def fetch_snapshot(snapshot: WeightSnapshot, models_dir: Path, endpoint: str, out: TextIO = sys.stderr) -> list[Path]:
    """Bring ``snapshot``'s folder to its revision, verified, and lock it. Returns the paths of its files."""
    folder = snapshot.location(models_dir)
    lock_path = snapshot.lock_path(models_dir)
    lock = snapshot.read_lock(models_dir)
    if lock is not None:
        out.write(f"{snapshot.name}: checking {len(lock.files)} files against the lock ({lock.commit})\n")
        if _matches_lock(folder, lock, out):
            out.write(f"{snapshot.name}: present and verified against {LOCK_NAME}\n")
            return [folder / f.path for f in lock.files]
    lock_path.unlink(missing_ok=True)  # from here on the folder may change: not ready until locked again
    commit, entries = hub_listing(endpoint, snapshot.hub_repo, snapshot.revision)
    files = plan_snapshot(snapshot, entries, commit)
    total = sum(f.size for f in files)
    pending = sum(f.size for f in files if not _has_size(folder / f.path, f.size))
    out.write(
        f"{snapshot.name}: {len(files)} files ({total / 1e9:.2f} GB, {pending / 1e9:.2f} GB to download) from "
        f"{endpoint}/{snapshot.hub_repo} at {commit} into {folder} ({snapshot.licence})\n"
    )
    _check_disk_space(folder, pending)
    locked = []
    for i, item in enumerate(files, 1):
        url = f"{endpoint}/{snapshot.hub_repo}/resolve/{commit}/{urllib.parse.quote(item.path)}"
        locked.append(_fetch_hub_file(item, folder, url, f"[{i}/{len(files)}] {item.path}", out))
    SnapshotLock(
        hub_repo=snapshot.hub_repo, revision=snapshot.revision, commit=commit, endpoint=endpoint, files=tuple(locked)
    ).write(lock_path)
    out.write(f"{snapshot.name}: verified and locked in {lock_path}\n")
    return [folder / f.path for f in locked]


def fetch_mode(
    mode: str,
    manifest: Mapping[str, WeightEntry],
    models_dir: Path,
    out: TextIO = sys.stderr,
    endpoint: str = DEFAULT_HUB_ENDPOINT,
) -> list[Path]:
    files = files_for_mode(manifest, mode)
    snapshots = snapshots_for_mode(manifest, mode)
    if not files and not snapshots:
        out.write(f"mode {mode} needs no downloads\n")
        return []
    fetched: list[Path] = []
    if files:
        total = sum(f.size for f in files)
        out.write(f"fetching {len(files)} file(s) for {mode} ({total / 1e9:.2f} GB) into {models_dir}\n")
        for item in files:
            out.write(f"  {item.name} ({item.licence})\n")
        fetched += [download(item, models_dir, out) for item in files]
    for snapshot in snapshots:
        fetched += fetch_snapshot(snapshot, models_dir, endpoint, out)
    return fetched
