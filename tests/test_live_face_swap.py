"""Live face swap through a real daemon: the sample video, played at its own frame rate, stands in for a camera.

The tiny ONNX models of ``support/tiny_onnx_faces.py`` (real signatures, loaded by insightface's own code) find
the lit characters of Megamind.avi as faces, so every step of the swap runs for real. With ``detect_every=1``
each frame is swapped on its own, so a live frame can be compared bit for bit with the offline mode's output for
the same camera frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.run_context import RecordingContext
from test_face_swap import TOM_HANKS, output_frames, swap_regions

from models.media import FrameArray, ImageSequence
from shared.errors import RemoteError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface")

FINAL_STATES = ("stopped", "ended", "failed")


@pytest.fixture
def live_client(face_swap_daemon):
    with face_swap_daemon.client(timeout=30.0) as c:
        yield c
        for session in c.live_list():
            c.live_stop(session["session_id"])


@pytest.fixture(scope="module")
def video_frames(sample_video) -> np.ndarray:
    """Every frame of the sample video, decoded as the daemon's capture decodes it."""
    capture = cv2.VideoCapture(str(sample_video))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def camera(sample_video: Path) -> dict[str, Any]:
    return {"path": str(sample_video), "loop": True}


def collect(client, session_id: str, count: int, after_seq: int = 0, timeout: float = 30.0) -> list[tuple]:
    """``count`` results newer than ``after_seq``, fetched as the add-on fetches them (latest-only)."""
    results, seq = [], after_seq
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        session, result, arrays = client.live_next(session_id, after_seq=seq, wait_s=1.0)
        if result is not None:
            seq = result["seq"]
            results.append((result, arrays))
        elif session["state"] in FINAL_STATES:
            raise AssertionError(f"the session ended early: {session}")
    assert len(results) == count, f"only {len(results)} of {count} live results within {timeout} s"
    return results


def settle(client, session_id: str) -> int:
    """After an option change: the seq from which every result was made with the new options.

    The session thread takes new options before it starts a frame. When the change arrived, the newest published
    result was L and frame L+1 could already be in progress with the old options; so L+1 is awaited and every
    result after it started once the change was in."""
    _, latest, _ = client.live_next(session_id, after_seq=0, wait_s=5.0)
    _, following, _ = client.live_next(session_id, after_seq=latest["seq"], wait_s=30.0)
    assert following is not None, "the session produced no result after the option change"
    return following["seq"] + 1


def offline_outputs(runner, frames: np.ndarray, tmp_path: Path, **params: Any) -> tuple[np.ndarray, dict]:
    """The offline mode's output for ``frames`` (each detected on its own) with ``params``."""
    inputs = {"video": FrameArray(frames), "reference": ImageSequence([TOM_HANKS])}
    result = runner.run(inputs, runner.validate({"detect_every": 1, **params}), RecordingContext(tmp_path, device=None))
    return output_frames(tmp_path, len(frames)), result.arrays


def source_frames(video_frames: np.ndarray, results: list[tuple]) -> np.ndarray:
    return np.stack([video_frames[r["frame_index"] % len(video_frames)] for r, _ in results])


def test_live_frames_are_the_offline_swap_of_each_camera_frame(
    live_client, face_swap_runner, sample_video, video_frames, tmp_path
):
    session = live_client.live_start(
        "face_swap", camera(sample_video), {"detect_every": 1}, {"reference": {"path": str(TOM_HANKS)}}
    )
    results = collect(live_client, session["session_id"], 10)
    sources = source_frames(video_frames, results)
    expected, _ = offline_outputs(face_swap_runner, sources, tmp_path)
    swapped_frames = 0
    for (result, arrays), source, wanted in zip(results, sources, expected, strict=True):
        frame = arrays["frame"]
        assert frame.shape == source.shape == (528, 720, 3) and frame.dtype == np.uint8, "the camera's size"
        assert (result["data"]["width"], result["data"]["height"]) == (720, 528)
        assert np.array_equal(frame, wanted), f"live frame {result['frame_index']} differs from the offline swap"
        region = swap_regions(source.shape, arrays["face_kps"])
        assert np.array_equal(frame[~region], source[~region]), "pixels outside the faces are the camera's"
        assert len(arrays["face_box"]) == len(arrays["face_swapped"]) == result["data"]["faces"]
        if arrays["face_swapped"].any():
            assert np.any(frame[region] != source[region])
            swapped_frames += 1
    assert swapped_frames >= 8, "the characters are found and swapped in the live frames"
    assert all(r["data"]["detected"] for r, _ in results), "detect_every=1 detects on every frame"
    latency_ms = [(r["processed_at"] - r["captured_at"]) * 1000 for r, _ in results]
    assert all(0 <= ms < 2000 for ms in latency_ms) and all(r["process_ms"] > 0 for r, _ in results)
    assert live_client.live_stop(session["session_id"])["state"] in ("stopped", "running")
    assert live_client.health()["live_sessions"] == 0


def test_options_change_while_running(live_client, face_swap_runner, sample_video, video_frames, tmp_path):
    session = live_client.live_start(
        "face_swap",
        camera(sample_video),
        {"detect_every": 1},
        {"reference": {"path": str(TOM_HANKS)}, "target_face": {"path": str(TOM_HANKS)}},
    )
    session_id = session["session_id"]
    collect(live_client, session_id, 2)

    # Mouth mask on, colour correction off: the frames are now the offline swap with those options.
    live_client.live_update(session_id, {"mouth_mask": True, "colour_correction": False})
    changed = collect(live_client, session_id, 4, after_seq=settle(live_client, session_id))
    sources = source_frames(video_frames, changed)
    expected, _ = offline_outputs(
        face_swap_runner, sources, tmp_path / "mouth", mouth_mask=True, colour_correction=False
    )
    default, _ = offline_outputs(face_swap_runner, sources, tmp_path / "default")
    for (result, arrays), wanted in zip(changed, expected, strict=True):
        assert np.array_equal(arrays["frame"], wanted), f"frame {result['frame_index']} ignores the new options"
    assert any(not np.array_equal(w, d) for w, d in zip(expected, default, strict=True)), "the options show"

    # Which faces: only those like target_face, at a similarity no other face reaches: none is swapped.
    live_client.live_update(session_id, {"target": "matching", "similarity_threshold": 1.0})
    matching = collect(live_client, session_id, 4, after_seq=settle(live_client, session_id))
    for (result, arrays), source in zip(matching, source_frames(video_frames, matching), strict=True):
        assert result["data"]["faces"] > 0 and not arrays["face_swapped"].any()
        assert np.array_equal(arrays["frame"], source), "frames without a chosen face pass through untouched"

    # Detection reuse: back to every face, the detector every 6th frame and tracking in between.
    live_client.live_update(session_id, {"target": "all", "detect_every": 6})
    reused = collect(live_client, session_id, 12, after_seq=settle(live_client, session_id))
    detected = [r["data"]["detected"] for r, _ in reused]
    assert 1 <= sum(detected) <= 6 and not all(detected), detected
    assert all(arrays["face_swapped"].any() for r, arrays in reused if r["data"]["faces"]), "tracked faces swap"

    # A value the schema accepts but the mode cannot use is refused up front; the session runs on.
    with pytest.raises(RemoteError) as err:
        live_client.live_update(session_id, {"det_size": 500})
    assert err.value.detail["field"] == "params.det_size" and "multiple of 32" in err.value.message
    state, _, _ = live_client.live_next(session_id, after_seq=0, wait_s=1.0)
    assert state["state"] == "running" and state["params"]["det_size"] != 500


def test_a_reference_without_a_face_fails_the_session_naming_it(live_client, sample_video, video_frames, tmp_path):
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), video_frames[0])  # Megamind.avi opens on a black frame
    cases = [
        ({"reference": {"path": str(black)}}, {}, "reference", "no face was found in the reference image"),
        ({}, {}, "reference", "needs a reference image"),
        ({"reference": {"path": str(TOM_HANKS)}}, {"target": "matching"}, "target_face", "needs a target_face"),
    ]
    for inputs, params, field, words in cases:
        session = live_client.live_start("face_swap", camera(sample_video), params, inputs)
        state, result, _ = live_client.live_next(session["session_id"], wait_s=5.0)
        assert result is None and state["state"] == "failed", state
        assert state["error"]["detail"]["field"] == field and words in state["error"]["message"], state["error"]
        live_client.live_stop(session["session_id"])
    assert live_client.health()["live_sessions"] == 0


def test_the_live_options_are_the_offline_options(live_client):
    modes = live_client.health()["modes"]
    live = {p["name"]: p for p in modes["face_swap"]["live"]}
    offline_params = {p["name"]: p for p in modes["face_swap"]["params"]}
    assert live.keys() == offline_params.keys()
    # The same options, but live tracks between detections by default (every 5th frame) while jobs detect on every
    # frame as insightface's own pipeline does.
    assert live["detect_every"]["default"] == 5 and offline_params["detect_every"]["default"] == 1
    assert {k: v for k, v in live.items() if k != "detect_every"} == {
        k: v for k, v in offline_params.items() if k != "detect_every"
    }
    assert {"target", "mouth_mask", "colour_correction", "detect_every"} <= set(live)
