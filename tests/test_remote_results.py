"""A daemon on another machine, from the add-on's bridge (no Blender): it takes only encrypted connections, and
its job folders cannot be read here, so a succeeded job's results are copied through the protocol into this
machine's data folder and the job names the copy.

"Another machine" is a real daemon in its own mount namespace with a file system of its own at its data folder
(:func:`support.daemon_process.data_folder_hidden`): the same network, separate files."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from support.addon_modules import load_addon_package
from support.daemon_process import DaemonProcess, daemon_elsewhere
from support.scene_control import PACKAGE
from support.waiting import wait_for

from shared.client import Client, CurveKeys


@pytest.fixture(scope="module")
def bridge() -> ModuleType:
    return load_addon_package("bridge", "vfx_bridge")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Any:
    """(daemon, client key file): an encrypted daemon on loopback TCP whose data folder only it can see."""
    proc, key_file = daemon_elsewhere(tmp_path_factory.mktemp("keys"))
    yield proc, key_file
    proc.cleanup()


def settings(bridge: ModuleType, daemon: DaemonProcess, local: Path, key_file: Path | str) -> Any:
    return bridge.settings.DaemonSettings(
        python="",
        connection_file=str(daemon.connection_file),
        device="cpu",
        runtime_dir=local / "run",
        data_dir=local / "data",
        log_dir=local / "logs",
        client_key_file=str(key_file),
    )


def connect(bridge: ModuleType, daemon: DaemonProcess, local: Path, key_file: Path | str) -> tuple[Any, Callable]:
    (local / "previews").mkdir(exist_ok=True)
    conn = bridge.connection_thread.Connection(local / "previews")
    updates: list[Any] = []

    def gathered() -> list[Any]:
        updates.extend(conn.take_updates())
        return updates

    conn.start_daemon(settings(bridge, daemon, local, key_file))
    return conn, gathered


def last_status(bridge: ModuleType, gathered: Callable[[], list[Any]], state: str) -> Any:
    def reached() -> Any:
        statuses = [u for u in gathered() if isinstance(u, bridge.connection_thread.DaemonStatus)]
        return statuses[-1] if statuses and statuses[-1].state == state else None

    return wait_for(reached, 30, f"the connection thread to report the daemon {state}")


def test_a_job_of_a_daemon_on_another_machine_is_copied_here_and_names_the_copy(bridge, elsewhere, tmp_path):
    daemon, key_file = elsewhere
    conn, gathered = connect(bridge, daemon, tmp_path, key_file)
    try:
        status = last_status(bridge, gathered, "connected")
        request = bridge.requests.job_request("count", bridge.requests.mode_info(status, "count"), {"steps": 5}, {})
        conn.submit(request.job_id, request.mode, request.params, request.inputs)

        def final_view() -> Any:
            views = [u.job for u in gathered() if isinstance(u, bridge.connection_thread.JobUpdate)]
            mine = [view for view in views if view.job_id == request.job_id]
            return mine[-1] if mine and mine[-1].is_final else None

        view = wait_for(final_view, 60, "the job's final state")
    finally:
        conn.close()
    assert view.state == "succeeded", view
    with Client.from_file(daemon.connection_file, curve_keys=CurveKeys.load(key_file)) as client:
        theirs = client.job(request.job_id)["output_dir"]
    assert theirs and not Path(theirs).exists(), "the daemon's own folder cannot be read here"
    copy = tmp_path / "data" / "remote_results" / request.job_id
    assert view.output_dir == str(copy)

    frames = sorted((copy / "frames").glob("*.png"))
    assert [frame.name for frame in frames] == [f"{step:06d}.png" for step in range(5)]
    for step, frame in enumerate(frames):  # the count runner draws step k as an 8x8 frame of value k
        assert np.array_equal(cv2.imread(str(frame)), np.full((8, 8, 3), step, np.uint8)), frame.name
    assert np.array_equal(np.load(copy / "arrays" / "steps.npy"), np.arange(5, dtype=np.int32))
    assert json.loads((copy / "summary.json").read_text(encoding="utf-8")) == view.summary
    assert not (copy.parent / f"{request.job_id}.partial").exists()

    updates = gathered()
    final_at = next(i for i, u in enumerate(updates) if getattr(u, "job", None) is view)
    copying = [
        (i, u.fraction)
        for i, u in enumerate(updates)
        if isinstance(u, bridge.connection_thread.JobProgress) and u.stage == "downloading results"
    ]
    assert [fraction for _, fraction in copying] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "the copy shows as progress"
    assert all(i < final_at for i, _ in copying), "the job is told succeeded once its copy is complete"


def submit_count(bridge: ModuleType, conn: Any, status: Any, steps: int) -> str:
    request = bridge.requests.job_request("count", bridge.requests.mode_info(status, "count"), {"steps": steps}, {})
    conn.submit(request.job_id, request.mode, request.params, request.inputs)
    return request.job_id


def test_the_connection_serves_other_requests_while_a_copy_runs(bridge, elsewhere, tmp_path):
    """A copy runs on its own thread: a job submitted while a long copy runs is acknowledged before it ends."""
    daemon, key_file = elsewhere
    conn, gathered = connect(bridge, daemon, tmp_path, key_file)
    thread = bridge.connection_thread
    try:
        status = last_status(bridge, gathered, "connected")
        long_id = submit_count(bridge, conn, status, 2000)
        wait_for(
            lambda: any(isinstance(u, thread.JobProgress) and u.stage == "downloading results" for u in gathered()),
            60,
            "the long job's copy to start",
        )
        short_id = submit_count(bridge, conn, status, 1)

        def index_of(job_id: str, final: bool) -> int | None:
            found = [
                i
                for i, u in enumerate(gathered())
                if isinstance(u, thread.JobUpdate) and u.job.job_id == job_id and u.job.is_final == final
            ]
            return found[0] if found else None

        acknowledged = wait_for(lambda: index_of(short_id, False), 30, "the second job's acknowledgement")
        long_done = wait_for(lambda: index_of(long_id, True), 120, "the long job's copy to complete")
    finally:
        conn.close()
    copying = [
        i
        for i, u in enumerate(gathered())
        if isinstance(u, thread.JobProgress) and u.job_id == long_id and u.stage == "downloading results"
    ]
    assert copying[0] < acknowledged < copying[-1] < long_done, "the second submit waited for the copy to end"
    assert len(list((tmp_path / "data" / "remote_results" / long_id / "frames").iterdir())) == 2000


def test_a_copy_that_cannot_be_written_is_reported_once_naming_the_folder(bridge, elsewhere, tmp_path):
    daemon, key_file = elsewhere
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "remote_results").write_text("a file where the folder goes", encoding="utf-8")
    conn, gathered = connect(bridge, daemon, tmp_path, key_file)
    try:
        job_id = submit_count(bridge, conn, last_status(bridge, gathered, "connected"), 2)

        def failures() -> list[Any]:
            return [u for u in gathered() if isinstance(u, bridge.connection_thread.RequestFailed)]

        wait_for(failures, 30, "the copy's failure")
        for _ in range(3):  # the daemon is polled every 2 s meanwhile; the copy is not tried again at once
            last_status(bridge, gathered, "connected")
            gathered()
            __import__("time").sleep(2.0)
    finally:
        conn.close()
    (failure,) = failures()
    assert failure.action == "download" and failure.job_id == job_id
    assert f"Copying the results of job {job_id[:8]}: cannot write into {tmp_path / 'data' / 'remote_results'}" in (
        failure.message
    )
    finals = [u for u in gathered() if isinstance(u, bridge.connection_thread.JobUpdate) and u.job.is_final]
    assert finals == [], "a job is not told succeeded without results to show"


def test_an_interrupted_copy_resumes_from_its_whole_frames_and_a_complete_one_is_reused(bridge, elsewhere, tmp_path):
    daemon, key_file = elsewhere
    with Client.from_file(daemon.connection_file, curve_keys=CurveKeys.load(key_file), timeout=10) as client:
        job = client.submit("copytwice", "count", {"steps": 3})
        done = wait_for(lambda: (j := client.job(job["job_id"]))["state"] == "succeeded" and j, 30, "the job")
        folder = tmp_path / "remote_results"
        frames = folder / "copytwice.partial" / "frames"  # left by a copy Blender quit during
        frames.mkdir(parents=True)
        kept = cv2.imencode(".png", np.full((8, 8, 3), 77, np.uint8))[1].tobytes()
        (frames / "000000.png").write_bytes(kept)  # whole: frames are renamed into place once written
        (frames / "000001.part").write_bytes(b"half a frame")
        fractions: list[float] = []
        copy = bridge.remote_results.download(client, "copytwice", done["frame_count"], folder, fractions.append)
        assert fractions == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
        assert (copy / "frames" / "000000.png").read_bytes() == kept, "a whole frame is not fetched again"
        for step in (1, 2):
            assert np.array_equal(cv2.imread(str(copy / "frames" / f"{step:06d}.png")), np.full((8, 8, 3), step))
        assert sorted(p.name for p in (copy / "frames").iterdir()) == ["000000.png", "000001.png", "000002.png"]
        assert not (folder / "copytwice.partial").exists()
        stamp = (copy / "summary.json").stat().st_mtime_ns
        again = bridge.remote_results.download(client, "copytwice", done["frame_count"], folder, fractions.append)
    assert again == copy and len(fractions) == 4 and (copy / "summary.json").stat().st_mtime_ns == stamp


def test_a_copy_that_outruns_the_daemons_rate_limit_slows_down_and_completes(bridge, tmp_path):
    daemon = DaemonProcess(extra_args=("--max-requests-per-second", "40", "--request-burst", "5")).start()
    try:
        with daemon.client(timeout=10) as client:
            client.submit("paced", "count", {"steps": 12})
            frame_count = client.wait("paced", timeout=30)["frame_count"]
        # the add-on's own client, as the copy thread makes it (the add-on bundles its own protocol package)
        addon_client = sys.modules[f"{PACKAGE}.shared.client"].Client
        with addon_client.from_file(daemon.connection_file, timeout=10) as client:
            copy = bridge.remote_results.download(client, "paced", frame_count, tmp_path, lambda _: None)
    finally:
        daemon.cleanup()
    assert len(list((copy / "frames").glob("*.png"))) == 12 and (copy / "summary.json").is_file()


def test_only_a_daemons_own_job_folder_is_read_in_place(bridge, tmp_path):
    """A daemon names the folder to read; the add-on takes it only if it is that job's ``outputs`` folder, so a
    daemon elsewhere cannot point it at a folder of this machine."""
    job_id = "a1b2"
    for folder in (tmp_path / "jobs" / job_id / "outputs", tmp_path / "project", tmp_path / "other" / "outputs"):
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text("{}", encoding="utf-8")
    readable = bridge.remote_results.readable_here
    assert readable(job_id, str(tmp_path / "jobs" / job_id / "outputs"))
    assert not readable(job_id, str(tmp_path / "project")) and not readable(job_id, str(tmp_path / "other" / "outputs"))
    assert not readable(job_id, str(tmp_path / "jobs" / "zz" / "outputs")) and not readable(job_id, "")


def test_a_client_key_file_is_not_read_for_a_daemon_without_encryption(bridge, daemon, tmp_path):
    conn, gathered = connect(bridge, daemon, tmp_path, tmp_path / "no-such.key")
    try:
        status = last_status(bridge, gathered, "connected")
    finally:
        conn.close()
    assert status.health["pid"] == daemon.info().pid


def test_an_encrypted_daemon_without_a_usable_client_key_file_is_refused_naming_the_preference(
    bridge, elsewhere, tmp_path
):
    daemon, _key_file = elsewhere
    bad_key = tmp_path / "not-a-key.txt"
    bad_key.write_text("hello\n", encoding="ascii")
    for key_file, says in (
        ("", "set Client Key File in the add-on's preferences"),
        (tmp_path / "missing.key", "Client Key File " + str(tmp_path / "missing.key")),
        (bad_key, "Client Key File: " + str(bad_key) + " is not a client key file"),
    ):
        conn, gathered = connect(bridge, daemon, tmp_path, key_file)
        try:
            status = last_status(bridge, gathered, "error")
        finally:
            conn.close()
        assert says in status.message, status.message


class HostilePeer:
    """Stands in for a daemon that sends results named to escape the folder; the real daemon never does, and
    the add-on must not trust a peer on another machine to behave."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def result(self, job_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {name: np.zeros(1) for name in self.names}

    def frame_file(self, job_id: str, index: int) -> bytes:
        raise AssertionError("a job without frames")


def test_result_names_that_are_not_file_names_are_refused_and_nothing_is_written_outside(bridge, tmp_path):
    folder = tmp_path / "remote_results"
    with pytest.raises(Exception, match=r"not file names: \['\.\./\.\./escaped'\]"):
        bridge.remote_results.download(HostilePeer(["../../escaped"]), "job1", 0, folder, lambda _: None)
    with pytest.raises(Exception, match="not a job id"):
        bridge.remote_results.download(HostilePeer([]), "../job", 1, folder, lambda _: None)
    assert not (tmp_path / "escaped.npy").exists() and not (tmp_path / "job").exists()
