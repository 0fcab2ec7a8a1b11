"""``python -m daemon`` commands against a real daemon, and fetch-models against a real local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daemon.cli import progress_line
from shared import PROTOCOL_VERSION


def cli(daemon, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = daemon.env() if daemon else None
    runtime = ("--runtime-dir", str(daemon.runtime_dir)) if daemon and args[0] not in ("fetch-models", "keygen") else ()
    result = subprocess.run(
        [sys.executable, "-m", "daemon", *args, *runtime], capture_output=True, text=True, timeout=120, env=env
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_health_text_and_json(daemon):
    text = cli(daemon, "health").stdout
    assert f"protocol {PROTOCOL_VERSION}" in text and "pose" in text and "ready" in text
    data = json.loads(cli(daemon, "health", "--json").stdout)
    assert data["modes"]["pose"]["ready"] is True


def test_submit_wait_jobs_result_retry_cancel(daemon, sample_image):
    done = cli(
        daemon,
        "submit",
        "count",
        "--param",
        "steps=2",
        "--input",
        f"image={sample_image}",
        "--job-id",
        "cli-1",
        "--wait",
    )
    assert "cli-1" in done.stdout and "succeeded" in done.stdout
    assert "100.0%" in done.stdout and "[######" in done.stdout, "the progress bar"
    assert f"output: {daemon.data_dir / 'jobs' / 'cli-1' / 'outputs'}" in done.stdout, "where the result is"
    listed = cli(daemon, "jobs").stdout
    assert f"inputs: image={sample_image.name}" in listed and ", ran " in listed, listed
    job = json.loads(cli(daemon, "jobs", "--json").stdout)["jobs"][0]
    assert job["job_id"] == "cli-1" and job["state"] == "succeeded"
    assert job["inputs"]["image"] == {"path": str(sample_image)}
    result = json.loads(cli(daemon, "result", "cli-1", "--json").stdout)
    assert result["summary"]["steps"] == 2 and result["arrays"]["steps"] == ["int32", [2]]
    failed = cli(daemon, "submit", "count", "--param", "fail_at=0", "--job-id", "cli-2", "--wait", check=False)
    assert failed.returncode == 1 and "failing on purpose" in failed.stdout
    assert "queued" in cli(daemon, "retry", "cli-2").stdout
    cli(daemon, "submit", "count", "--param", "steps=1000", "--param", "step_s=0.05", "--job-id", "cli-3")
    assert "cli-3" in cli(daemon, "cancel", "cli-3").stdout


def test_watch_prints_progress_as_json_lines(daemon):
    cli(daemon, "submit", "count", "--param", "steps=5", "--param", "step_s=0.1", "--job-id", "w1")
    out = cli(daemon, "watch", "w1", "--json").stdout
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while index < len(out):
        if out[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(out, index)
        documents.append(document)
    events, final = documents[:-1], documents[-1]
    assert final["job_id"] == "w1" and final["state"] == "succeeded"
    assert any(e["type"] == "progress" and e["stage"] == "counting" for e in events)


def test_bad_input_is_one_clear_line_and_exit_1(daemon):
    result = cli(daemon, "submit", "count", "--param", "steps=0", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: steps: must be at least 1, got 0"
    result = cli(daemon, "submit", "count", "--input", "no-equals-sign", check=False)
    assert result.returncode == 1 and "NAME=PATH" in result.stderr


def test_no_daemon_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "health", "--runtime-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "python -m daemon serve" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "wanted"),
    [
        ("--max-requests-per-second", "0", "above 0"),
        ("--max-requests-per-second", "nan", "above 0"),
        ("--request-burst", "0.5", "of 1 or more"),
        ("--request-burst", "many", "of 1 or more"),
    ],
)
def test_a_rate_limit_that_would_refuse_every_request_is_refused_naming_the_option(tmp_path, option, value, wanted):
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--runtime-dir", str(tmp_path), option, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"argument {option}: '{value}' is not a finite number {wanted}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "daemon.json").exists()


def test_stop_command_stops_the_daemon(daemon):
    assert "stopping" in cli(daemon, "stop").stdout
    assert daemon.proc.wait(15) == 0


def test_stop_warns_instead_of_interrupting_running_jobs_unless_forced(daemon):
    cli(daemon, "submit", "count", "--param", "steps=1000", "--param", "step_s=0.05", "--job-id", "long")
    deadline = time.monotonic() + 20
    while json.loads(cli(daemon, "health", "--json").stdout)["queue"]["running"] != ["long"]:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    refused = cli(daemon, "stop", check=False)
    assert refused.returncode == 1 and "1 job(s) are running and would be interrupted: long" in refused.stderr
    assert "--when-idle" in refused.stderr and "--force" in refused.stderr
    assert daemon.proc.poll() is None, "still running"
    assert "stopping" in cli(daemon, "stop", "--force").stdout
    assert daemon.proc.wait(15) == 0


def test_modes_lists_every_mode_and_one_modes_parameters_and_inputs(daemon):
    listed = cli(daemon, "modes").stdout
    assert "pose" in listed and "ready" in listed
    pose = cli(daemon, "modes", "pose").stdout
    assert "parameters (--param NAME=VALUE):" in pose and "inputs (--input NAME=PATH):" in pose
    assert "model_complexity       int     1..1; default 1." in pose, "only the value that works"
    assert "  video                  video   required." in pose
    unknown = cli(daemon, "modes", "no_such_mode", check=False)
    assert unknown.returncode == 1 and "unknown mode 'no_such_mode'" in unknown.stderr


def test_the_progress_line_shows_frames_rate_and_time_left():
    line = progress_line(0.42, "tracking", 9.0, 50, 7.0)
    assert line == f"[{'#' * 12}{'.' * 18}]  42.0%  21/50 frames  3.0 frames/s  ETA 9 s  tracking"
    assert progress_line(0.5, "animating", None, None, 1.0) == f"[{'#' * 15}{'.' * 15}]  50.0%  animating"


def test_stop_when_idle_waits_for_the_queue(daemon):
    cli(daemon, "submit", "count", "--param", "steps=20", "--param", "step_s=0.05", "--job-id", "last-one")
    assert "once its jobs are done" in cli(daemon, "stop", "--when-idle").stdout
    assert daemon.proc.wait(15) == 0
    with sqlite3.connect(daemon.data_dir / "jobs.sqlite3") as db:
        assert db.execute("SELECT state FROM jobs WHERE job_id = 'last-one'").fetchone() == ("succeeded",)


def test_keygen_writes_a_private_key_file(tmp_path):
    key_file = tmp_path / "client.key"
    out = subprocess.run(
        [sys.executable, "-m", "daemon", "keygen", str(key_file)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    text = key_file.read_text()
    public = text.split("public=")[1].split()[0]
    assert len(public) == 40 and public in out.stdout
    again = subprocess.run(
        [sys.executable, "-m", "daemon", "keygen", str(key_file)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1 and "already exists" in again.stderr


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def write_manifest(path: Path, url: str, payload: bytes, sha: str | None = None) -> None:
    path.write_text(
        '[[file]]\nname = "tiny"\nmodes = ["needs_weights"]\npath = "tiny/weights.bin"\n'
        f'url = "{url}"\nsize = {len(payload)}\nsha256 = "{sha or hashlib.sha256(payload).hexdigest()}"\n'
        'licence = "MIT"\n'
    )


def fetch(tmp_path, manifest, *options):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "fetch-models",
            "needs_weights",
            "--manifest",
            str(manifest),
            "--models-dir",
            str(tmp_path / "models"),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fetch_models_downloads_verifies_and_skips_when_present(tmp_path, http_server):
    served, base = http_server
    payload = bytes(range(256)) * 5000
    (served / "weights.bin").write_bytes(payload)
    manifest = tmp_path / "manifest.toml"
    write_manifest(manifest, f"{base}/weights.bin", payload)
    first = fetch(tmp_path, manifest)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "models" / "tiny" / "weights.bin").read_bytes() == payload
    assert "100.0%" in first.stderr and "MIT" in first.stderr
    second = fetch(tmp_path, manifest, "--json")
    assert second.returncode == 0 and "present and verified" in second.stderr
    assert json.loads(second.stdout)["files"] == [str(tmp_path / "models" / "tiny" / "weights.bin")]


def test_fetch_models_refuses_a_corrupt_download(tmp_path, http_server):
    served, base = http_server
    payload = b"the real weights"
    (served / "weights.bin").write_bytes(b"something else!!")
    manifest = tmp_path / "manifest.toml"
    write_manifest(manifest, f"{base}/weights.bin", payload)
    result = fetch(tmp_path, manifest)
    assert result.returncode == 1 and "failed verification" in result.stderr
    assert not (tmp_path / "models" / "tiny" / "weights.bin").exists()
    assert not list((tmp_path / "models" / "tiny").glob("*.part")), "no partial file is left behind"


def test_fetch_models_offline_fails_at_once_with_a_clear_message(tmp_path):
    manifest = tmp_path / "manifest.toml"
    write_manifest(manifest, "http://127.0.0.1:9/weights.bin", b"x")  # port 9 (discard): connection refused
    result = fetch(tmp_path, manifest)
    assert result.returncode == 1
    assert "could not download tiny" in result.stderr and "Check the network connection" in result.stderr


def test_jobs_pages_with_a_cursor(daemon):
    for n in range(3):
        cli(daemon, "submit", "count", "--param", "steps=1", "--job-id", f"page-{n}", "--wait")
    first = cli(daemon, "jobs", "--limit", "2")
    assert "page-2" in first.stdout and "page-1" in first.stdout and "page-0" not in first.stdout
    cursor = json.loads(cli(daemon, "jobs", "--limit", "2", "--json").stdout)["next_before"]
    assert f"older jobs: add --before {cursor}" in first.stdout
    older = json.loads(cli(daemon, "jobs", "--limit", "2", "--before", str(cursor), "--json").stdout)
    assert [j["job_id"] for j in older["jobs"]] == ["page-0"] and older["next_before"] is None


def fetch_mode(mode: str, models_dir, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "daemon", "fetch-models", mode, "--models-dir", str(models_dir), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_fetch_models_for_an_unknown_mode_names_the_modes(tmp_path):
    result = fetch_mode("faceswap", tmp_path)
    assert result.returncode == 2 and "unknown mode 'faceswap'" in result.stderr and "face_swap" in result.stderr


def test_fetch_models_for_pose_says_nothing_is_needed(tmp_path):
    result = fetch_mode("pose", tmp_path)
    assert result.returncode == 0 and "mediapipe wheel" in result.stdout
    as_json = fetch_mode("pose", tmp_path, "--json")
    assert json.loads(as_json.stdout) == {"mode": "pose", "models_dir": str(tmp_path), "files": []}


def test_prune_command_reports_what_it_removed(daemon):
    cli(daemon, "submit", "count", "--param", "steps=1", "--job-id", "p1", "--wait")
    preview = cli(daemon, "prune", "--older-than", "0", "--dry-run").stdout
    assert "would remove 1 job(s)" in preview and "  p1" in preview
    assert json.loads(cli(daemon, "jobs", "--json").stdout)["jobs"][0]["job_id"] == "p1", "a dry run removes nothing"
    assert "removed 1 job(s)" in cli(daemon, "prune", "--older-than", "0").stdout
    assert json.loads(cli(daemon, "jobs", "--json").stdout) == {"jobs": [], "next_before": None}


def test_a_truncated_clip_ends_with_a_visible_warning(daemon, sample_video, tmp_path):
    data = Path(sample_video).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 12])  # the header still promises every frame
    done = cli(daemon, "submit", "pose", "--input", f"video={cut}", "--job-id", "cut", "--wait")
    warning = "video: cut.avi promises 270 frames but only 13 could be decoded (a truncated or damaged file)"
    assert f"warning: {warning}; the result covers those 13" in done.stdout
    job = json.loads(cli(daemon, "result", "cut", "--json").stdout)
    assert job["summary"]["warnings"] == [f"{warning}; the result covers those 13"]
    assert job["arrays"]["present"] == ["bool", [13]]
