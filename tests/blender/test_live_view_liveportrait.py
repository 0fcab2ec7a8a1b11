"""The live view in real Blender running live LivePortrait through the real daemon: the panel's operators start it
on a video standing in for the camera, the daemon's frames are shown in the "VFX Live" image, an option changed
in the panel changes them, stopping releases the daemon's session, and bad input is refused naming the field.

The daemon serves random LivePortrait weights at the official shapes (``liveportrait_daemon`` in
``tests/conftest.py``). The scenario (``blender_side/live_view_liveportrait.py``) runs in each Blender line's bpy
venv with the extension installed by Blender's own installer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_face_swap import TOM_HANKS
from test_live_liveportrait import next_result, tom_hanks_rgb

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def faceless_reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faceless") / "black.png"
    cv2.imwrite(str(path), np.zeros((128, 128, 3), np.uint8))
    return path


@pytest.fixture(scope="module")
def live(blender, liveportrait_daemon, black_video, faceless_reference, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"live-lp-{blender.line}")
    record = blender.run(
        "live_view_liveportrait.py",
        "--connection-file",
        str(liveportrait_daemon.connection_file),
        "--data-dir",
        str(folder),
        "--video",
        str(black_video),
        "--reference",
        str(TOM_HANKS),
        "--faceless-reference",
        str(faceless_reference),
    )
    record["folder"] = folder
    return record


@pytest.fixture(scope="module")
def daemon_frames(liveportrait_daemon, black_video) -> dict[bool, np.ndarray]:
    """What the daemon outputs, asked directly, for the portrait on the same video: by ``paste_back``."""
    with liveportrait_daemon.client(timeout=30.0) as client:
        session_id = client.live_start(
            "liveportrait", {"path": str(black_video), "loop": True}, {}, {"source": {"path": str(TOM_HANKS)}}
        )["session_id"]
        _, result, arrays = next_result(client, session_id, 0, timeout=90)
        frames = {True: arrays["frame"]}
        client.live_update(session_id, {"paste_back": False})
        for _ in range(10):  # the frame in progress when the change came still pastes back
            _, result, arrays = next_result(client, session_id, result["seq"], timeout=30)
            if arrays["frame"].shape != frames[True].shape:
                break
        else:
            raise AssertionError("paste_back=false never took effect in the daemon")
        frames[False] = arrays["frame"]
        client.live_stop(session_id)
    return frames


def test_the_panel_offers_live_liveportrait_with_its_options(live):
    panel = live["panel_ready"]
    assert not any(line.startswith("Not ready") for line in panel), panel
    assert "[Paste back]" in panel and "[Motion multiplier]" in panel and "[Driving crop]" not in panel, panel


def test_start_without_a_reference_is_refused_naming_the_field(live):
    refused = live["without_reference"]
    assert refused["result"] == [] and refused["threads"] == []
    assert "Live liveportrait needs a reference image" in refused["error"] and "under Reference" in refused["error"]


def test_a_reference_without_a_face_fails_with_the_reason_in_the_panel(live):
    failed = live["faceless_reference"]
    assert failed["state"] == "failed"
    assert "no face found in the source image" in failed["error"], failed["error"]
    assert failed["last_error"] == failed["error"]
    assert any("no face found" in line for line in failed["panel"]), failed["panel"]
    assert failed["threads"] == [] and failed["daemon_sessions"] == 0


def test_the_daemons_frames_are_shown_in_the_image(live, daemon_frames):
    assert live["start"] == {"result": ["FINISHED"], "error": "", "threads": ["vfx-mocap-live-view"]}
    assert live["mode_sent"] == "liveportrait"
    pasted = live["pasted"]
    assert pasted["count"] >= 5 and pasted["state"] == "running" and pasted["daemon_sessions"] == 1
    assert pasted["data"] == {"face_found": False, "width": 112, "height": 112}, "the camera shows no face"
    assert pasted["image_size"] == [112, 112], "with paste-back the image takes the portrait's size"
    assert pasted["is_float"] and pasted["colorspace"] == "sRGB"
    assert pasted["image_is_last_frame"], "the image holds the newest frame the view took"
    image = np.load(live["folder"] / "pasted.npy")
    assert np.array_equal(image, daemon_frames[True]), "the daemon's frame, bit for bit, top row first"
    assert np.array_equal(image, tom_hanks_rgb()), "no face seen yet: the portrait as it is"
    assert math.isfinite(pasted["latency_ms_p50"]) and pasted["latency_ms_p50"] > 0
    panel = "\n".join(live["panel_running"])
    assert "<vfxmocap.live_view_stop>" in panel and "Latency" in panel and "fps" in panel, panel


def test_paste_back_switched_off_in_the_panel_changes_the_image_to_the_face_crop(live, daemon_frames):
    cropped = live["cropped"]
    assert live["sent_options"]["paste_back"] is False and live["update_error"] == ""
    assert cropped["count"] > live["pasted"]["count"] and cropped["state"] == "running"
    assert cropped["image_size"] == [512, 512] and cropped["image_is_last_frame"]
    image = np.load(live["folder"] / "cropped.npy")
    assert np.array_equal(image, daemon_frames[False]), "the daemon's face crop, bit for bit"


def test_stopping_releases_the_daemons_session(live):
    assert live["stop"]["result"] == ["FINISHED"] and live["stop"]["error"] == ""
    assert live["after_stop"] == {
        "threads": [],
        "state": "stopped",
        "error": "",
        "daemon_sessions": 0,
        "timer_after_tick": None,
    }
