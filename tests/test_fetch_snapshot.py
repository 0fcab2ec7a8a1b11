"""``fetch-models`` for ``[[snapshot]]`` entries (the Wan VACE weights), against a fake Hugging Face Hub.

A real HTTP server on 127.0.0.1 plays the Hub: the revision API, the recursive tree API (paged with ``Link``
headers, Git LFS entries carrying ``lfs.oid`` and ``lfs.size``) and the ``resolve`` endpoint (LFS files
redirected to a "CDN" path, as huggingface.co does). It serves the tiny Wan VACE pipeline of
``support/tiny_wan.py`` under the real repository name and pinned commit, plus files the manifest does not take.
The manifest is the real one with the 1.3B entry's pin set to the tiny VAE's size and sha256. Downloads run
through the real CLI (``python -m daemon fetch-models``), and a real daemon runs a job on what was fetched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from support.daemon_process import DaemonProcess
from support.tiny_depth import build_tiny_depth_anything
from support.tiny_wan import build_tiny_wan_vace, manifest_text

from daemon.fetch import FetchError, fetch_snapshot
from daemon.registry import ModelRegistry
from models.catalog import BUILTIN_RUNNERS, import_runner
from models.manifest import (
    LOCK_NAME,
    FilePin,
    ManifestError,
    WeightFile,
    WeightSnapshot,
    load_manifest,
)
from models.vace.depth import DEPTH_FETCH_MODE, DEPTH_FOLDER, DEPTH_REPOSITORY, DepthEstimator
from models.vace.motion import VaceMotionRunner
from models.vace.runner import WAN_VACE_1_3B, WAN_VACE_14B
from shared.errors import RemoteError

REPO_ROOT = Path(__file__).resolve().parents[1]
VAE = "vae/diffusion_pytorch_model.safetensors"
TRANSFORMER_SHARD = "transformer/diffusion_pytorch_model-00002-of-00002.safetensors"
EXTRAS = {"README.md": b"# Wan2.1 VACE 1.3B\n", ".gitattributes": b"*.safetensors filter=lfs\n", "assets/a.png": b"png"}
"""Repository files outside the manifest's selection: the fetch must leave them on the Hub."""


def is_lfs(path: str) -> bool:
    """Which files the fake repository keeps in Git LFS (as the official one does for these kinds)."""
    return path.endswith((".safetensors", ".model")) or path.endswith("tokenizer.json")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """One repository at one commit (also reachable as branch ``main``), served over real HTTP."""

    def __init__(self, repo: str, commit: str, files: dict[str, bytes], page_size: int = 7) -> None:
        self.repo, self.commit, self.files, self.page_size = repo, commit, dict(files), page_size
        self.served: dict[str, bytes] = {}
        """Bytes served instead of ``files[path]`` (the listing still describes ``files``): a corrupt mirror."""
        self.cut: dict[str, int] = {}
        """Path -> byte count: its next download promises the whole file, sends that many bytes and drops the line."""
        self.bytes_sent: dict[str, list[int]] = {}
        """Path -> the bytes of content sent by each download of it (a range request sends fewer)."""
        self.authorization: list[tuple[str, str | None]] = []
        """(request path, its Authorization header) for every request."""
        self.extra_entries: list[dict] = []
        self.requests: list[str] = []
        self.sent: list[str] = []
        """Repository paths whose content was sent, in order."""
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                hub.requests.append(self.path)
                hub.authorization.append((self.path, self.headers.get("Authorization")))
                hub.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def entries(self) -> list[dict]:
        folders = sorted({str(Path(p).parent) for p in self.files} - {"."})
        listed = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in folders]
        for path, data in sorted(self.files.items()):
            entry = {"type": "file", "oid": git_sha1(data), "size": len(data), "path": path}
            if is_lfs(path):
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                entry["oid"] = git_sha1(pointer.encode())
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            listed.append(entry)
        return listed + self.extra_entries

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(request.path)
        path = urllib.parse.unquote(url.path)
        api = f"/api/models/{self.repo}/"
        if path.startswith(api + "revision/"):
            revision = path.removeprefix(api + "revision/")
            if revision in ("main", self.commit):
                return self.send(request, 200, json.dumps({"id": self.repo, "sha": self.commit}).encode())
        elif path == api + f"tree/{self.commit}" and "recursive=true" in url.query:
            start = int(urllib.parse.parse_qs(url.query).get("cursor", ["0"])[0])
            page = self.entries()[start : start + self.page_size]
            headers = {}
            if start + self.page_size < len(self.entries()):
                headers["Link"] = f'<{url.path}?recursive=true&cursor={start + self.page_size}>; rel="next"'
            return self.send(request, 200, json.dumps(page).encode(), headers)
        elif path.startswith(f"/{self.repo}/resolve/{self.commit}/"):
            file = path.removeprefix(f"/{self.repo}/resolve/{self.commit}/")
            if file in self.files:
                if is_lfs(file):  # to the "CDN", another host name as on huggingface.co
                    cdn = self.url.replace("127.0.0.1", "localhost")
                    return self.send(request, 302, b"", {"Location": f"{cdn}/cdn/{urllib.parse.quote(file)}"})
                return self.send_file(request, file)
        elif path.startswith("/cdn/") and path.removeprefix("/cdn/") in self.files:
            return self.send_file(request, path.removeprefix("/cdn/"))
        self.send(request, 404, b'{"error": "Repository Not Found"}')

    def send_file(self, request: BaseHTTPRequestHandler, file: str) -> None:
        self.sent.append(file)
        body = self.served.get(file, self.files[file])
        wanted = request.headers.get("Range", "")
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted.startswith("bytes=") else 0
        headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"} if start else {}
        content = body[start:]
        cut = self.cut.pop(file, None)
        self.bytes_sent.setdefault(file, []).append(len(content) if cut is None else cut)
        if cut is None:
            return self.send(request, 206 if start else 200, content, headers)
        request.send_response(200)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content[:cut])
        request.wfile.flush()
        request.close_connection = True
        request.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def send(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None) -> None:
        request.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(body)


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> dict[str, bytes]:
    """The tiny pipeline's files by repository path, plus files the manifest does not take."""
    folder = build_tiny_wan_vace(tmp_path_factory.mktemp("tiny-wan") / WAN_VACE_1_3B.folder)
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return {**files, **EXTRAS}


@pytest.fixture(scope="module")
def real_snapshot() -> WeightSnapshot:
    (entry,) = [e for e in load_manifest().values() if e.name == WAN_VACE_1_3B.repository]
    assert isinstance(entry, WeightSnapshot)
    return entry


@pytest.fixture
def hub(tiny_repo, real_snapshot):
    server = FakeHub(real_snapshot.hub_repo, real_snapshot.revision, tiny_repo)
    yield server
    server.close()


def tiny_snapshot(real: WeightSnapshot, tiny_repo: dict[str, bytes], **changes) -> WeightSnapshot:
    """The real 1.3B entry with the VAE pinned to the tiny VAE's size and sha256."""
    vae = tiny_repo[VAE]
    pin = FilePin(path=VAE, size=len(vae), sha256=hashlib.sha256(vae).hexdigest())
    return dataclasses.replace(real, **{"pins": (pin,), **changes})


def write_manifest(path: Path, snapshot: WeightSnapshot) -> Path:
    """The real manifest with ``snapshot`` in place of the entry of the same name."""
    entries = [snapshot if e.name == snapshot.name else e for e in load_manifest().values()]
    path.write_text(manifest_text(entries), encoding="utf-8")
    return path


def fetch_cli(manifest: Path, models: Path, endpoint: str | None, mode: str = "vace_pose", env: dict | None = None):
    """The real CLI; the Hugging Face cache is a folder beside the manifest and no token is set, unless ``env``
    says otherwise."""
    command = [sys.executable, "-m", "daemon", "fetch-models", mode, "--manifest", str(manifest)]
    command += ["--models-dir", str(models)] + (["--hub-endpoint", endpoint] if endpoint else [])
    isolated = {"HF_HUB_CACHE": str(manifest.parent / "hf-cache"), "HF_TOKEN_PATH": str(manifest.parent / "no-token")}
    dropped = ("HF_ENDPOINT", "HF_TOKEN", "HF_HOME")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped} | isolated | (env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=full_env)


def taken(repo: dict[str, bytes], snapshot: WeightSnapshot) -> dict[str, bytes]:
    return {p: data for p, data in repo.items() if snapshot.selects(p)}


def leftovers(folder: Path) -> list[Path]:
    return list(folder.rglob("*.part")) + list(folder.rglob("*.tmp"))


# -- a full fetch, then the daemon on what it fetched -----------------------------------------------------


def test_fetch_verifies_every_file_locks_the_folder_and_a_daemon_job_runs_on_it(
    tmp_path, hub, tiny_repo, real_snapshot, sample_image
):
    snapshot = tiny_snapshot(real_snapshot, tiny_repo)
    manifest, models = write_manifest(tmp_path / "manifest.toml", snapshot), tmp_path / "models"
    result = fetch_cli(manifest, models, hub.url)
    assert result.returncode == 0, result.stderr
    folder = models / WAN_VACE_1_3B.folder
    expected = taken(tiny_repo, snapshot)
    assert set(WAN_VACE_1_3B.files) <= set(expected) and len(expected) == len(tiny_repo) - len(EXTRAS)
    fetched = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert fetched.pop(LOCK_NAME)
    assert fetched == expected, "exactly the selected files, byte for byte; README, .gitattributes, assets left"
    assert not leftovers(folder)
    assert sum("/tree/" in r for r in hub.requests) > 1, "the paged tree listing was followed to its end"
    assert not any("/revision/" in r for r in hub.requests), "a commit revision needs no lookup"
    lock = json.loads((folder / LOCK_NAME).read_text())
    assert (lock["hub_repo"], lock["revision"], lock["commit"]) == (snapshot.hub_repo, snapshot.revision, hub.commit)
    assert lock["endpoint"] == hub.url
    assert {f["path"]: (f["size"], f["sha256"]) for f in lock["files"]} == {
        p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in expected.items()
    }
    assert "verified and locked" in result.stderr and "100.0%" in result.stderr and "Apache-2.0" in result.stderr

    daemon = DaemonProcess(extra_args=("--manifest", str(manifest), "--models-dir", str(models), "--device", "cpu"))
    daemon.start()
    try:
        with daemon.client(timeout=30.0) as client:
            modes = client.health()["modes"]
            assert modes["vace_pose"]["ready"] and modes["vace_motion"]["ready"] and modes["r2v"]["ready"]
            assert modes["vace_pose_14b"]["ready"] is False
            assert "weights Wan-AI/Wan2.1-VACE-14B-diffusers" in modes["vace_pose_14b"]["missing"][0]
            pose = np.zeros((5, 48, 64, 3), np.uint8)
            pose[:, 10:40, 28:36] = 255
            params = {"prompt": "a dancer spins", "steps": 2, "width": 32, "height": 16, "seed": 3}
            client.submit("fetched", "vace_pose", params, {"reference": {"path": str(sample_image)}, "pose": pose})
            job = client.wait("fetched", timeout=90)
            assert job["state"] == "succeeded", job["error"]
            assert len(list(Path(job["output_dir"], "frames").glob("*.png"))) == 5

            assert modes["vace_motion"]["options"]["control=depth"]["ready"] is False, "the depth model is not fetched"
            started = time.monotonic()
            with pytest.raises(RemoteError) as err:
                driving = {"reference": {"path": str(sample_image)}, "driving": pose}
                client.submit("depth", "vace_motion", {**params, "control": "depth"}, driving)
            assert time.monotonic() - started < 2.0 and err.value.detail["field"] == "params.control"
            assert (
                "no lock file (never fetched)" in err.value.message and "or choose another control" in err.value.message
            )
            assert f"python -m daemon fetch-models {DEPTH_FETCH_MODE}" in err.value.message

            (folder / TRANSFORMER_SHARD).write_bytes(tiny_repo[TRANSFORMER_SHARD][:-1])
            missing = client.health()["modes"]["vace_pose"]
            assert missing["ready"] is False
            (fix,) = missing["fix"]
            command = shlex.split(fix)
            assert command[:5] == [sys.executable, "-m", "daemon", "fetch-models", "vace_pose"]
            assert command[5:] == ["--models-dir", str(models), "--manifest", str(manifest)], "this daemon's folders"
            requests_before = len(hub.requests)
            isolated = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
            again = subprocess.run(  # the fix as shown, from another folder
                command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, **isolated}
            )
            assert client.health()["modes"]["vace_pose"]["ready"] is True, "the fix, run as shown, made it ready"
    finally:
        daemon.cleanup()

    assert again.returncode == 0, again.stderr
    assert "missing or changed since it was locked" in again.stderr
    assert hub.sent[len(expected) :] == [TRANSFORMER_SHARD], "only the damaged shard was downloaded again"
    assert again.stderr.count("present and verified") == len(expected) - 1
    assert (folder / TRANSFORMER_SHARD).read_bytes() == tiny_repo[TRANSFORMER_SHARD]
    assert len(hub.requests) > requests_before

    offline = fetch_cli(manifest, models, "http://127.0.0.1:9")
    assert offline.returncode == 0, offline.stderr
    assert f"present and verified against {LOCK_NAME}" in offline.stderr, "a complete, locked folder needs no network"


# -- refusals ---------------------------------------------------------------------------------------------


def test_a_corrupt_lfs_file_is_refused_and_nothing_is_kept_under_its_name(tmp_path, hub, tiny_repo, real_snapshot):
    good = tiny_repo[TRANSFORMER_SHARD]
    hub.served[TRANSFORMER_SHARD] = good[:100] + bytes([good[100] ^ 1]) + good[101:]  # same size, one bit off
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    result = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert result.returncode == 1
    assert f"error: {TRANSFORMER_SHARD} failed verification" in result.stderr
    assert hashlib.sha256(good).hexdigest() in result.stderr, "the message names the sha256 expected"
    folder = tmp_path / "models" / WAN_VACE_1_3B.folder
    assert not (folder / TRANSFORMER_SHARD).exists() and not leftovers(folder)
    assert not (folder / LOCK_NAME).exists()


def test_a_corrupt_json_config_is_refused_by_its_git_blob_sha1(tmp_path, hub, tiny_repo, real_snapshot):
    config = "transformer/config.json"
    hub.served[config] = tiny_repo[config].replace(b'"text_dim": 32', b'"text_dim": 33')
    assert hub.served[config] != tiny_repo[config] and len(hub.served[config]) == len(tiny_repo[config])
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    result = fetch_cli(manifest, tmp_path / "models", None, env={"HF_ENDPOINT": hub.url})
    assert result.returncode == 1
    assert f"{config} failed verification" in result.stderr and "git blob sha1" in result.stderr
    assert git_sha1(tiny_repo[config]) in result.stderr
    folder = tmp_path / "models" / WAN_VACE_1_3B.folder
    assert not (folder / config).exists() and not (folder / LOCK_NAME).exists() and not leftovers(folder)


def test_a_hub_value_that_disagrees_with_a_pin_stops_the_fetch_before_any_download(
    tmp_path, hub, tiny_repo, real_snapshot
):
    wrong = FilePin(path=VAE, size=len(tiny_repo[VAE]), sha256=hashlib.sha256(b"other weights").hexdigest())
    manifest = write_manifest(tmp_path / "manifest.toml", dataclasses.replace(real_snapshot, pins=(wrong,)))
    result = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert result.returncode == 1
    assert f"the Hub's {VAE}" in result.stderr and "disagrees with the manifest's pin" in result.stderr
    assert wrong.sha256 in result.stderr and hashlib.sha256(tiny_repo[VAE]).hexdigest() in result.stderr
    assert hub.sent == [], "refused before downloading anything"
    assert not (tmp_path / "models" / WAN_VACE_1_3B.folder).exists()


def test_offline_fails_at_once_with_a_clear_message(tmp_path, tiny_repo, real_snapshot):
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    started = time.monotonic()
    result = fetch_cli(manifest, tmp_path / "models", "http://127.0.0.1:9")  # port 9 (discard): refused
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert "could not reach the Hugging Face Hub at http://127.0.0.1:9" in result.stderr
    assert "Check the network connection" in result.stderr and "HF_ENDPOINT" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_revision_is_named(tmp_path, hub, tiny_repo, real_snapshot):
    manifest = write_manifest(
        tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo, revision="no-such-branch")
    )
    result = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert result.returncode == 1
    assert f"{real_snapshot.hub_repo} at revision no-such-branch: not found at {hub.url}" in result.stderr
    assert "no longer resolves" in result.stderr and 'docs/models.md, "When a download no longer resolves"' in (
        result.stderr
    ), "the documented way out is named"


# -- resuming, the Hugging Face cache, the token ----------------------------------------------------------


def test_an_interrupted_download_resumes_after_the_bytes_it_kept(tmp_path, hub, tiny_repo, real_snapshot):
    data = tiny_repo[TRANSFORMER_SHARD]
    hub.cut[TRANSFORMER_SHARD] = len(data) // 3
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    folder = tmp_path / "models" / WAN_VACE_1_3B.folder
    first = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert first.returncode == 1 and "run fetch-models again: it resumes after the" in first.stderr
    assert "Traceback" not in first.stderr
    part = folder / (TRANSFORMER_SHARD + ".part")
    assert part.stat().st_size == len(data) // 3, "what arrived is kept"
    assert not (folder / TRANSFORMER_SHARD).exists() and not (folder / LOCK_NAME).exists()

    second = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert second.returncode == 0, second.stderr
    assert "resuming after" in second.stderr
    assert hub.bytes_sent[TRANSFORMER_SHARD] == [len(data) // 3, len(data) - len(data) // 3]
    assert hub.bytes_sent[TRANSFORMER_SHARD][1] < len(data), "the second transfer sent only the missing bytes"
    assert (folder / TRANSFORMER_SHARD).read_bytes() == data and not leftovers(folder)
    assert (folder / LOCK_NAME).is_file()


def test_a_resumed_download_that_does_not_verify_leaves_nothing(tmp_path, hub, tiny_repo, real_snapshot):
    data = tiny_repo[TRANSFORMER_SHARD]
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    folder = tmp_path / "models" / WAN_VACE_1_3B.folder
    (folder / "transformer").mkdir(parents=True)
    (folder / (TRANSFORMER_SHARD + ".part")).write_bytes(bytes(len(data) // 2))  # kept bytes that are wrong
    result = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert result.returncode == 1 and f"{TRANSFORMER_SHARD} failed verification" in result.stderr
    assert not (folder / TRANSFORMER_SHARD).exists() and not leftovers(folder) and not (folder / LOCK_NAME).exists()


def hf_cache_snapshot(cache: Path, repo: str, commit: str, files: dict[str, bytes]) -> None:
    """Files laid out as huggingface_hub's cache holds them (blobs, and the snapshot folder of ``commit``)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    for path, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / commit / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


def test_files_in_the_hugging_face_cache_are_used_not_downloaded(tmp_path, hub, tiny_repo, real_snapshot):
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    corrupt_config = "transformer/config.json"
    cached = {VAE: tiny_repo[VAE], TRANSFORMER_SHARD: tiny_repo[TRANSFORMER_SHARD], corrupt_config: b"{}"}
    hf_cache_snapshot(tmp_path / "hf-cache", real_snapshot.hub_repo, hub.commit, cached)
    result = fetch_cli(manifest, tmp_path / "models", hub.url)
    assert result.returncode == 0, result.stderr
    assert VAE not in hub.sent and TRANSFORMER_SHARD not in hub.sent, "taken from the cache"
    assert result.stderr.count("taken from the Hugging Face cache") == 2
    assert corrupt_config in hub.sent, "a cached file that does not verify is downloaded instead"
    folder = tmp_path / "models" / WAN_VACE_1_3B.folder
    assert (folder / VAE).read_bytes() == tiny_repo[VAE] and (folder / LOCK_NAME).is_file()
    assert (folder / corrupt_config).read_bytes() == tiny_repo[corrupt_config]


def test_the_token_from_the_standard_place_goes_to_the_hub_and_not_to_the_cdn(tmp_path, hub, tiny_repo, real_snapshot):
    token_file = tmp_path / "token"
    token_file.write_text("hf_secret_for_tests")
    manifest = write_manifest(tmp_path / "manifest.toml", tiny_snapshot(real_snapshot, tiny_repo))
    result = fetch_cli(manifest, tmp_path / "models", hub.url, env={"HF_TOKEN_PATH": str(token_file)})
    assert result.returncode == 0, result.stderr
    to_hub = [auth for path, auth in hub.authorization if not path.startswith("/cdn/")]
    to_cdn = [auth for path, auth in hub.authorization if path.startswith("/cdn/")]
    assert to_hub and set(to_hub) == {"Bearer hf_secret_for_tests"}
    assert to_cdn and set(to_cdn) == {None}, "the token never leaves for another host"


def test_a_listed_path_that_leaves_the_folder_is_refused(tmp_path, hub, tiny_repo, real_snapshot):
    hub.extra_entries.append({"type": "file", "oid": git_sha1(b"x"), "size": 1, "path": "../../outside.json"})
    snapshot = tiny_snapshot(real_snapshot, tiny_repo)
    with pytest.raises(FetchError, match="would leave the snapshot's folder"):
        fetch_snapshot(snapshot, tmp_path / "models", hub.url, io.StringIO())
    assert hub.sent == [] and not (tmp_path / "outside.json").exists()


def test_a_file_the_manifest_takes_but_the_revision_lacks_is_named(tmp_path, hub, tiny_repo, real_snapshot):
    snapshot = tiny_snapshot(real_snapshot, tiny_repo, files=(*real_snapshot.files, "image_encoder/"))
    with pytest.raises(FetchError, match="takes image_encoder/, but the repository has nothing there"):
        fetch_snapshot(snapshot, tmp_path / "models", hub.url, io.StringIO())
    assert hub.sent == []


def test_fetch_models_vace_motion_depth_brings_the_depth_model_and_the_option_becomes_ready(tmp_path):
    folder = build_tiny_depth_anything(tmp_path / "built" / DEPTH_FOLDER)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = load_manifest()[DEPTH_REPOSITORY]
    assert isinstance(real, WeightSnapshot)
    weights = files["model.safetensors"]
    pin = FilePin(path="model.safetensors", size=len(weights), sha256=hashlib.sha256(weights).hexdigest())
    snapshot = dataclasses.replace(real, pins=(pin,))
    manifest, models = write_manifest(tmp_path / "manifest.toml", snapshot), tmp_path / "models"
    registry = ModelRegistry(
        {"vace_motion": VaceMotionRunner}, device=lambda: None, manifest=load_manifest(manifest), models_dir=models
    )
    assert registry.readiness("vace_motion")["options"]["control=depth"]["ready"] is False
    hub = FakeHub(DEPTH_REPOSITORY, real.revision, {**files, "README.md": b"# Depth Anything V2 Small\n"})
    try:
        result = fetch_cli(manifest, models, hub.url, mode=DEPTH_FETCH_MODE)
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr
    fetched = models / DEPTH_FOLDER
    assert {p.name for p in fetched.iterdir()} == {*files, LOCK_NAME}, "the three files and the lock, no README"
    assert registry.readiness("vace_motion")["options"]["control=depth"] == {"ready": True, "missing": [], "fix": []}
    runner = registry.runner("vace_motion")
    assert runner.validate({"prompt": "a dancer spins", "control": "depth"})["control"] == "depth"
    estimator = DepthEstimator(fetched, None)  # loads through from_pretrained, as a job does
    assert estimator.inverse_depth([np.zeros((28, 42, 3), np.uint8)])[0].shape == (28, 42)


# -- a branch revision, and readiness ---------------------------------------------------------------------


def test_a_branch_is_resolved_to_its_commit_and_readiness_follows_the_lock(tmp_path, hub, tiny_repo, real_snapshot):
    snapshot = tiny_snapshot(real_snapshot, tiny_repo, revision="main")
    models = tmp_path / "models"
    assert not snapshot.present(models)
    paths = fetch_snapshot(snapshot, models, hub.url, io.StringIO())
    assert len(paths) == len(taken(tiny_repo, snapshot))
    assert any(r.endswith("/revision/main") for r in hub.requests)
    lock = snapshot.read_lock(models)
    assert lock is not None and (lock.revision, lock.commit) == ("main", hub.commit)

    runner = import_runner(BUILTIN_RUNNERS["vace_pose"])
    registry = ModelRegistry(
        {"vace_pose": runner}, device=lambda: None, manifest={snapshot.name: snapshot}, models_dir=models
    )
    assert runner.weights == (snapshot.name,)
    assert registry.readiness("vace_pose")["ready"] is True
    assert dataclasses.replace(snapshot, revision=hub.commit).problem(models) == (
        f"fetched from {snapshot.hub_repo} at main, but the manifest asks for {snapshot.hub_repo} at {hub.commit}"
    ), "locked for another revision"
    other_pin = FilePin(path=VAE, size=len(tiny_repo[VAE]), sha256="0" * 64)
    assert dataclasses.replace(snapshot, pins=(other_pin,)).problem(models) == (
        f"{VAE} was fetched with another size or sha256 than the manifest pins"
    ), "locked against other pins"

    folder = snapshot.location(models)
    (folder / "vae" / "config.json").unlink()
    (folder / TRANSFORMER_SHARD).write_bytes(b"cut short")
    state = registry.readiness("vace_pose")
    assert state["ready"] is False
    assert state["missing"] == [
        f"weights {snapshot.name} ({WAN_VACE_1_3B.folder}): {TRANSFORMER_SHARD} is 9 bytes, locked at "
        f"{len(tiny_repo[TRANSFORMER_SHARD])}, vae/config.json is missing"
    ], "the locked files that are missing or of the wrong size, by name"
    assert state["fix"] == ["python -m daemon fetch-models vace_pose"]
    (folder / LOCK_NAME).unlink()
    assert registry.readiness("vace_pose")["missing"] == [
        f"weights {snapshot.name} ({WAN_VACE_1_3B.folder}): no lock file (never fetched)"
    ]
    shutil.rmtree(folder)
    assert not snapshot.present(models)


# -- the real manifest ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["vace_pose", "vace_motion", "r2v", "vace_pose_14b", "vace_motion_14b", "r2v_14b"])
def test_each_vace_mode_needs_one_snapshot_that_takes_every_file_the_pipeline_loads(mode):
    manifest = load_manifest()
    runner = import_runner(BUILTIN_RUNNERS[mode])
    model = WAN_VACE_14B if mode.endswith("_14b") else WAN_VACE_1_3B
    (name,) = runner.weights
    snapshot = manifest[name]
    assert isinstance(snapshot, WeightSnapshot) and mode in snapshot.modes
    assert (snapshot.hub_repo, snapshot.path, snapshot.licence) == (model.repository, model.folder, "Apache-2.0")
    assert len(snapshot.revision) == 40 and int(snapshot.revision, 16) >= 0, "pinned to a commit"
    assert all(snapshot.selects(path) for path in model.files)
    assert not any(isinstance(e, WeightFile) and e.path.startswith(model.folder + "/") for e in manifest.values())


def test_the_pins_are_the_published_lfs_values():
    manifest = load_manifest()
    small, large = manifest[WAN_VACE_1_3B.repository], manifest[WAN_VACE_14B.repository]
    assert isinstance(small, WeightSnapshot) and isinstance(large, WeightSnapshot)
    assert [(p.path, p.size) for p in small.pins] == [(VAE, 507_591_892)]
    assert len(large.pins) == 11
    shard = {p.path: p for p in large.pins}["transformer/diffusion_pytorch_model-00001-of-00013.safetensors"]
    assert (shard.size, shard.sha256[:12]) == (4_867_114_424, "bd8bbb8834a2")


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('[[snapshot.pin]]\npath = "README.md"\nsize = 1\nsha256 = "' + "0" * 64 + '"\n', "not among the files"),
        ('[[snapshot.pin]]\npath = "vae/x"\nsize = 1\nsha256 = "abc"\n', "malformed sha256"),
    ],
)
def test_a_malformed_snapshot_entry_is_refused_when_the_manifest_loads(tmp_path, extra, words):
    path = tmp_path / "manifest.toml"
    path.write_text(
        '[[snapshot]]\nname = "a/b"\nmodes = ["m"]\npath = "b"\nhub_repo = "a/b"\nrevision = "main"\n'
        f'licence = "MIT"\nfiles = ["vae/"]\n\n{extra}'
    )
    with pytest.raises(ManifestError, match=words):
        load_manifest(path)
    path.write_text(
        '[[snapshot]]\nname = "a/b"\nmodes = ["m"]\npath = "../b"\nhub_repo = "a/b"\nrevision = "main"\n'
        'licence = "MIT"\n'
    )
    with pytest.raises(ManifestError, match="must be relative and stay inside"):
        load_manifest(path)
