"""Pose through a daemon on another machine, from Blender: the add-on connects with the key file set in its
preferences, and the result strip shows the frames it copied here, since the daemon's folder cannot be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq
from support.daemon_process import daemon_elsewhere

from shared.client import Client, CurveKeys

pytestmark = pytest.mark.timeout(600)

SOURCE_OFFSET = 30  # as in blender_side/remote_daemon.py
SOURCE_FRAMES = 6


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, sample_video: Path) -> Any:
    """The daemon elsewhere reads the movie where the sample lives, as a studio's daemon reads a shared drive."""
    proc, key_file = daemon_elsewhere(tmp_path_factory.mktemp("remote-keys"), False, (sample_video.parent,))
    yield proc, key_file
    proc.cleanup()


@pytest.fixture(scope="module")
def remote_run(blender, elsewhere, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    daemon, key_file = elsewhere
    folder = tmp_path_factory.mktemp(f"remote-{blender.line}")
    record = blender.run(
        "remote_daemon.py",
        *("--connection-file", str(daemon.connection_file), "--key-file", str(key_file)),
        *("--data-dir", str(folder / "data"), "--video", str(sample_video), "--blend", str(folder / "shot.blend")),
    )
    return {"record": record, "data_dir": folder / "data", "daemon": daemon, "key_file": key_file}


def test_the_preferences_offer_a_client_key_file_and_the_add_on_connects_with_it(remote_run):
    record = remote_run["record"]
    assert any("client_key_file" in line for line in record["preferences"]), record["preferences"]
    assert record["status"] == "connected"


def test_the_result_of_a_daemon_elsewhere_is_copied_here_and_inserted_from_the_copy(remote_run):
    record, job = remote_run["record"], remote_run["record"]["job"]
    assert job["state"] == "succeeded"
    copy = remote_run["data_dir"] / "remote_results" / job["id"]
    assert job["output_dir"] == str(copy)
    assert Path(record["strip"]["directory"]) == copy / "frames"
    assert record["strip"]["files"] == [f"{index:06d}.png" for index in range(SOURCE_FRAMES)]
    assert record["strip"]["start"] == record["source_start"], "aligned with the source strip"


def test_the_copied_frames_are_the_daemons_frames(remote_run):
    job = remote_run["record"]["job"]
    with Client.from_file(remote_run["daemon"].connection_file, curve_keys=CurveKeys.load(remote_run["key_file"])) as c:
        theirs = c.job(job["id"])
        assert not Path(theirs["output_dir"]).exists(), "the daemon's own folder cannot be read here"
        for index in range(SOURCE_FRAMES):
            mine = cv2.imread(str(Path(job["output_dir"]) / "frames" / f"{index:06d}.png"))[..., ::-1]
            assert np.array_equal(mine, c.frame(job["id"], index)), f"frame {index}"
    assert mine.any(), "a drawn skeleton, not an empty frame"


def test_a_copied_result_is_kept_beside_the_saved_blend(remote_run):
    record, job = remote_run["record"], remote_run["record"]["job"]
    saved = record["saved_strip"]
    assert record["keep_results_with_blend"] is True
    assert saved["directory"].startswith("//vfx_results/" + job["id"]), saved
    kept = Path(saved["absolute"])
    assert kept == remote_run["data_dir"].parent / "vfx_results" / job["id"]
    for name in saved["files"]:
        assert (kept / name).read_bytes() == (Path(job["output_dir"]) / "frames" / name).read_bytes(), name


def test_create_client_key_makes_a_private_key_pair_in_the_data_folder_and_sets_it(remote_run):
    created = remote_run["record"]["created_key"]
    key_file = remote_run["data_dir"] / "client.key"
    assert created["preference"] == [str(key_file), str(key_file)], "made once, then reused"
    assert key_file.stat().st_mode & 0o777 == 0o600
    keys = CurveKeys.load(key_file)
    assert zmq.curve_public(keys.secret.encode()) == keys.public.encode(), "a real CURVE pair"
    assert any("vfxmocap.create_client_key" in line for line in created["preferences_drawn"])
