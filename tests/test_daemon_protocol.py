"""The daemon's protocol over real ZeroMQ sockets: every request type, hostile messages, files, transports."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
import uuid
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from support.daemon_process import DaemonProcess

from shared import PROTOCOL_VERSION
from shared.client import Client, CurveKeys
from shared.connection import read_connection_file
from shared.errors import ConnectionFileError, DaemonRestarted, DaemonUnavailable, RemoteError, WireError
from shared.wire import DELIMITER, Limits, ReplayGuard, new_id, pack, sign, unpack


def raw_socket(daemon: DaemonProcess) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.info().endpoint)
    return ctx, sock


def test_connection_file_is_private_and_names_a_live_daemon(daemon):
    info = daemon.info()
    assert stat.S_IMODE(daemon.connection_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.runtime_dir.stat().st_mode) == 0o700
    assert info.pid == daemon.proc.pid
    assert len(info.key) == 64 and info.key != "0" * 64
    assert info.endpoint.startswith("ipc://") and str(daemon.runtime_dir) in info.endpoint
    assert info.protocol_version == PROTOCOL_VERSION


def test_each_start_gets_a_new_key_and_session(daemon):
    info1 = daemon.info()
    daemon.stop()
    assert not daemon.connection_file.exists(), "a clean exit removes the connection file"
    info2 = daemon.start().info()
    assert info1.key != info2.key and info1.session_id != info2.session_id


def open_socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds open; fds that close while we look are skipped."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_after_the_ready_line_stdout_goes_to_the_log(daemon):
    # Blender reads the ready line and nothing more: a library printing later must not fill a pipe nobody reads.
    pid = daemon.proc.pid
    deadline = time.monotonic() + 5  # it switches right after printing the line the fixture waited for
    while os.readlink(f"/proc/{pid}/fd/1") != os.readlink(f"/proc/{pid}/fd/2") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2")


def test_nothing_listens_on_tcp_by_default(daemon):
    socket_inodes = open_socket_inodes(daemon.proc.pid)
    assert socket_inodes, "the daemon holds its ZeroMQ sockets open"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
        listening = [r for r in rows if r[3] == "0A" and r[9] in socket_inodes]
        assert listening == [], f"the daemon listens on TCP: {listening}"


def test_ping_echoes_buffers(client):
    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    (echo,) = client.ping([frame])
    np.testing.assert_array_equal(echo, frame)


def test_health_reports_version_device_modes_queue(client):
    health = client.health()
    assert health["protocol"] == PROTOCOL_VERSION and health["version"]
    assert health["modes"]["pose"]["ready"] is True
    assert health["modes"]["count"]["params"][0]["name"] == "steps"
    assert health["queue"]["depth"] == 0 and health["queue"]["running"] == []
    assert health["uptime_s"] >= 0
    assert health["memory"]["total"] > 0
    deadline = time.time() + 60  # the device probe runs in its own process (no torch here)
    while health["device"] is None and time.time() < deadline:
        time.sleep(0.1)
        health = client.health()
    assert health["device"]["kind"] == "cpu" and health["device"]["dtype"] == "float32"


def test_every_job_request_round_trips(client):
    job_id = uuid.uuid4().hex
    job = client.submit(job_id, "count", {"steps": 2})
    assert job["job_id"] == job_id and job["state"] in ("queued", "running", "succeeded")
    final = client.wait(job_id, timeout=30)
    assert final["state"] == "succeeded" and final["frame_count"] == 2
    assert client.job(job_id)["summary"]["steps"] == 2
    summary, arrays = client.result(job_id)
    np.testing.assert_array_equal(arrays["steps"], [0, 1])
    assert summary["steps"] == 2
    frame = client.frame(job_id, 1)
    assert frame.shape == (8, 8, 3) and frame.dtype == np.uint8 and int(frame[0, 0, 0]) == 1
    stored = Path(final["output_dir"]) / "frames" / "000001.png"
    assert client.frame_file(job_id, 1) == stored.read_bytes(), "the PNG as stored, for a client elsewhere"
    for bad in ({"index": True}, {"index": 0, "file": "yes"}):
        with pytest.raises(RemoteError) as refused:
            client.request("frame", {"job_id": job_id, **bad})
        assert refused.value.detail == {"field": next(iter(bad.keys() - {"index"}), "index")}, bad
    assert [j["job_id"] for j in client.jobs(limit=5)] == [job_id]
    assert client.cancel(job_id)["state"] == "succeeded", "cancelling a finished job changes nothing"
    with pytest.raises(RemoteError) as err:
        client.retry(job_id)
    assert err.value.code == "conflict"
    client.unsubscribe(job_id)
    assert client.release_memory() == ["count"]
    assert client.health()["loaded_models"] == []


def test_upload_is_content_addressed_and_reused(client, daemon):
    image = np.full((16, 16, 3), 200, np.uint8)
    digest = client.upload(image)
    assert client.upload(image) == digest
    assert len(list((daemon.data_dir / "blobs").glob("*.npy"))) == 1
    job = client.submit("with-image", "count", {"steps": 1}, {"image": image})
    assert job["inputs"]["image"] == {"blob": digest}
    assert client.wait("with-image")["state"] == "succeeded"
    _, arrays = client.result("with-image")
    assert arrays["image_mean"][0] == pytest.approx(200)


def test_submit_uploads_a_new_array_once(client, daemon):
    image = np.full((4, 4, 3), 7, np.uint8)
    client.submit("a1", "count", {"steps": 1}, {"image": image})
    client.submit("a2", "count", {"steps": 1}, {"image": image})
    assert len(list((daemon.data_dir / "blobs").glob("*.npy"))) == 1


def test_unknown_request_type_gets_a_clear_error(client):
    with pytest.raises(RemoteError) as err:
        client.request("explode")
    assert err.value.code == "invalid_request" and "explode" in err.value.message


def test_hostile_messages_are_dropped_while_others_are_served(daemon, client):
    info = daemon.info()
    ctx, sock = raw_socket(daemon)
    try:
        good = pack("ping", {}, key=info.key_bytes, session="attacker")
        header_b, content_b = (
            msgpack.packb(
                {
                    "msg_id": new_id(),
                    "type": "ping",
                    "session": "x",
                    "version": PROTOCOL_VERSION,
                    "time": time.time(),
                    "buffers": [{"dtype": "object", "shape": [1]}],
                }
            ),
            msgpack.packb({}),
        )

        def signed(buffers: list[dict], header_changes: dict | None = None, *extra: bytes) -> list[bytes]:
            header = msgpack.packb(
                {
                    "msg_id": new_id(),
                    "type": "ping",
                    "session": "x",
                    "version": PROTOCOL_VERSION,
                    "time": time.time(),
                    "buffers": buffers,
                    **(header_changes or {}),
                }
            )
            content = msgpack.packb({})
            return [DELIMITER, sign(info.key_bytes, header, content), header, content, *extra]

        hostile = [
            signed([{"dtype": "uint8", "shape": [0, 2**62, 2**62]}], None, b""),  # empty, with absurd axes
            signed([], {"time": float("nan")}),  # a time no clock check can reject by distance
            [DELIMITER, b"", *[bytes(f) for f in good[2:]]],  # unsigned
            [DELIMITER, b"0" * 64, *[bytes(f) for f in good[2:]]],  # badly signed
            [bytes(f) for f in good[:3]],  # truncated
            [b"no delimiter at all"],
            [DELIMITER, sign(info.key_bytes, header_b, content_b), header_b, content_b, b"\0" * 8],  # dtype
            [DELIMITER, b"x", b"\xc1" * 100, b"\xc1"],  # garbage msgpack
        ]
        for frames in hostile:
            sock.send_multipart(frames)
        replayed = [bytes(f) for f in pack("ping", {}, key=info.key_bytes, session="attacker")]
        sock.send_multipart(replayed)
        assert sock.poll(5000), "the genuine message gets its answer"
        unpack(sock.recv_multipart(), key=info.key_bytes, guard=ReplayGuard())
        sock.send_multipart(replayed)  # the very same frames again
        assert not sock.poll(500), "a replayed message gets no answer"
        assert client.ping() == []
        counters = client.health()["counters"]
        assert counters["rejected"] == len(hostile) + 1
    finally:
        sock.close()
        ctx.term()


def test_oversized_message_is_dropped_by_the_transport_and_the_daemon_lives(daemon, client):
    info = daemon.info()
    ctx, sock = raw_socket(daemon)
    try:
        huge = np.zeros(300 * 1024 * 1024, np.uint8)  # above the 256 MiB per-buffer limit
        lax = Limits(max_buffer_bytes=2**30)  # a sender that ignores the limits our own client keeps
        sock.send_multipart(pack("ping", {}, key=info.key_bytes, session="big", arrays=[huge], limits=lax), copy=False)
        assert not sock.poll(2000)
    finally:
        sock.close()
        ctx.term()
    assert client.ping() == []
    assert client.health()["counters"].get("rejected", 0) == 0, "ZeroMQ dropped it (ZMQ_MAXMSGSIZE) before the daemon"


def test_frames_too_big_for_one_message_are_refused_by_the_client_at_once(client):
    frames = np.zeros((45, 1080, 1920, 3), np.uint8)  # 45 frames of 1080p: 267 MiB
    started = time.monotonic()
    with pytest.raises(WireError, match="more than one message may carry") as err:
        client.submit("too-big", "count", {}, {"image": frames})
    assert time.monotonic() - started < 2, "no waiting for an answer that cannot come"
    assert err.value.detail["field"] == "inputs.image" and "inputs.image" in err.value.message
    assert client.jobs() == []


def test_client_times_out_with_a_clear_error_when_the_daemon_is_gone(daemon):
    with daemon.client(timeout=0.3, retries=1) as c:
        daemon.kill()
        with pytest.raises(DaemonUnavailable, match="is it running"):
            c.health()


def test_client_notices_a_restarted_daemon(daemon):
    with daemon.client(timeout=2.0, retries=1) as c:
        first = c.health()["session_id"]
        daemon.stop()
        daemon.start()
        with pytest.raises(DaemonRestarted):
            c.health()
        assert c.health()["session_id"] not in (first, None)


def test_refuses_to_start_over_a_live_daemon(daemon):
    second = DaemonProcess(base=daemon.base)
    try:
        with pytest.raises(RuntimeError):
            second.start(timeout=15)
        assert "already running" in second.read_log()
    finally:
        second._close_handles()
    with daemon.client() as c:
        assert c.ping() == []


def test_replaces_a_stale_connection_file(daemon):
    info = daemon.info()
    daemon.kill()
    assert daemon.connection_file.exists(), "kill -9 leaves the file behind"
    daemon.start()
    assert daemon.info().session_id != info.session_id


def test_shutdown_request_stops_the_daemon_and_removes_its_files(daemon):
    with daemon.client() as c:
        c.shutdown()
    assert daemon.proc.wait(15) == 0
    assert not daemon.connection_file.exists()
    assert not (daemon.runtime_dir / "daemon.sock").exists()


def test_sigterm_stops_gracefully(daemon):
    assert daemon.stop() == 0
    assert not daemon.connection_file.exists()


def writer_of_a_waiting_reader(fifo: Path, timeout: float = 30.0) -> int:
    """A write end of ``fifo`` opened once some reader (the daemon) has opened it; the reader then waits in read()
    for what is written, as on a stalled network drive."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_a_request_waiting_on_a_slow_file_holds_up_no_other_request(daemon, client):
    """Frames, results and uploads are read and written on I/O threads: while one waits on its file, the daemon
    answers everyone else, then sends its reply; a stop does not wait for a file that never comes."""
    job_id = uuid.uuid4().hex
    client.submit(job_id, "count", {"steps": 2})
    frames = Path(client.wait(job_id, timeout=30)["output_dir"]) / "frames"
    stored = (frames / "000000.png").read_bytes()
    for index in (0, 1):
        (frames / f"{index:06d}.png").unlink()
        os.mkfifo(frames / f"{index:06d}.png")
    got: dict[str, bytes] = {}

    def fetch() -> None:
        with daemon.client(timeout=60, retries=0) as waiting:
            got["frame"] = waiting.frame_file(job_id, 0)

    fetching = threading.Thread(target=fetch)
    fetching.start()
    writer = writer_of_a_waiting_reader(frames / "000000.png")
    try:
        with daemon.client(timeout=5, retries=0) as other:
            assert other.health()["queue"]["running"] == [], "answered while the frame waits on its file"
            assert other.job(job_id)["state"] == "succeeded"
    finally:
        os.write(writer, stored)
        os.close(writer)
        fetching.join(60)
    assert got["frame"] == stored, "the waiting request is answered once its file is read"

    ctx, sock = raw_socket(daemon)  # a frame request left waiting: its file gets a writer that never writes
    try:
        sock.send_multipart(
            pack("frame", {"job_id": job_id, "index": 1, "file": True}, key=daemon.info().key_bytes, session="s")
        )
        writer = writer_of_a_waiting_reader(frames / "000001.png")
        started = time.monotonic()
        assert client.shutdown() == "now"
        assert daemon.proc.wait(60) == 0
        os.close(writer)
    finally:
        sock.close()
        ctx.term()
    assert time.monotonic() - started < 30, "the stop waits for the stuck file 10 s at most"
    assert "still waiting on their files" in daemon.read_log()


def test_a_client_may_have_four_file_requests_waiting_and_no_more(daemon, client):
    """Each file request may hold an upload in memory while it waits for an I/O thread: a client gets 4 at once, the
    5th is refused naming the limit, and once the 4 are answered it is served again."""
    job_id = uuid.uuid4().hex
    client.submit(job_id, "count", {"steps": 5})
    frames = Path(client.wait(job_id, timeout=30)["output_dir"]) / "frames"
    stored = (frames / "000000.png").read_bytes()
    for index in range(4):
        (frames / f"{index:06d}.png").unlink()
        os.mkfifo(frames / f"{index:06d}.png")
    ctx, sock = raw_socket(daemon)  # one connection: the daemon takes its requests in the order they were sent
    key = daemon.info().key_bytes
    guard = ReplayGuard()
    writers: list[int] = []
    try:
        for index in range(4):  # two wait on their files on the I/O threads, two wait for a thread
            sock.send_multipart(pack("frame", {"job_id": job_id, "index": index, "file": True}, key=key, session="s"))
        for index in range(2):
            writers.append(writer_of_a_waiting_reader(frames / f"{index:06d}.png"))
        refused = pack("frame", {"job_id": job_id, "index": 4, "file": True}, key=key, session="s")
        sock.send_multipart(refused)
        assert sock.poll(30_000), "the 5th is answered at once"
        reply = unpack(sock.recv_multipart(), key=key, guard=guard)
        assert reply.content["ok"] is False and reply.content["error"]["code"] == "limit_exceeded"
        assert "at most 4" in reply.content["error"]["message"]
        with daemon.client(timeout=5, retries=0) as other:  # another client's file requests are its own
            assert other.request("ping").content["ok"]
        for index in range(4):  # the first two files come, which frees the threads for the other two
            if index >= 2:
                writers.append(writer_of_a_waiting_reader(frames / f"{index:06d}.png"))
            os.write(writers[index], stored)
            os.close(writers[index])
        writers = []
        answered = []
        for _ in range(4):
            assert sock.poll(30_000), f"4 replies, got {len(answered)}"
            answered.append(unpack(sock.recv_multipart(), key=key, guard=guard))
        assert all(r.content["ok"] for r in answered)
        sock.send_multipart(  # with nothing waiting, the same request is served
            pack("frame", {"job_id": job_id, "index": 4, "file": True}, key=key, session="s")
        )
        assert sock.poll(30_000), "the request is answered"
        reply = unpack(sock.recv_multipart(), key=key, guard=guard)
        assert reply.content["ok"] and reply.arrays()[0].tobytes() == (frames / "000004.png").read_bytes()
    finally:
        for writer in writers:
            os.close(writer)
        sock.close()
        ctx.term()


def test_remote_listen_without_keys_is_refused():
    proc = DaemonProcess(extra_args=("--listen", "tcp://0.0.0.0:0"))
    try:
        with pytest.raises(RuntimeError):
            proc.start(timeout=15)
        assert "requires encryption" in proc.read_log()
    finally:
        proc.cleanup()


def test_curve_encryption_admits_only_allow_listed_keys(tmp_path):
    public, secret = zmq.curve_keypair()
    other_public, other_secret = zmq.curve_keypair()
    keys = tmp_path / "authorized"
    keys.write_text(f"# Blender workstation\n{public.decode()}\n")
    proc = DaemonProcess(extra_args=("--listen", "tcp://127.0.0.1:0", "--curve", "--authorized-keys", str(keys)))
    proc.start()
    try:
        info = proc.info()
        assert info.server_public_key and info.endpoint.startswith("tcp://127.0.0.1:")
        with pytest.raises(ConnectionFileError, match="requires encryption"):
            Client(info)
        with Client(info, curve_keys=CurveKeys(public.decode(), secret.decode())) as allowed:
            assert allowed.health()["encrypted"] is True
        stranger = Client(
            info, curve_keys=CurveKeys(other_public.decode(), other_secret.decode()), timeout=0.5, retries=0
        )
        with stranger, pytest.raises(DaemonUnavailable):
            stranger.ping()
    finally:
        proc.cleanup()


def test_over_curve_the_client_is_its_key_whatever_session_it_names(tmp_path):
    first, second = zmq.curve_keypair(), zmq.curve_keypair()
    keys = tmp_path / "authorized"
    keys.write_text("".join(f"{public.decode()}\n" for public, _ in (first, second)))
    proc = DaemonProcess(
        extra_args=(
            *("--listen", "tcp://127.0.0.1:0", "--curve", "--authorized-keys", str(keys)),
            *("--max-queued-per-client", "2"),
        ),
    )
    proc.start()
    try:
        info = proc.info()
        one = CurveKeys(first[0].decode(), first[1].decode())
        other = CurveKeys(second[0].decode(), second[1].decode())
        with (
            Client(info, curve_keys=one) as a,
            Client(info, curve_keys=one) as same_key,
            Client(info, curve_keys=other) as b,
        ):
            a.submit("long", "count", {"steps": 200, "step_s": 0.05})
            deadline = time.monotonic() + 10
            while a.job("long")["state"] != "running" and time.monotonic() < deadline:
                time.sleep(0.02)
            a.submit("a1", "count", {})
            a.submit("a2", "count", {})  # two queued: the per-client limit
            with pytest.raises(RemoteError) as err:
                same_key.submit("sneaky", "count", {})
            assert err.value.code == "limit_exceeded", "a new session does not make a new client"
            assert b.submit("b0", "count", {})["state"] == "queued", "another key is another client"
            a.cancel("long")
    finally:
        proc.cleanup()


def test_a_remote_listen_advertises_an_address_clients_can_reach(tmp_path):
    public, secret = zmq.curve_keypair()
    keys = tmp_path / "authorized"
    keys.write_text(f"{public.decode()}\n")
    proc = DaemonProcess(
        extra_args=("--listen", "tcp://0.0.0.0:0", "--advertise", "localhost", "--authorized-keys", str(keys))
    ).start()
    try:
        info = proc.info()
        assert info.endpoint.startswith("tcp://localhost:"), "the connection file names the advertised host"
        with Client(info, curve_keys=CurveKeys(public.decode(), secret.decode())) as c:
            assert c.health()["encrypted"] is True
    finally:
        proc.cleanup()


def test_a_wildcard_address_is_advertised_as_this_machine(tmp_path):
    import socket

    from daemon.app import advertised_endpoint

    assert advertised_endpoint("tcp://0.0.0.0:5555", None) == f"tcp://{socket.getfqdn()}:5555"
    assert advertised_endpoint("tcp://[::]:5555", "fd00::7") == "tcp://[fd00::7]:5555"
    assert advertised_endpoint("tcp://10.0.0.5:5555", None) == "tcp://10.0.0.5:5555"
    assert advertised_endpoint("ipc:///run/x/daemon.sock", "ignored") == "ipc:///run/x/daemon.sock"


def test_plain_loopback_tcp_works_without_keys():
    proc = DaemonProcess(extra_args=("--listen", "tcp://127.0.0.1:0")).start()
    try:
        with proc.client() as c:
            assert c.health()["encrypted"] is False
            assert c.health()["endpoint"].startswith("tcp://127.0.0.1:")
    finally:
        proc.cleanup()


def test_authorized_keys_file_allows_comments_and_keys_that_start_with_a_hash(tmp_path):
    from daemon.app import load_authorized_keys

    hashed = "#" + "a" * 39
    path = tmp_path / "keys"
    path.write_text(f"# studio keys\n\n{hashed}  # Blender box\n{'b' * 40}\n")
    assert load_authorized_keys(path) == {hashed.encode(), b"b" * 40}
    path.write_text("too-short\n")
    with pytest.raises(Exception, match="not a 40-character"):
        load_authorized_keys(path)


def test_a_client_refuses_a_daemon_of_another_protocol_version_naming_the_fix(daemon):
    """An older daemon would otherwise fail the handshake on loopback TCP and the client would only time out."""
    info = dataclasses.replace(read_connection_file(daemon.connection_file), protocol_version=PROTOCOL_VERSION - 1)
    with pytest.raises(ConnectionFileError, match="update the extension and the daemon together"):
        Client(info)
