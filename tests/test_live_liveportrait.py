"""Live LivePortrait through a real daemon: a video file stands in for the camera, insightface's bundled portrait
is the source, and the networks hold random weights at the official shapes in the official file layout
(``support/liveportrait_weights.py``), loaded through the real loader.

A rendered frame costs about 10 s on a 2-core CPU at the released sizes, so the option change runs on a camera
without a face (the animator outputs the source without rendering until it sees one) and one real frame is
animated from the sample video.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pytest
from test_face_swap import TOM_HANKS

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def lp_client(liveportrait_daemon):
    with liveportrait_daemon.client(timeout=30.0) as c:
        yield c


def next_result(client, session_id: str, after_seq: int, timeout: float) -> tuple[dict, dict[str, Any], dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session, result, arrays = client.live_next(session_id, after_seq=after_seq, wait_s=1.0)
        if result is not None:
            return session, result, arrays
        assert session["state"] not in ("stopped", "ended", "failed"), session
    raise AssertionError(f"no live result after seq {after_seq} within {timeout} s")


def tom_hanks_rgb() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(TOM_HANKS)), cv2.COLOR_BGR2RGB)


def test_the_live_options_are_the_job_options_but_the_driving_crop(lp_client):
    mode = lp_client.health()["modes"]["liveportrait"]
    assert mode["ready"] is True
    live = [p["name"] for p in mode["live"]]
    assert live == [p["name"] for p in mode["params"] if p["name"] != "driving_crop"]


def test_without_a_face_the_source_shows_and_options_change_while_running(lp_client, black_video):
    session = lp_client.live_start(
        "liveportrait", {"path": str(black_video), "loop": True}, {}, {"source": {"path": str(TOM_HANKS)}}
    )
    session_id = session["session_id"]
    _, first, arrays = next_result(lp_client, session_id, 0, timeout=90)
    assert first["data"]["face_found"] is False
    assert np.array_equal(arrays["frame"], tom_hanks_rgb()), "no driving face yet: the source as it is"

    lp_client.live_update(session_id, {"paste_back": False})
    seq = first["seq"]
    for _ in range(10):  # the frame being processed when the change came still pastes back
        _, result, arrays = next_result(lp_client, session_id, seq, timeout=30)
        seq = result["seq"]
        if arrays["frame"].shape == (512, 512, 3):
            break
    else:
        raise AssertionError("paste_back=false never took effect")
    assert (result["data"]["width"], result["data"]["height"]) == (512, 512), "the source's face crop"
    assert arrays["frame"].std() > 1
    lp_client.live_stop(session_id)


def test_the_camera_face_animates_the_source(lp_client, sample_video):
    session = lp_client.live_start(
        "liveportrait", {"path": str(sample_video), "loop": True}, {}, {"source": {"path": str(TOM_HANKS)}}
    )
    session_id, seq = session["session_id"], 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        _, result, arrays = next_result(lp_client, session_id, seq, timeout=150)
        seq = result["seq"]
        if result["data"]["face_found"]:
            break
    else:
        raise AssertionError("no camera frame with a face was animated")
    source = tom_hanks_rgb()
    assert arrays["frame"].shape == source.shape, "pasted back into the source at its size"
    assert not np.array_equal(arrays["frame"], source), "animated by the driving face"
    assert result["process_ms"] > 0
    lp_client.live_stop(session_id)
    assert lp_client.health()["live_sessions"] == 0


def test_a_missing_or_faceless_source_fails_the_session_naming_it(lp_client, black_video, tmp_path):
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((128, 128, 3), np.uint8))
    for inputs, words in (({}, "needs a source image"), ({"source": {"path": str(black)}}, "no face found")):
        session = lp_client.live_start("liveportrait", {"path": str(black_video), "loop": True}, {}, inputs)
        state, result, _ = lp_client.live_next(session["session_id"], wait_s=5.0)
        deadline = time.monotonic() + 30
        while state["state"] != "failed" and time.monotonic() < deadline:
            state, result, _ = lp_client.live_next(session["session_id"], wait_s=1.0)
        assert result is None and state["state"] == "failed", state
        assert state["error"]["detail"]["field"] == "source" and words in state["error"]["message"]
        lp_client.live_stop(session["session_id"])
