"""Live sessions through a real daemon: a video file stands in for the camera."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from support.daemon_process import DaemonProcess

from shared.errors import RemoteError


def collect(client, session_id, count, timeout=30.0):
    """Fetch ``count`` results the way the add-on does: always asking for anything newer than the last."""
    results, seq = [], 0
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        session, result, arrays = client.live_next(session_id, after_seq=seq, wait_s=1.0)
        if result is not None:
            assert result["seq"] > seq, "results only move forward"
            seq = result["seq"]
            results.append((session, result, arrays))
        elif session["state"] in ("stopped", "ended", "failed"):
            break
    return results


def test_live_pose_streams_landmarks_from_a_video_file(client, sample_video):
    session = client.live_start("pose", {"path": str(sample_video), "loop": True})
    assert session["state"] in ("starting", "running")
    results = collect(client, session["session_id"], 20)
    assert len(results) == 20
    present = [r["data"]["present"] for _, r, _ in results]
    assert sum(present) >= 15, "MediaPipe tracks the character in most live frames"
    _, result, arrays = results[-1]
    assert arrays["world_landmarks"].shape == (33, 3) and arrays["visibility"].shape == (33,)
    latency_ms = (result["processed_at"] - result["captured_at"]) * 1000
    assert 0 <= latency_ms < 2000 and result["process_ms"] > 0
    frame_indices = [r["frame_index"] for _, r, _ in results]
    assert frame_indices == sorted(frame_indices)
    assert results[-1][0]["fps"] > 0
    stopped = client.live_stop(session["session_id"])
    assert stopped["state"] in ("stopped", "running")
    assert client.live_list() == []
    assert client.health()["live_sessions"] == 0


def test_results_are_latest_only_never_a_backlog(client, sample_video):
    session = client.live_start("count", {"path": str(sample_video), "loop": True})
    collect(client, session["session_id"], 1)
    time.sleep(1.0)  # the file plays on at 24 fps while nobody fetches
    _, first, _ = client.live_next(session["session_id"], after_seq=0, wait_s=1.0)
    _, second, _ = client.live_next(session["session_id"], after_seq=first["seq"], wait_s=1.0)
    assert second["frame_index"] - first["frame_index"] <= 3, "the next result is fresh, not the next in a queue"
    assert first["seq"] > 10, "frames processed while nobody fetched were dropped, not queued"
    client.live_stop(session["session_id"])


def test_live_frames_travel_as_buffers_and_options_change_while_running(client, sample_video):
    session = client.live_start("count", {"path": str(sample_video), "loop": True}, {"gain": 1.0})
    [(_, first, arrays)] = collect(client, session["session_id"], 1)
    assert arrays["frame"].shape == (528, 720, 3) and arrays["frame"].dtype == np.uint8
    assert first["data"]["mean"] == pytest.approx(float(arrays["frame"].mean()), rel=1e-5)
    client.live_update(session["session_id"], {"gain": 0.0})
    for _, result, _ in collect(client, session["session_id"], 30):
        if result["data"]["mean"] == 0.0:
            break
    else:
        raise AssertionError("the new gain never took effect")
    with pytest.raises(RemoteError) as err:
        client.live_update(session["session_id"], {"gain": "loud"})
    assert err.value.detail["field"] == "params.gain"
    client.live_stop(session["session_id"])


def test_no_camera_is_a_clear_error(client):
    started = time.monotonic()
    session = client.live_start("pose", {"camera": 7})  # the camera is opened on the session's own thread
    assert time.monotonic() - started < 2.0
    state, result, _ = client.live_next(session["session_id"], wait_s=5.0)
    assert result is None and state["state"] == "failed"
    assert state["error"]["code"] == "capture_failed"
    assert "could not open camera 7" in state["error"]["message"] and "permission" in state["error"]["message"]
    client.live_stop(session["session_id"])
    assert client.live_list() == []


@pytest.mark.parametrize(
    ("source", "field"),
    [({"camera": -1}, "source.camera"), ({"path": "relative.mp4"}, "source.path"), ({"url": "x"}, "source")],
)
def test_bad_sources_name_the_field(client, source, field):
    with pytest.raises(RemoteError) as err:
        client.live_start("pose", source)
    assert err.value.detail["field"] == field


def test_a_mode_without_a_live_variant_is_refused(client, sample_video):
    with pytest.raises(RemoteError, match="no live variant"):
        client.live_start("needs_weights", {"path": str(sample_video)})


def test_two_sessions_per_client_at_most(daemon, sample_video):
    with daemon.client() as a, daemon.client() as b:
        source = {"path": str(sample_video), "loop": True}
        first = a.live_start("count", source)
        a.live_start("count", source)
        with pytest.raises(RemoteError) as err:
            a.live_start("count", source)
        assert err.value.code == "limit_exceeded" and "limit 2" in err.value.message
        other = b.live_start("count", source)
        with pytest.raises(RemoteError) as err:
            b.live_next(first["session_id"])
        assert err.value.code == "not_found", "a client cannot read another client's session"
        for session in a.live_list():
            a.live_stop(session["session_id"])
        b.live_stop(other["session_id"])


def test_clients_of_one_program_share_its_sessions_and_its_limit(daemon, sample_video):
    with daemon.client(client_id="blender-1") as view, daemon.client(client_id="blender-1") as pose:
        source = {"path": str(sample_video), "loop": True}
        first = view.live_start("count", source)
        pose.live_start("count", source)
        with pytest.raises(RemoteError) as err:
            view.live_start("count", source)
        assert err.value.code == "limit_exceeded", "one Blender counts as one client"
        assert {s["session_id"] for s in pose.live_list()} >= {first["session_id"]}
        for session in view.live_list():
            view.live_stop(session["session_id"])


def test_a_session_nobody_polls_is_cleaned_up_within_the_ttl(sample_video):
    proc = DaemonProcess(extra_args=("--live-ttl", "1.0")).start()
    try:
        with proc.client() as c:
            session = c.live_start("count", {"path": str(sample_video), "loop": True})
            collect(c, session["session_id"], 2)
            time.sleep(4.0)  # Blender went away: no more polls
            assert c.health()["live_sessions"] == 0
            with pytest.raises(RemoteError) as err:
                c.live_next(session["session_id"])
            assert err.value.code == "not_found"
        assert "timed out" in proc.read_log()
    finally:
        proc.cleanup()


def test_a_file_that_ends_ends_the_session(client, tmp_path, sample_video):
    import cv2

    short = tmp_path / "short.avi"
    capture = cv2.VideoCapture(str(sample_video))
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"MJPG"), 24, (720, 528))
    for _ in range(5):
        writer.write(capture.read()[1])
    writer.release()
    capture.release()
    session = client.live_start("count", {"path": str(short), "loop": False})
    results = collect(client, session["session_id"], 100, timeout=60)  # a fresh daemon may wait for its device probe
    assert 1 <= len(results) <= 5
    final, _, _ = client.live_next(session["session_id"], after_seq=results[-1][1]["seq"], wait_s=2.0)
    assert final["state"] == "ended"


def test_a_failing_processor_ends_its_session_with_the_error(client, sample_video):
    session = client.live_start("count", {"path": str(sample_video), "loop": True}, {"gain": -1.0})
    deadline = time.monotonic() + 60  # a fresh daemon's first session may wait for the device probe
    state, result, _ = client.live_next(session["session_id"], wait_s=5.0)
    while state["state"] == "starting" and time.monotonic() < deadline:
        state, result, _ = client.live_next(session["session_id"], wait_s=5.0)
    assert result is None and state["state"] == "failed"
    assert "negative gain" in state["error"]["message"]
    assert client.ping() == [], "the daemon lives on"


def test_stopping_a_slow_session_never_holds_up_other_requests(client, sample_video):
    session = client.live_start("count", {"path": str(sample_video), "loop": True}, {"process_s": 3.0})
    wait_running(client, session["session_id"], timeout=60)  # a fresh daemon's first session may wait for its probe
    time.sleep(0.5)  # the session thread is inside its 3-second frame now
    started = time.monotonic()
    client.live_stop(session["session_id"])
    assert client.ping() == []
    # The session's frame has 2.5 s left: a stop that waited for it would take longer than this.
    assert time.monotonic() - started < 2.0, "stop answers at once; the thread lets go in the background"
    assert client.live_list() == [] and client.health()["live_sessions_ending"] == 1
    wait_until_released(client, timeout=30)


def test_the_total_number_of_live_sessions_is_bounded(sample_video):
    proc = DaemonProcess(extra_args=("--max-live-sessions-total", "2")).start()
    try:
        with proc.client() as a, proc.client() as b:
            source = {"path": str(sample_video), "loop": True}
            a.live_start("count", source)
            b.live_start("count", source)
            with pytest.raises(RemoteError) as err:
                b.live_start("count", source)
            assert err.value.code == "limit_exceeded" and "limit 2" in err.value.message
            assert "--max-live-sessions-total" in err.value.message
    finally:
        proc.cleanup()


class StandInCapture:
    """OpenCV's VideoCapture as a camera that delivers ``frames`` frames, then nothing (unplugged). No camera
    is attached to the machines the tests run on, so this stands in for one."""

    def __init__(self, target, frames: int) -> None:
        self.left = frames

    def isOpened(self) -> bool:
        return True

    def get(self, prop) -> float:
        return 30.0

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        self.left = 0


def drain(source) -> int:
    frames = 0
    deadline = time.monotonic() + 10
    while not source.finished and time.monotonic() < deadline:
        frames += source.latest(timeout=0.1) is not None
    return frames


def test_a_camera_unplugged_mid_session_ends_with_a_clear_error():
    from daemon.capture import FrameSource

    source = FrameSource({"camera": 0}, open_capture=lambda target: StandInCapture(target, frames=3))
    source.start()
    try:
        assert drain(source) >= 1
        assert source.finished and source.error is not None
        assert "camera 0 stopped delivering frames (unplugged" in source.error.message
    finally:
        source.close()


def test_a_looping_file_without_decodable_frames_fails_instead_of_spinning(sample_video):
    from daemon.capture import FrameSource

    source = FrameSource(
        {"path": str(sample_video), "loop": True}, open_capture=lambda target: StandInCapture(target, frames=0)
    )
    source.start()
    try:
        assert drain(source) == 0
        assert source.finished and "has no frame OpenCV can decode" in source.error.message
    finally:
        source.close()


def wait_running(client, session_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while client.live_next(session_id, wait_s=0.5)[0]["state"] != "running":
        assert time.monotonic() < deadline, "the session did not start running"


def wait_until_released(client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while client.health()["live_sessions_ending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.health()["live_sessions_ending"] == 0, "stopped sessions let go of their camera and model"


def test_many_sessions_one_after_another_leak_no_file_descriptors(daemon, client, sample_video):
    def open_fds() -> int:
        return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))

    def one_session() -> None:
        session = client.live_start("count", {"path": str(sample_video), "loop": True})
        collect(client, session["session_id"], 2)
        client.live_stop(session["session_id"])
        wait_until_released(client, timeout=10)

    one_session()  # first use opens what stays open (the model, the capture library)
    before = open_fds()
    for _ in range(15):
        one_session()
    assert open_fds() - before <= 3, "each finished session gave back its sockets and files"
