"""The job engine through a real daemon: validation, idempotency, cancel, retry, crashes, concurrency."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.daemon_process import DaemonProcess
from support.job_calls import remote_error, wait_state

from shared.references import record_references


def test_resubmitting_the_same_job_id_is_idempotent(client):
    first = client.submit("same", "count", {"steps": 1})
    again = client.submit("same", "count", {"steps": 1})
    assert again["job_id"] == first["job_id"] and again["created_at"] == first["created_at"]
    client.wait("same")
    assert len(client.jobs()) == 1
    err = remote_error(client.submit, "same", "count", {"steps": 2})
    assert err.code == "conflict" and err.detail["field"] == "job_id"


@pytest.mark.parametrize(
    ("job_id", "mode", "params", "inputs", "field", "words"),
    [
        ("j", "count", {"steps": 0}, {}, "params.steps", "at least 1"),
        ("j", "count", {"steps": "many"}, {}, "params.steps", "must be a number"),
        ("j", "count", {"speed": 2}, {}, "params.speed", "not a parameter"),
        ("j", "count", {}, {"video": {"path": "/x.mp4"}}, "inputs.video", "not taken"),
        ("j", "count", {}, {"image": {"path": "/no/such/file.png"}}, "inputs.image.path", "file not found"),
        ("j", "count", {}, {"image": {"path": "relative.png"}}, "inputs.image.path", "absolute"),
        ("j", "count", {}, {"image": {"url": "http://x"}}, "inputs.image", "one of 'path'"),
        ("j", "pose", {}, {}, "inputs.video", "required"),
        ("../escape", "count", {}, {}, "job_id", "letters, digits"),
        ("j", "teleport", {}, {}, "mode", "unknown"),
    ],
)
def test_bad_submissions_name_the_field(client, job_id, mode, params, inputs, field, words):
    err = remote_error(client.submit, job_id, mode, params, inputs)
    assert err.detail["field"] == field
    assert words in err.message
    assert client.jobs() == [], "nothing is queued for a refused submission"


def test_a_failing_runner_fails_the_job_not_the_daemon(client):
    client.submit("boom", "count", {"steps": 3, "fail_at": 1})
    job = client.wait("boom")
    assert job["state"] == "failed"
    assert job["error"]["code"] == "run_failed" and "failing on purpose" in job["error"]["message"]
    assert "Traceback" in job["error"]["detail"]["traceback"]
    client.submit("fine", "count", {"steps": 1})
    assert client.wait("fine")["state"] == "succeeded"


def test_an_undecodable_file_is_refused_at_submit_naming_the_input(client, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    err = remote_error(client.submit, "bad-video", "pose", {}, {"video": {"path": str(bad)}})
    assert err.code == "invalid_input" and err.detail["field"] == "inputs.video"
    assert "could not decode" in err.message and "image sequence" in err.message
    assert client.jobs() == [], "nothing is queued for an input that cannot be read"


def test_an_empty_frame_range_is_refused_at_submit(client, sample_video):
    err = remote_error(client.submit, "late", "pose", {}, {"video": {"path": str(sample_video), "frame_start": 10_000}})
    assert err.detail["field"] == "inputs.video" and "is empty" in err.message


def test_a_job_folder_that_cannot_be_made_fails_that_job_and_the_worker_goes_on(daemon, client):
    (daemon.data_dir / "jobs").mkdir(parents=True, exist_ok=True)
    (daemon.data_dir / "jobs" / "blocked").write_text("a file where the job's folder should go")
    client.submit("blocked", "count", {"steps": 1})
    job = client.wait("blocked")
    assert job["state"] == "failed" and job["error"]["code"] == "run_failed", job["error"]
    assert "blocked" in job["error"]["message"]
    client.submit("after", "count", {"steps": 1})
    assert client.wait("after")["state"] == "succeeded"
    assert client.health()["queue"]["worker_alive"] is True


def test_cancel_a_running_job(client):
    client.submit("long", "count", {"steps": 500, "step_s": 0.02})
    deadline = time.monotonic() + 60  # running, and past the device probe a fresh daemon's first job waits for
    while client.job("long")["stage"] != "counting" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.job("long")["stage"] == "counting"
    client.cancel("long")
    job = wait_state(client, "long", {"cancelled"}, timeout=5)
    assert job["error"] is None and job["frame_count"] == 0
    assert not os.path.exists(job["output_dir"]), "a cancelled run publishes no outputs"


def test_cancel_a_queued_job_before_it_runs(client):
    client.submit("blocker", "count", {"steps": 200, "step_s": 0.02})
    client.submit("waiting", "count", {"steps": 1})
    assert client.cancel("waiting")["state"] == "cancelled"
    client.cancel("blocker")
    wait_state(client, "blocker", {"cancelled"})
    time.sleep(0.3)
    job = client.job("waiting")
    assert job["state"] == "cancelled" and job["attempts"] == 0, "a cancelled queued job never starts"


def test_retry_runs_a_cancelled_job_again(client):
    client.submit("again", "count", {"steps": 300, "step_s": 0.02})
    wait_state(client, "again", {"running"})
    client.cancel("again")
    wait_state(client, "again", {"cancelled"})
    assert client.retry("again")["state"] in ("queued", "running")
    assert client.retry("again")["state"] in ("queued", "running"), "retrying a queued job is a no-op"
    client.cancel("again")
    wait_state(client, "again", {"cancelled"})


def test_kill_during_a_job_then_restart_interrupts_it_and_retry_succeeds(daemon):
    with daemon.client() as c:
        c.submit("victim", "count", {"steps": 100, "step_s": 0.02})
        wait_state(c, "victim", {"running"})
        c.submit("next-in-line", "count", {"steps": 2})
    daemon.kill()
    daemon.start()
    with daemon.client() as c:
        victim = c.job("victim")
        assert victim["state"] == "interrupted" and victim["error"]["code"] == "interrupted"
        assert c.wait("next-in-line")["state"] == "succeeded", "queued jobs survive a crash"
        c.retry("victim")
        retried = c.wait("victim", timeout=30)
        assert retried["state"] == "succeeded" and retried["frame_count"] == 100, retried
        assert (Path(retried["output_dir"]) / "summary.json").is_file()
        c.submit("after-crash", "count", {"steps": 3})
        assert c.wait("after-crash")["state"] == "succeeded"
    db = sqlite3.connect(daemon.data_dir / "jobs.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT attempts FROM jobs WHERE job_id='victim'").fetchone()[0] == 2
    finally:
        db.close()


def test_graceful_stop_marks_the_running_job_interrupted(daemon):
    with daemon.client() as c:
        c.submit("stopped", "count", {"steps": 400, "step_s": 0.02})
        wait_state(c, "stopped", {"running"})
    assert daemon.stop() == 0
    daemon.start()
    with daemon.client() as c:
        assert c.job("stopped")["state"] == "interrupted"
        c.retry("stopped")
        assert wait_state(c, "stopped", {"running", "succeeded"})["attempts"] == 2
        c.cancel("stopped")


def test_a_shutdown_when_idle_lets_the_jobs_finish_first(daemon):
    with daemon.client() as c:
        c.submit("running", "count", {"steps": 40, "step_s": 0.05})
        c.submit("waiting", "count", {"steps": 2})
        wait_state(c, "running", {"running"})
        c.shutdown(when="idle")
        assert c.health()["exit_when_idle"] is True
        c.shutdown(when="cancel")  # another client took the daemon over: it stays
        assert c.health()["exit_when_idle"] is False
        c.shutdown(when="idle")
        assert c.wait("waiting", timeout=30)["state"] == "succeeded"
        assert c.job("running")["attempts"] == 1, "nothing was interrupted"
    assert daemon.proc.wait(timeout=15) == 0, "with no work left the daemon stopped by itself"
    assert not daemon.connection_file.exists()


def test_a_shutdown_with_an_unknown_when_is_refused(client):
    err = remote_error(client.shutdown, when="later")
    assert err.detail["field"] == "when" and "now, idle, cancel" in err.message
    assert client.ping() == []


def test_many_clients_many_jobs_none_lost_or_duplicated(daemon):
    clients, per_client = 8, 25
    errors: list[BaseException] = []
    submitted: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            with daemon.client(timeout=30) as c:
                for n in range(per_client):
                    job_id = f"c{index}-j{n}"
                    c.submit(job_id, "count", {"steps": 1 + n % 3})
                    c.submit(job_id, "count", {"steps": 1 + n % 3})  # a duplicate must not create a job
                    with lock:
                        submitted.append(job_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with daemon.client() as c:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = c.jobs(limit=500)
            if all(j["state"] == "succeeded" for j in jobs) and len(jobs) == clients * per_client:
                break
            time.sleep(0.2)
        ids = [j["job_id"] for j in jobs]
        assert len(ids) == len(set(ids)) == clients * per_client == len(submitted)
        assert set(ids) == set(submitted)
        assert all(j["state"] == "succeeded" and j["attempts"] == 1 for j in jobs)
        assert all(j["frame_count"] == 1 + int(j["job_id"].split("-j")[1]) % 3 for j in jobs)


def test_job_history_pages_newest_first(client):
    for i in range(7):
        client.submit(f"page-{i}", "count", {"steps": 1})
    first = client.request("jobs", {"limit": 3}).content
    second = client.request("jobs", {"limit": 3, "before": first["next_before"]}).content
    third = client.request("jobs", {"limit": 3, "before": second["next_before"]}).content
    names = [j["job_id"] for page in (first, second, third) for j in page["jobs"]]
    assert names == [f"page-{i}" for i in range(6, -1, -1)]
    assert third["next_before"] is None


def test_progress_events_reach_only_subscribed_clients(daemon):
    with daemon.client() as watcher, daemon.client() as bystander:
        bystander.ping()  # known to the daemon's ROUTER before any event is sent
        job_id = uuid.uuid4().hex
        watcher.submit(job_id, "count", {"steps": 20, "step_s": 0.05}, subscribe=True)
        events: list[dict] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events += watcher.poll_events(timeout=0.5)
            if any(e["type"] == "state" and e["state"] == "succeeded" for e in events):
                break
        assert bystander.ping() == [], "the bystander is connected, so the daemon could route events to it"
        assert bystander.poll_events(timeout=0.5) == []
        progress = [e for e in events if e["type"] == "progress"]
        fractions = [e["fraction"] for e in progress]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert [e["state"] for e in events if e["type"] == "state"][-1] == "succeeded"
        assert any(e["eta_s"] is not None for e in progress)
        previews = [e["preview_jpeg"] for e in progress if e["preview_jpeg"]]
        assert previews, "previews are sent with progress"
        image = cv2.imdecode(np.frombuffer(previews[0], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and max(image.shape[:2]) <= 256
        assert len(progress) <= 20 + 2, "progress events are throttled"


def test_queue_limits_give_clear_errors():
    proc = DaemonProcess(extra_args=("--max-queued-per-client", "2", "--max-queued", "3")).start()
    try:
        with proc.client() as a, proc.client() as b:
            a.submit("run", "count", {"steps": 500, "step_s": 0.02})
            wait_state(a, "run", {"running"})
            a.submit("q1", "count", {})
            a.submit("q2", "count", {})
            err = remote_error(a.submit, "q3", "count", {})
            assert err.code == "limit_exceeded" and "2 queued jobs" in err.message
            b.submit("q4", "count", {})
            err = remote_error(b.submit, "q5", "count", {})
            assert err.code == "queue_full" and "queue is full" in err.message
            a.cancel("run")
    finally:
        proc.cleanup()


def test_missing_weights_fail_at_submit_naming_files_and_command(tmp_path):
    weights = tmp_path / "tiny.bin"
    weights.write_bytes(b"tiny weights")
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        '[[file]]\nname = "tiny-test-weights"\nmodes = ["needs_weights"]\npath = "tiny/tiny.bin"\n'
        f'url = "file://{weights}"\nsize = {weights.stat().st_size}\n'
        f'sha256 = "{hashlib.sha256(weights.read_bytes()).hexdigest()}"\nlicence = "test"\n'
    )
    models = tmp_path / "models"
    proc = DaemonProcess(extra_args=("--manifest", str(manifest), "--models-dir", str(models))).start()
    try:
        with proc.client() as c:
            readiness = c.health()["modes"]["needs_weights"]
            assert readiness["ready"] is False and "tiny/tiny.bin" in readiness["missing"][0]
            err = remote_error(c.submit, "w1", "needs_weights", {})
            assert err.code == "weights_missing"
            assert "tiny/tiny.bin" in err.message and "-m vfx_mocap fetch-models needs_weights" in err.message
            (models / "tiny").mkdir(parents=True)
            (models / "tiny" / "tiny.bin").write_bytes(weights.read_bytes())
            assert c.health()["modes"]["needs_weights"]["ready"] is True
            c.submit("w2", "needs_weights", {"steps": 1})
            assert c.wait("w2")["state"] == "succeeded"
    finally:
        proc.cleanup()


def test_models_load_lazily_once_and_release_on_request(client):
    assert client.health()["loaded_models"] == []
    for i in range(3):
        client.submit(f"lazy-{i}", "count", {"steps": 1})
        client.wait(f"lazy-{i}")
    assert [m["mode"] for m in client.health()["loaded_models"]] == ["count"]
    assert client.job("lazy-2")["summary"]["loads"] == 1, "loaded once, reused"
    assert client.release_memory() == ["count"]
    client.submit("lazy-3", "count", {"steps": 1})
    assert client.wait("lazy-3")["summary"]["loads"] == 2, "loads again after a release"


def test_idle_models_are_unloaded():
    proc = DaemonProcess(extra_args=("--idle-unload", "0.5")).start()
    try:
        with proc.client() as c:
            c.submit("idle", "count", {"steps": 1})
            c.wait("idle")
            deadline = time.monotonic() + 10
            while c.health()["loaded_models"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.health()["loaded_models"] == []
    finally:
        proc.cleanup()


def test_prune_removes_old_finished_jobs_their_files_and_unused_inputs(client, daemon):
    image = np.full((8, 8, 3), 9, np.uint8)
    client.submit("old", "count", {"steps": 2}, {"image": image})
    client.wait("old")
    client.submit("busy", "count", {"steps": 500, "step_s": 0.02})
    wait_state(client, "busy", {"running"})
    assert client.prune(older_than_days=1)["removed"] == [], "nothing is a day old yet"
    pruned = client.prune(older_than_days=0)
    assert pruned["removed"] == ["old"] and pruned["freed_bytes"] > 0
    assert not (daemon.data_dir / "jobs" / "old").exists()
    assert list((daemon.data_dir / "blobs").glob("*.npy")) == [], "the unused input went with it"
    assert remote_error(client.job, "old").code == "not_found"
    assert client.job("busy")["state"] == "running", "running jobs are never pruned"
    assert remote_error(client.prune, -1).detail["field"] == "older_than_days"
    client.cancel("busy")


def test_prune_dry_run_deletes_nothing_and_jobs_a_saved_blend_uses_are_kept_and_named(client, daemon, tmp_path):
    for job_id in ("unused", "in-blend"):
        client.submit(job_id, "count", {"steps": 1})
        client.wait(job_id)
    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER")
    record_references(daemon.data_dir, blend, ["in-blend"])
    record_references(daemon.data_dir, tmp_path / "deleted.blend", ["unused"])  # that .blend no longer exists

    preview = client.prune(older_than_days=0, dry_run=True)
    assert preview["removed"] == ["unused"] and preview["freed_bytes"] > 0
    assert preview["kept_for_blend_files"] == {"in-blend": [str(blend)]}
    assert (daemon.data_dir / "jobs" / "unused").is_dir() and client.job("unused")["state"] == "succeeded"

    pruned = client.prune(older_than_days=0)
    assert pruned["removed"] == ["unused"] and pruned["kept_for_blend_files"] == {"in-blend": [str(blend)]}
    assert not (daemon.data_dir / "jobs" / "unused").exists()
    assert client.job("in-blend")["state"] == "succeeded" and (daemon.data_dir / "jobs" / "in-blend").is_dir()
    assert remote_error(client.prune, 0, dry_run="yes").detail["field"] == "dry_run"

    blend.unlink()
    assert client.prune(older_than_days=0)["removed"] == ["in-blend"], "once the .blend is gone, so is the claim"


def test_every_event_reads_as_its_typed_contract_and_state_events_carry_the_whole_job(daemon):
    """The add-on reads events with :func:`shared.messages.read_event` and never asks for the job again after a
    state event: the job a state event carries is the one a ``job`` request returns at that moment."""
    from shared.messages import JobView, ProgressEvent, StateEvent, read_event

    with daemon.client() as client:
        job_id = uuid.uuid4().hex
        client.submit(job_id, "count", {"steps": 5, "step_s": 0.02}, subscribe=True)
        events: list = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(isinstance(e, StateEvent) and e.job.is_final for e in events):
            events += [read_event(data) for data in client.poll_events(timeout=0.5)]
        states = [e for e in events if isinstance(e, StateEvent)]
        assert [e.job.state for e in states] == ["running", "succeeded"]
        assert all(isinstance(e, ProgressEvent | StateEvent) for e in events)
        final = states[-1].job
        assert final == JobView.from_wire(client.job(job_id))
        assert final.frame_count == 5 and final.fraction == 1.0 and final.output_dir and final.summary is not None
        assert JobView.from_wire(final.to_wire()) == final
