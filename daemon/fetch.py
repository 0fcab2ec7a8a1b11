"""``fetch-models``: download a mode's weights from the manifest and verify every byte.

``[[file]]`` entries are checked against the size and sha256 the manifest states. ``[[snapshot]]`` entries (a
folder of a Hugging Face repository at a revision) are checked against the Hub's own file listing at that
revision: Git LFS files by sha256 and size, small files by their git blob sha1 (``sha1(b"blob <size>\\0" +
content)``), and the manifest's pins take precedence: a Hub value that disagrees with a pin stops the fetch
before anything is downloaded. Once every file of a snapshot is verified, a lock file (path, size and sha256 of
each file, revision and commit) is written into its folder; health reads it, and a later fetch checks the folder
against it without going online.

Files are downloaded to ``<target>.part`` and renamed only after they verify, so a models folder never holds a
half-downloaded or corrupt file under its real name. An interrupted download keeps its ``.part``: the next fetch
asks only for the missing bytes (an HTTP range request) and hashes the kept part first. A file that fails
verification is deleted, ``.part`` included. Files already present and correct are skipped, and a file already
in the standard Hugging Face cache (``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) at the same
revision is taken from there (hard-linked where the disk allows) once it verifies. Requests to the Hub carry the
access token ``huggingface_hub`` finds in its standard places (``HF_TOKEN``, or the file ``hf auth login``
writes); it is dropped when a download is redirected to another host. Without network access the first request
fails at once with a message saying so. A repository or revision the Hub no longer has is named as such, with the
way out documented in docs/models.md ("When a download no longer resolves").
"""

from __future__ import annotations

import hashlib
import http.client
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
_HUB_FILE_URL = re.compile(r"https?://[^/]+/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>[^?#]+)")
WAY_OUT = (
    'see docs/models.md, "When a download no longer resolves": place the file by hand (it is checked by its '
    "sha256), point --manifest at a manifest with a revision that exists, or --hub-endpoint at a mirror"
)


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


class _DropTokenOnOtherHost(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never send the Hub token to another host (the Hub redirects large files to a CDN)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_DropTokenOnOtherHost)


def _hub_token() -> str | None:
    """The access token from huggingface_hub's standard places, or None."""
    from huggingface_hub import get_token

    return get_token()


def _request(url: str, extra: Mapping[str, str] | None = None) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT, **(extra or {})}
    token = _hub_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(url, headers=headers)


def _from_hf_cache(hub_repo: str, revision: str, path: str) -> Path | None:
    """The file ``path`` of ``hub_repo`` at ``revision`` in the standard Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_repo, path, revision=revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _place(source: Path, target: Path) -> None:
    """Put a verified ``source`` at ``target`` through ``<target>.part`` (a hard link where possible)."""
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    source = source.resolve()  # the cache's snapshot entries are symbolic links to its blobs
    try:
        os.link(source, part)
    except OSError:
        shutil.copyfile(source, part)
    part.replace(target)


def _resume(url: str, part: Path, size: int, hashers: list[Any], label: str, out: TextIO) -> int:
    """Bring ``part`` to ``size`` bytes from ``url``, resuming after the bytes it already holds, feeding every byte
    to ``hashers``. Returns the bytes transferred now. Raises the network errors as they come; ``part`` keeps what
    arrived."""
    have = part.stat().st_size if part.is_file() else 0
    if have > size:
        part.unlink()
        have = 0
    if have:
        with open(part, "rb") as f:
            while block := f.read(4 * CHUNK):
                for h in hashers:
                    h.update(block)
    if have == size:
        return 0
    done, started = 0, time.monotonic()
    with _OPENER.open(_request(url, {"Range": f"bytes={have}-"} if have else None), timeout=30) as response:
        if have and response.status != 206:  # the server ignored the range: start again from the first byte
            out.write(f"  {label}: the server cannot resume; downloading from the start\n")
            raise _RestartFromZero
        if have:
            out.write(f"  {label}: resuming after {have / 1e6:.1f} MB already downloaded\n")
        with open(part, "ab" if have else "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                for h in hashers:
                    h.update(block)
                done += len(block)
                _bar(out, label, have + done, size, started)
    out.write("\n")
    return done


class _RestartFromZero(Exception):
    """The server answered a range request with the whole file: the kept part is dropped and the fetch repeated."""


def _download_verified(
    url: str,
    target: Path,
    size: int,
    check: Callable[[], tuple[list[Any], Callable[[list[Any]], str | None]]],
    label: str,
    out: TextIO,
) -> list[Any]:
    """Download ``url`` into ``target`` through ``<target>.part`` (resumable); ``check()`` gives fresh hashers and
    a function naming what is wrong with their digests (None: verified). Returns the hashers of the verified file.
    Raises FetchError; on a verification failure nothing is left under either name."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        hashers, problem_of = check()
        try:
            _resume(url, part, size, hashers, label, out)
        except _RestartFromZero:
            part.unlink(missing_ok=True)
            continue
        except urllib.error.HTTPError as exc:
            raise _http_failure(exc, label, url) from exc
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
            raise _interrupted(label, url, part, getattr(exc, "reason", exc)) from exc
        got = part.stat().st_size
        if got < size:  # the connection ended early without an error
            raise _interrupted(label, url, part, f"the connection closed after {got} of {size} bytes")
        problem = f"got {got} bytes, expected {size}" if got != size else problem_of(hashers)
        if problem is not None:
            part.unlink(missing_ok=True)
            raise FetchError(
                f"{label} failed verification ({problem}): the download was corrupted or the source changed; nothing "
                "was kept under its name"
            )
        part.replace(target)
        return hashers
    raise FetchError(f"{label}: {url} keeps ignoring range requests")


def _interrupted(label: str, url: str, part: Path, reason: object) -> FetchError:
    kept = part.stat().st_size if part.is_file() else 0
    return FetchError(
        f"could not download {label} from {url}: {reason}. Check the network connection and run fetch-models "
        f"again: it resumes after the {kept / 1e6:.1f} MB already downloaded"
    )


def _http_failure(exc: urllib.error.HTTPError, what: str, url: str) -> FetchError:
    if exc.code == 404:
        return FetchError(f"{what}: {url} no longer resolves (HTTP 404); {WAY_OUT}")
    if exc.code in (401, 403):
        return FetchError(
            f"{what}: access refused (HTTP {exc.code}) for {url}; for a gated repository accept its terms on the Hub "
            "and log in with `hf auth login` (or set HF_TOKEN)"
        )
    return FetchError(f"{what}: HTTP {exc.code} for {url}")


def download(item: WeightFile, models_dir: Path, out: TextIO = sys.stderr) -> Path:
    """Make ``item``'s file present and verified in ``models_dir``: kept if it already is, taken from the Hugging
    Face cache if it is there, else downloaded (resumably) and verified."""
    target = item.location(models_dir)
    if target.is_file() and target.stat().st_size == item.size and sha256_of(target) == item.sha256:
        out.write(f"  {item.name}: present and verified\n")
        return target
    hub = _HUB_FILE_URL.fullmatch(item.url)
    cached = _from_hf_cache(hub["repo"], hub["revision"], urllib.parse.unquote(hub["path"])) if hub else None
    if cached is not None and cached.stat().st_size == item.size and sha256_of(cached) == item.sha256:
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(cached, target)
        out.write(f"  {item.name}: taken from the Hugging Face cache ({cached})\n")
        return target

    def check() -> tuple[list[Any], Callable[[list[Any]], str | None]]:
        def problem(hashers: list[Any]) -> str | None:
            got = hashers[0].hexdigest()
            return None if got == item.sha256 else f"sha256 {got}; expected {item.sha256}"

        return [hashlib.sha256()], problem

    _download_verified(item.url, target, item.size, check, item.name, out)
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


def _hub_json(url: str, endpoint: str, what: str) -> tuple[Any, str | None]:
    """GET ``url`` from the Hub API: the decoded JSON and the next page's URL (``Link: <...>; rel="next"``)."""
    try:
        with _OPENER.open(_request(url), timeout=30) as response:
            body = response.read()
            link = response.headers.get("Link") or ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(
                f"{what}: not found at {endpoint} (HTTP 404 for {url}): the repository or revision no longer "
                f"resolves; {WAY_OUT}"
            ) from exc
        if exc.code in (401, 403):
            raise FetchError(
                f"{what}: {endpoint} refused access (HTTP {exc.code}); for a gated repository accept its terms on the "
                "Hub and log in with `hf auth login` (or set HF_TOKEN)"
            ) from exc
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


def _fetch_hub_file(
    item: HubFile, folder: Path, url: str, label: str, out: TextIO, hub_repo: str, commit: str
) -> LockedFile:
    """Make ``folder/item.path`` the verified file: keep it if it already is, take it from the Hugging Face cache if
    it is there at ``commit``, else download it (resumably) and verify it."""
    target = folder / item.path
    if _has_size(target, item.size):
        sha256, sha1 = _hash_file(target, item)
        if _verified(item, item.size, sha256, sha1):
            out.write(f"  {label}: present and verified\n")
            return LockedFile(path=item.path, size=item.size, sha256=sha256)
    cached = _from_hf_cache(hub_repo, commit, item.path)
    if cached is not None and _has_size(cached, item.size):
        sha256, sha1 = _hash_file(cached, item)
        if _verified(item, item.size, sha256, sha1):
            target.parent.mkdir(parents=True, exist_ok=True)
            _place(cached, target)
            out.write(f"  {label}: taken from the Hugging Face cache\n")
            return LockedFile(path=item.path, size=item.size, sha256=sha256)

    def check() -> tuple[list[Any], Callable[[list[Any]], str | None]]:
        def problem(hashers: list[Any]) -> str | None:
            sha256 = hashers[0].hexdigest()
            sha1 = hashers[1].hexdigest() if item.git_sha1 else None
            if _verified(item, item.size, sha256, sha1):
                return None
            expected = f"sha256 {item.sha256}" if item.sha256 else f"git blob sha1 {item.git_sha1}"
            got = f"sha256 {sha256}" if item.sha256 else f"git blob sha1 {sha1}"
            return f"{got}; expected {expected}{', pinned by the manifest' if item.pinned else ''}"

        return [hashlib.sha256(), *([_git_blob_sha1(item.size)] if item.git_sha1 else [])], problem

    hashers = _download_verified(url, target, item.size, check, item.path, out)
    return LockedFile(path=item.path, size=item.size, sha256=hashers[0].hexdigest())


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
        label = f"[{i}/{len(files)}] {item.path}"
        locked.append(_fetch_hub_file(item, folder, url, label, out, snapshot.hub_repo, commit))
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
