"""Hostile and clumsy input against a real daemon: bad job ids and records, image bombs, remote clients,
resources before authentication, file permissions, and the corpus of requests that once broke something."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from support.daemon_process import DaemonProcess
from support.job_calls import remote_error, wait_state

from shared.errors import RemoteError

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


# -- 2. image bombs -------------------------------------------------------------------------------------------


def png_bomb(path, side: int):
    """A real, complete greyscale PNG of ``side`` x ``side`` black pixels: under 1 MB on disk for 27000 x 27000,
    2.2 GB once decoded to colour."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    rows = b"\0" * (side + 1) * 1000  # filter byte + pixels, 1000 rows at a time
    data = b"".join(deflate.compress(rows) for _ in range(side // 1000))
    data += deflate.compress(b"\0" * (side + 1) * (side % 1000)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def peak_memory_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        (line,) = [row for row in f if row.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def test_an_image_bomb_is_refused_from_its_header_and_the_daemon_serves_on(daemon, tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 27000)
    assert bomb.stat().st_size < 2_000_000
    with daemon.client(timeout=60) as c:
        for attempt in range(2):  # a retry once crashed it again
            err = remote_error(c.submit, f"bomb{attempt}", "pose", {}, {"video": {"path": str(bomb)}})
            assert err.code == "invalid_input" and err.detail["field"] == "inputs.video"
            assert "27000x27000" in err.message and "8192x8192" in err.message
        live = remote_error(c.live_start, "pose", {"path": str(bomb), "loop": True})
        assert live.code == "invalid_input"
        assert c.ping() == [] and c.jobs() == []
    assert daemon.proc.poll() is None
    assert peak_memory_mib(daemon.proc.pid) < 1024, "nothing was decoded"


# -- 3 and 4. remote (CURVE) clients ------------------------------------------------------------------------------


class RemoteDaemon:
    """A daemon serving CURVE on loopback with two ordinary keys, one admin key and (optionally) allowed folders."""

    def __init__(self, tmp_path, allowed=()):
        import zmq

        from shared.client import CurveKeys

        self.keys = {name: CurveKeys(*(k.decode() for k in zmq.curve_keypair())) for name in ("a", "b", "admin")}
        (tmp_path / "authorized").write_text(f"{self.keys['a'].public}\n{self.keys['b'].public}\n")
        (tmp_path / "admins").write_text(f"{self.keys['admin'].public}  # the operator\n")
        args = ["--listen", "tcp://127.0.0.1:0", "--curve", "--authorized-keys", str(tmp_path / "authorized")]
        args += ["--admin-keys", str(tmp_path / "admins")]
        for folder in allowed:
            args += ["--allow-path", str(folder)]
        self.proc = DaemonProcess(extra_args=tuple(args)).start()

    def client(self, name, **kwargs):
        from shared.client import Client

        return Client(self.proc.info(), curve_keys=self.keys[name], timeout=10, **kwargs)


@pytest.fixture
def private_image(tmp_path, sample_image):
    """A 0600 image in a 0700 folder: the daemon's user's own file."""
    import os

    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    path = secret / "private.jpg"
    path.write_bytes(sample_image.read_bytes())
    os.chmod(path, 0o600)
    return path


def test_remote_clients_read_only_files_inside_allowed_folders_and_errors_tell_nothing(tmp_path, private_image):
    import os

    allowed = tmp_path / "shots"
    allowed.mkdir()
    (allowed / "frame.jpg").write_bytes(private_image.read_bytes())
    os.symlink(private_image, allowed / "link.jpg")
    remote = RemoteDaemon(tmp_path, allowed=[allowed])
    try:
        with remote.client("a") as a:
            messages = set()
            for n, path in enumerate(
                [private_image, tmp_path / "secret" / "absent.jpg", allowed / "absent.jpg", allowed / "link.jpg"]
            ):
                err = remote_error(a.submit, f"steal{n}", "count", {}, {"image": {"path": str(path)}})
                assert err.code == "forbidden" and err.detail["field"] == "inputs.image.path"
                messages.add(err.message)
            assert len(messages) == 1, "one text whether or not the file exists"
            err = remote_error(a.submit, "steal", "count", {}, {"image": {"paths": [str(private_image)]}})
            assert err.code == "forbidden" and err.detail["field"] == "inputs.image.paths"
            err = remote_error(a.live_start, "count", {"path": str(private_image), "loop": True})
            assert err.code == "forbidden" and err.detail["field"] == "source.path"
            err = remote_error(a.live_start, "count", {"camera": 0})
            assert err.code == "forbidden" and err.detail["field"] == "source.camera"
            assert a.jobs() == []
            a.submit("allowed", "count", {"steps": 1}, {"image": {"path": str(allowed / "frame.jpg")}})
            assert wait_state(a, "allowed", {"succeeded", "failed"})["state"] == "succeeded"
    finally:
        remote.proc.cleanup()


def test_remote_keys_see_and_steer_only_their_own_jobs(tmp_path):
    remote = RemoteDaemon(tmp_path)
    try:
        with remote.client("a") as a, remote.client("b") as b, remote.client("admin") as admin:
            a.submit("done", "count", {"steps": 2})
            wait_state(a, "done", {"succeeded"})
            a.submit("mine", "count", {"steps": 400, "step_s": 0.05})
            wait_state(a, "mine", {"running"})
            for call, args in [
                (b.job, ("mine",)),
                (b.cancel, ("mine",)),
                (b.retry, ("done",)),
                (b.subscribe, ("mine",)),
                (b.result, ("done",)),
                (b.frame, ("done", 0)),
            ]:
                err = remote_error(call, *args)
                assert (err.code, err.message) == ("not_found", f"no job {args[0]!r}"), call.__name__
            assert b.jobs() == []
            err = remote_error(b.submit, "mine", "count", {"steps": 400, "step_s": 0.05})
            assert err.code == "conflict"
            assert a.job("mine")["state"] == "running", "untouched by the other key"
            assert a.health()["queue"]["running"] == ["mine"] and b.health()["queue"]["running"] == []
            assert sorted(j["job_id"] for j in a.jobs()) == ["done", "mine"]
            b.submit("theirs", "count", {"steps": 1})
            assert sorted(j["job_id"] for j in admin.jobs()) == ["done", "mine", "theirs"]
            assert admin.cancel("mine")["state"] in ("running", "cancelled")
    finally:
        remote.proc.cleanup()


def test_admin_requests_need_an_admin_key(tmp_path):
    remote = RemoteDaemon(tmp_path)
    try:
        with remote.client("a", retries=0) as a, remote.client("admin", retries=0) as admin:
            a.submit("kept", "count", {"steps": 1})
            wait_state(a, "kept", {"succeeded"})
            for call, args in [(a.prune, (0,)), (a.release_memory, ()), (a.shutdown, ())]:
                err = remote_error(call, *args)
                assert err.code == "forbidden" and "--admin-keys" in err.message, call.__name__
            assert a.job("kept")["state"] == "succeeded" and a.ping() == []
            assert admin.release_memory() == ["count"]
            assert admin.prune(0)["removed"] == ["kept"]
            admin.shutdown()
        assert remote.proc.proc.wait(15) == 0
    finally:
        remote.proc.cleanup()


# -- 5. bounded before authentication ---------------------------------------------------------------------------


@pytest.fixture
def tcp_daemon():
    proc = DaemonProcess(extra_args=("--listen", "tcp://127.0.0.1:0")).start()
    yield proc
    proc.cleanup()


def test_an_unsigned_2_gib_message_on_loopback_tcp_costs_the_daemon_nothing(tcp_daemon):
    import numpy as np
    import zmq

    endpoint = tcp_daemon.info().endpoint
    frame = np.zeros(256 * 1024 * 1024, np.uint8)  # the largest frame there is; 8 of them make 2 GiB
    ctx = zmq.Context()
    try:
        anonymous, wrong_key = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
        wrong_key.plain_username, wrong_key.plain_password = b"vfx", b"0" * 64
        for sock in (anonymous, wrong_key):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            sock.send_multipart([b"<VFX|MSG>", b"not signed", *[frame.data] * 8], copy=False)
        with tcp_daemon.client() as c:
            deadline = time.monotonic() + 6  # a few seconds for 4 GiB to cross loopback, if it could
            while time.monotonic() < deadline:
                assert c.ping() == []
                time.sleep(0.5)
            assert c.health()["counters"].get("rejected", 0) == 0, "nothing unauthenticated reached the daemon"
    finally:
        ctx.destroy(linger=0)
    assert peak_memory_mib(tcp_daemon.proc.pid) < 700


def still_open(sock) -> bool:
    """Whether the daemon still holds this raw TCP connection (it sends its greeting, then maybe end-of-file)."""

    sock.setblocking(False)
    try:
        while True:
            if sock.recv(4096) == b"":
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def daemon_open_files(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        (row,) = [line for line in f if line.startswith("Max open files")]
    soft, hard = row.split()[3:5]
    return int(soft), int(hard)


def test_half_open_connections_are_capped_and_lock_no_client_out(tcp_daemon):
    import resource
    import socket

    soft, hard = daemon_open_files(tcp_daemon.proc.pid)
    assert soft == min(hard, 65536) and soft >= resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    port = int(tcp_daemon.info().endpoint.rsplit(":", 1)[1])
    with tcp_daemon.client() as c:
        assert c.ping() == []  # connected and authenticated before the flood
        crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        try:
            with tcp_daemon.client() as newcomer:
                assert newcomer.health()["queue"]["depth"] == 0, "a new client gets in during the flood"
            assert c.ping() == []
            time.sleep(1.0)
            assert sum(still_open(s) for s in crowd) <= 4, "at most 4 unauthenticated connections are held"
            assert c.health()["counters"]["unauthenticated_closed"] >= 296
            time.sleep(5.5)
            assert sum(still_open(s) for s in crowd) == 0, "none outlives the 5 s handshake time"
            assert c.ping() == []
        finally:
            for s in crowd:
                s.close()


# -- 6. the data folder is private ------------------------------------------------------------------------------


def loose_entries(folder) -> list[str]:
    """Entries of ``folder`` (itself included) that anyone but their owner could read, write or enter."""
    import os
    import stat

    loose = []
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(folder.parent)} {mode:o}")
    return loose


def test_the_data_folder_and_everything_in_it_are_private_whatever_the_umask():
    import os

    import numpy as np

    proc = DaemonProcess()
    proc.data_dir.mkdir(parents=True, mode=0o755)  # what an earlier version left: readable by everyone
    os.chmod(proc.data_dir, 0o755)
    (proc.data_dir / "jobs").mkdir(mode=0o755)
    os.chmod(proc.data_dir / "jobs", 0o755)
    (proc.data_dir / "daemon.log").write_text("old log\n")
    os.chmod(proc.data_dir / "daemon.log", 0o644)
    proc.preexec = lambda: os.umask(0o022)  # the usual umask: new files 0644, new folders 0755
    proc.start()
    try:
        with proc.client() as c:
            c.submit("private", "count", {"steps": 2}, {"image": np.full((8, 8, 3), 9, np.uint8)})
            wait_state(c, "private", {"succeeded"})
            c.submit("open", "count", {"steps": 50, "step_s": 0.05})
            wait_state(c, "open", {"running"})  # a job folder with work in progress
            names = {p.name for p in proc.data_dir.rglob("*")}
            assert {"jobs.sqlite3-wal", "jobs.sqlite3-shm", "daemon.log", "000001.png", "steps.npy"} <= names
            assert any(n.endswith(".npy") and len(n) == 68 for n in names), "the upload is there"
            assert loose_entries(proc.data_dir) == []
            c.cancel("open")
    finally:
        proc.cleanup()


# -- 7. the smaller items --------------------------------------------------------------------------------------


def test_partial_uploads_are_removed_at_start_and_by_prune(client, daemon):
    blobs = daemon.data_dir / "blobs"
    leftover = blobs / f".{'0' * 64}.4242.tmp"  # what a crash or a full disk mid-upload leaves
    leftover.write_bytes(b"\0" * 1000)
    assert client.prune(30)["freed_bytes"] >= 1000
    assert not leftover.exists()
    daemon.stop()
    leftover.write_bytes(b"\0" * 1000)
    daemon.start()
    assert not leftover.exists()


def test_a_prune_while_an_upload_is_being_stored_leaves_that_upload_alone(tmp_path):
    """Uploads are stored on the daemon's I/O threads while prune runs on the socket thread: the partial files
    prune removes are those of interrupted uploads, never one being written now."""
    import threading

    import numpy as np

    from daemon.blobs import BlobStore
    from shared.wire import blob_id

    store = BlobStore(tmp_path / "blobs")
    upload = np.random.default_rng(7).integers(0, 255, (96, 1024, 1024), np.uint8)  # ~100 MB: a while to write
    stored: dict[str, object] = {}
    writing = threading.Thread(target=lambda: stored.update(digest=store.put(upload)))
    writing.start()
    pruned = 0
    while writing.is_alive():
        pruned += 1
        store.remove_partial_uploads()
    writing.join()
    assert pruned > 1 and stored["digest"] == blob_id(upload)
    assert np.array_equal(store.load(stored["digest"]), upload), "the upload was stored whole"


def test_an_upload_the_disk_refuses_leaves_no_partial_file():
    import resource

    import numpy as np

    from shared.errors import DaemonUnavailable

    limit = 2 * 1024 * 1024  # files of at most 2 MiB: the job database and the log fit, the upload does not
    proc = DaemonProcess()
    proc.preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    proc.start()
    try:
        with proc.client() as c:
            with pytest.raises((RemoteError, DaemonUnavailable)):
                c.upload(np.ones((1024, 1024, 3), np.uint8))
            assert sorted(p.name for p in (proc.data_dir / "blobs").iterdir()) == []
            assert c.upload(np.ones((4, 4, 3), np.uint8))
    finally:
        proc.cleanup()


def test_a_corrupt_database_is_a_clear_error_at_start_and_the_file_is_kept():
    proc = DaemonProcess()
    proc.data_dir.mkdir(parents=True)
    database = proc.data_dir / "jobs.sqlite3"
    garbage = bytes(range(256)) * 64
    database.write_bytes(garbage)
    try:
        with pytest.raises(RuntimeError):
            proc.start(timeout=20)
        log = proc.read_log()
        assert "is damaged" in log and f"mv {database} {database}.damaged" in log
        assert "Traceback" not in log
        assert database.read_bytes() == garbage, "the damaged file is kept as it was"
        database.rename(database.with_name("jobs.sqlite3.damaged"))
        proc.start()
        with proc.client() as c:
            assert c.health()["database"] == {"path": str(database), "state": "ok", "problem": None}
    finally:
        proc.cleanup()


def test_rate_limit_state_of_past_sessions_is_forgotten(daemon):
    from shared.wire import new_id

    with daemon.client() as c:
        for _ in range(2000):  # a client naming a new session each time: each once kept a bucket for good
            c.session = new_id()
            c.ping()
        assert c.health()["clients_tracked"] >= 1, "the asking client itself is tracked"
        deadline = time.monotonic() + 15  # housekeeping runs every 2 s
        while c.health()["clients_tracked"] > 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert c.health()["clients_tracked"] <= 2


def test_the_rate_limit_lets_a_burst_through_then_refills_at_its_rate():
    from daemon.server import TokenBucket

    bucket = TokenBucket(rate=4.0, burst=3.0, now=100.0)  # seconds, as the server passes them; exact in binary
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False], "a burst of 3, then refused"
    assert bucket.take(100.125) is False, "half a token after 1/8 s"
    assert bucket.take(100.25) is True, "one token after 1/4 s at 4 a second"
    assert bucket.take(100.25) is False
    assert not bucket.full(100.75) and bucket.full(101.0), "full again 3/4 s after its last request"
    assert [bucket.take(160.0) for _ in range(4)] == [True, True, True, False], "a quiet minute gives one burst"


def test_a_client_sending_faster_than_its_limit_is_refused_and_the_daemon_serves_on():
    import zmq

    from shared.wire import pack, unpack

    # 5 requests at once, then one every 1000 s: 20 requests sent without waiting for answers arrive well within
    # 1000 s on any machine, so exactly 5 are served whatever the machine's speed.
    proc = DaemonProcess(extra_args=("--max-requests-per-second", "0.001", "--request-burst", "5")).start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        info = proc.info()
        sock.connect(info.endpoint)
        for _ in range(20):
            sock.send_multipart(pack("ping", {}, key=info.key_bytes, session="eager"))
        replies = []
        for _ in range(20):
            assert sock.poll(10_000), f"every request is answered; {len(replies)} were"
            replies.append(unpack(sock.recv_multipart(), key=info.key_bytes, guard=None).content)
        assert [r["ok"] for r in replies] == [True] * 5 + [False] * 15
        for refused in replies[5:]:
            assert refused["error"]["code"] == "limit_exceeded"
            assert "at most 0.001 a second, 5 at once" in refused["error"]["message"]
            assert "--max-requests-per-second" in refused["error"]["message"]
        with proc.client() as polite:  # another client has its own allowance
            assert polite.ping() == []
            assert polite.health()["clients_tracked"] == 2
        sock.send_multipart(pack("ping", {}, key=info.key_bytes, session="eager"))
        assert sock.poll(10_000)
        again = unpack(sock.recv_multipart(), key=info.key_bytes, guard=None).content
        assert again["ok"] is False and again["error"]["code"] == "limit_exceeded", "still within its window"
        assert proc.proc.poll() is None and "Traceback" not in proc.read_log()
    finally:
        sock.close()
        ctx.term()
        proc.cleanup()


def test_sessions_still_ending_count_against_the_live_session_cap(sample_video):
    proc = DaemonProcess(extra_args=("--max-live-sessions-total", "1")).start()
    try:
        with proc.client() as c:
            slow = c.live_start("count", {"path": str(sample_video), "loop": True}, {"process_s": 3.0})
            deadline = time.monotonic() + 20
            while c.live_next(slow["session_id"], wait_s=0.5)[0]["state"] != "running":
                assert time.monotonic() < deadline
            time.sleep(0.5)  # inside a 3-second frame
            c.live_stop(slow["session_id"])
            assert c.health()["live_sessions_ending"] == 1
            err = remote_error(c.live_start, "count", {"path": str(sample_video), "loop": True})
            assert err.code == "limit_exceeded" and "still ending" in err.message
            deadline = time.monotonic() + 20
            while c.health()["live_sessions_ending"] and time.monotonic() < deadline:
                time.sleep(0.1)
            again = c.live_start("count", {"path": str(sample_video), "loop": True})
            c.live_stop(again["session_id"])
    finally:
        proc.cleanup()


# -- the corpus ----------------------------------------------------------------------------------------------


def png_header_only(path, width: int, height: int):
    """A PNG whose header claims ``width`` x ``height`` pixels and whose pixel data is a few bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def substitute(value, names):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in names:
        return names[value[1:-1]]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return value


def test_the_hostile_corpus(client, daemon, sample_video, tmp_path):
    from support.hostile_corpus import CASES

    session = client.live_start("count", {"path": str(sample_video), "loop": True})
    names = {
        "session": session["session_id"],
        "video": str(sample_video),
        "png_100000": str(png_header_only(tmp_path / "huge.png", 100_000, 100_000)),
    }
    failures = []
    for case in CASES:
        started = time.monotonic()
        try:
            client.request(case.request, substitute(case.content, names), timeout=10)
            failures.append(f"{case.name}: accepted")
            continue
        except RemoteError as err:
            answer = err
        field = answer.detail.get("field") if isinstance(answer.detail, dict) else None
        if (answer.code, field) != (case.code, case.field):
            failures.append(f"{case.name}: {answer.code} field={field!r}: {answer.message[:200]}")
        if time.monotonic() - started > 5:
            failures.append(f"{case.name}: took {time.monotonic() - started:.1f} s")
        assert client.ping() == [], f"the daemon stopped serving after {case.name}"
    assert failures == []
    assert client.jobs() == [], "nothing refused was stored"
    client.live_stop(session["session_id"])
