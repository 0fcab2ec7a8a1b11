"""Hostile and clumsy input against a real daemon: bad job ids and records, image bombs, remote clients,
resources before authentication, file permissions, and the corpus of requests that once broke something."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from shared.errors import RemoteError


def remote_error(call, *args, **kwargs) -> RemoteError:
    with pytest.raises(RemoteError) as err:
        call(*args, **kwargs)
    return err.value


def wait_state(client, job_id, states, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job['state']}, expected {states}")


# -- 1. job ids and records ----------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a..b", "..", "ok\n", "x" * 65, "-lead", "a/b"])
def test_a_job_id_that_cannot_name_a_folder_is_refused_before_anything_is_stored(client, daemon, job_id):
    err = remote_error(client.submit, job_id, "count", {"steps": 1})
    assert err.code == "invalid_input" and err.detail["field"] == "job_id"
    assert client.jobs() == []
    assert sorted(p.name for p in (daemon.data_dir / "jobs").iterdir()) == []
    client.submit("after", "count", {"steps": 1})
    assert wait_state(client, "after", {"succeeded", "failed"})["state"] == "succeeded"


COUNT_PARAMS = json.dumps({"steps": 1, "step_s": 0.0, "fail_at": -1, "ignore_cancel": False})


def insert_raw_job(database, job_id: str, state: str = "queued", params: str = COUNT_PARAMS) -> None:
    now = time.time()
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO jobs (job_id, mode, state, client, params, inputs, fingerprint, created_at, updated_at) "
            "VALUES (?, 'count', ?, 'someone', ?, '{}', 'f', ?, ?)",
            (job_id, state, params, now, now),
        )


def test_a_bad_record_already_in_the_database_is_quarantined_at_start(daemon):
    with daemon.client() as c:
        c.submit("kept", "count", {"steps": 1})
        wait_state(c, "kept", {"succeeded"})
    daemon.stop()
    database = daemon.data_dir / "jobs.sqlite3"
    insert_raw_job(database, "poison..", state="queued")  # what yesterday's daemon let in
    insert_raw_job(database, "unreadable", state="queued", params="{not json")
    insert_raw_job(database, "waiting", state="queued")
    daemon.start()
    with daemon.client() as c:
        assert wait_state(c, "waiting", {"succeeded", "failed"})["state"] == "succeeded", "the queue runs on"
        assert sorted(j["job_id"] for j in c.jobs()) == ["kept", "waiting"]
        assert c.prune(0)["removed"] == ["kept", "waiting"]
        assert c.health()["queue"]["worker_alive"] is True
    with sqlite3.connect(database) as db:
        quarantined = dict(db.execute("SELECT job_id, reason FROM quarantine").fetchall())
    assert set(quarantined) == {"poison..", "unreadable"}
    assert "not valid" in quarantined["poison.."] and "unreadable" in quarantined["unreadable"]
    assert "quarantine" in daemon.read_log()


def test_a_record_damaged_while_queued_fails_alone_and_the_queue_runs_on(client, daemon):
    client.submit("ahead", "count", {"steps": 20, "step_s": 0.05})
    wait_state(client, "ahead", {"running"})
    client.submit("damaged", "count", {"steps": 1})
    with sqlite3.connect(daemon.data_dir / "jobs.sqlite3") as db:  # a disk error, another program, a bug
        db.execute("UPDATE jobs SET params = '{not json' WHERE job_id = 'damaged'")
    client.submit("behind", "count", {"steps": 1})
    assert wait_state(client, "behind", {"succeeded", "failed"})["state"] == "succeeded"
    with sqlite3.connect(daemon.data_dir / "jobs.sqlite3") as db:
        (state,) = db.execute("SELECT state FROM jobs WHERE job_id = 'damaged'").fetchone()
    assert state == "failed"
    assert client.health()["queue"]["worker_alive"] is True
    assert client.job("ahead")["state"] == "succeeded"
