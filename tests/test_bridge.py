"""The add-on's bridge (``addon/bridge``) against a real daemon, with no Blender: the connection thread submits a
job built by the job request builder and follows it to its result, the live client runs a live session built by
the live-session request builder and the recorder writes its frames, and a malformed input spec is refused by the
builders, naming its field, before anything reaches the daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from support.addon_modules import load_addon_package
from support.waiting import wait_for


@pytest.fixture(scope="module")
def bridge() -> ModuleType:
    """``addon/bridge`` imported as the extension imports it (relative imports of the bundled ``shared``)."""
    return load_addon_package("bridge", "vfx_bridge")


@pytest.fixture
def connection(bridge: ModuleType, daemon, tmp_path: Path):
    """The add-on's connection thread attached to the test daemon through its connection file, and a function
    that gathers its updates; the thread is closed afterwards (the daemon, started elsewhere, stays)."""
    conn = bridge.connection_thread.Connection(tmp_path / "previews")
    updates: list[Any] = []

    def gathered() -> list[Any]:
        updates.extend(conn.take_updates())
        return updates

    conn.start_daemon(settings(bridge, daemon, tmp_path))
    yield conn, gathered
    conn.close()


def settings(bridge: ModuleType, daemon, tmp_path: Path) -> Any:
    return bridge.settings.DaemonSettings(
        python="",
        connection_file=str(daemon.connection_file),
        device="cpu",
        runtime_dir=daemon.runtime_dir,
        data_dir=daemon.data_dir,
        log_dir=tmp_path / "logs",
    )


def connected_status(bridge: ModuleType, gathered: Callable[[], list[Any]]) -> Any:
    def connected() -> Any:
        statuses = [u for u in gathered() if isinstance(u, bridge.connection_thread.DaemonStatus)]
        return statuses[-1] if statuses and statuses[-1].state == "connected" and statuses[-1].health else None

    return wait_for(connected, 30, "the connection thread to report the daemon connected")


def test_the_connection_thread_sends_a_built_job_and_follows_it_to_its_result(bridge, connection):
    conn, gathered = connection
    status = connected_status(bridge, gathered)
    requests = bridge.requests
    info = requests.mode_info(status, "count")
    request = requests.job_request("count", info, {"steps": 4}, {})
    conn.submit(request.job_id, request.mode, request.params, request.inputs)

    def final_view() -> Any:
        views = [u.job for u in gathered() if isinstance(u, bridge.connection_thread.JobUpdate)]
        mine = [view for view in views if view.job_id == request.job_id]
        return mine[-1] if mine and mine[-1].state in ("succeeded", "failed") else None

    view = wait_for(final_view, 30, "the job's final state event")
    assert view.state == "succeeded", view
    assert view.params["steps"] == 4
    frames = sorted((Path(view.output_dir) / "frames").glob("*.png"))
    assert len(frames) == 4, "one frame per step, written by the runner the daemon picked for the request"


def test_a_malformed_input_spec_is_refused_by_the_builders_naming_its_field(bridge, connection, daemon, tmp_path):
    """The add-on parses each input spec with the protocol's own parser before sending: the user sees the field
    and the form it must take, and the daemon never gets the request."""
    _conn, gathered = connection
    status = connected_status(bridge, gathered)
    requests = bridge.requests
    info = requests.mode_info(status, "count")
    with pytest.raises(bridge.errors.UserError) as refused:
        requests.job_request("count", info, {}, {"image": {"path": "/tmp/a.png", "frame_strat": 3}})
    assert str(refused.value) == (
        "inputs.image: unknown keys frame_strat for a 'path' input (allowed: path, frame_start, frame_end, step)"
    )
    live = requests.mode_info(status, "count", live=True)
    with pytest.raises(bridge.errors.UserError) as refused_live:
        requests.live_request(
            settings(bridge, daemon, tmp_path), status, "count", live, {"camera": 0}, {}, {"image": {"paths": "a.png"}}
        )
    assert str(refused_live.value) == "inputs.image: paths must be a list of image file paths, got str"
    with daemon.client(client_id=bridge.connection_thread.CLIENT_ID) as client:
        assert client.jobs() == [] and client.live_list() == [], "nothing reached the daemon"


def test_the_builders_name_what_the_daemon_lacks(bridge):
    status = bridge.connection_thread.DaemonStatus
    requests = bridge.requests
    with pytest.raises(bridge.errors.UserError, match="The daemon is still starting"):
        requests.mode_info(status("starting"), "count")
    with pytest.raises(bridge.errors.UserError, match=r"not running \(it failed: the Daemon panel says why\)"):
        requests.mode_info(status("error", "boom"), "count")
    health = {"modes": {"count": {"ready": False, "missing": ["weights"], "fix": ["fetch them"], "live": None}}}
    with pytest.raises(bridge.errors.UserError, match="The daemon has no mode 'pose'; it offers: count"):
        requests.mode_info(status("connected", health=health), "pose")
    with pytest.raises(bridge.errors.UserError, match="Mode 'count' has no live variant in this daemon"):
        requests.mode_info(status("connected", health=health), "count", live=True)
    info = requests.mode_info(status("connected", health=health), "count")
    with pytest.raises(bridge.errors.UserError, match=r"Mode 'count' is not ready. Missing: weights. Fix: fetch them"):
        requests.job_request("count", info, {}, {})


def test_the_live_client_runs_a_built_session_and_the_recorder_writes_its_frames(
    bridge, connection, daemon, sample_video, tmp_path
):
    _conn, gathered = connection
    status = connected_status(bridge, gathered)
    requests = bridge.requests
    info = requests.mode_info(status, "count", live=True)
    request = requests.live_request(
        settings(bridge, daemon, tmp_path), status, "count", info, {"path": str(sample_video), "loop": True}, {}, {}
    )
    assert request.connection_file == daemon.connection_file
    take = bridge.live_record.Take("take1", "count", str(tmp_path / "take"), "{}", 0, 24.0)
    recorder = bridge.live_record.Recorder(tmp_path / "take", 24.0, take)
    recorded: list[np.ndarray] = []

    def prepare(result: dict[str, Any], arrays: dict[str, np.ndarray]) -> float:
        frame = np.ascontiguousarray(arrays["frame"])
        if len(recorded) < 5:
            recorded.append(frame)
            recorder.add(frame, float(result["captured_at"]))
        return float(result["data"]["mean"])

    session = bridge.live_client.LiveSessionThread(request, prepare, "vfx-mocap-test-live")
    try:
        wait_for(lambda: len(recorded) >= 5, 60, "five live results")
        mean = wait_for(session.take, 30, "a prepared result on the main thread's side")
        assert session.state == "running" and mean > 0
    finally:
        session.stop()
    assert session.state == "stopped" and not session.alive
    recorder.close()
    assert recorder.done and recorder.error == "" and recorder.dropped == 0
    written = sorted((tmp_path / "take" / "frames").glob("*.png"))
    assert len(written) == recorder.finished_take().frame_count >= 1
    first = cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(first[:, :, ::-1], recorded[0]), "the first frame is written as it came, RGB"
    with daemon.client(client_id=bridge.connection_thread.CLIENT_ID) as client:  # the add-on's sessions
        assert [s["state"] for s in client.live_list()] == [], "the daemon's session was stopped"
