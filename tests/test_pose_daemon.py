"""The pose mode end to end through a real daemon, on the real sample video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def test_pose_job_on_the_sample_video_finds_people_in_most_frames(client, sample_video):
    spec = {"path": str(sample_video), "frame_start": 100, "frame_end": 148}
    job = client.submit("pose-megamind", "pose", {"render_skeleton": True}, {"video": spec}, subscribe=True)
    job = client.wait(job["job_id"], timeout=120)
    assert job["state"] == "succeeded", job["error"]
    summary, arrays = client.result("pose-megamind")
    assert summary["frame_count"] == job["frame_count"] == 48
    assert arrays["image_landmarks"].shape == (48, 33, 3) and arrays["image_landmarks"].dtype == np.float32
    assert arrays["world_landmarks"].shape == (48, 33, 3)
    assert arrays["visibility"].shape == (48, 33) and arrays["present"].dtype == np.bool_
    assert arrays["present"].mean() >= 0.9, "MediaPipe finds the character in most frames"
    present = arrays["present"]
    assert np.isfinite(arrays["world_landmarks"][present]).all()
    assert np.isnan(arrays["world_landmarks"][~present]).all()
    shoulders = arrays["world_landmarks"][present][:, [11, 12]]
    width = np.linalg.norm(shoulders[:, 0] - shoulders[:, 1], axis=1)
    assert 0.15 < np.median(width) < 0.6, "world landmarks are in metres"
    frames = sorted(Path(job["output_dir"], "frames").glob("*.png"))
    assert len(frames) == 48
    image = cv2.imread(str(frames[10]))
    assert image.shape == (528, 720, 3) and image.any(), "skeleton renders have the source size"
    fetched = client.frame("pose-megamind", 10)
    np.testing.assert_array_equal(fetched, image[..., ::-1])


def test_pose_job_on_uploaded_frames(client, sample_video):
    capture = cv2.VideoCapture(str(sample_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 120)
    frames = []
    for _ in range(6):
        ok, bgr = capture.read()
        assert ok
        frames.append(bgr[..., ::-1])
    capture.release()
    clip = np.ascontiguousarray(np.stack(frames))
    client.submit("pose-uploaded", "pose", {"render_skeleton": False}, {"video": clip})
    job = client.wait("pose-uploaded", timeout=60)
    assert job["state"] == "succeeded", job["error"]
    _, arrays = client.result("pose-uploaded")
    assert arrays["present"].shape == (6,) and arrays["present"].sum() >= 5
    assert job["frame_count"] == 0, "no renders were asked for"


def test_pose_job_can_be_cancelled_while_tracking(client, sample_video):
    client.submit("pose-cancel", "pose", {}, {"video": {"path": str(sample_video)}}, subscribe=True)
    seen_tracking = False
    for _ in range(100):
        events = client.poll_events(timeout=0.5)
        if any(e.get("stage") == "tracking" for e in events):
            seen_tracking = True
            break
    assert seen_tracking
    client.cancel("pose-cancel")
    job = client.wait("pose-cancel", timeout=30)
    assert job["state"] == "cancelled" and job["fraction"] < 1.0


def test_pose_job_with_hands_and_face_publishes_their_arrays(client, sample_video):
    spec = {"path": str(sample_video), "frame_start": 20, "frame_end": 30}
    params = {"hands": True, "face": True, "render_skeleton": False}
    client.submit("pose-parts", "pose", params, {"video": spec})
    job = client.wait("pose-parts", timeout=120)
    assert job["state"] == "succeeded", job["error"]
    summary, arrays = client.result("pose-parts")
    assert (summary["hands"], summary["face"]) == (True, True)
    assert arrays["hand_landmarks"].shape == (10, 2, 21, 3) and arrays["face_landmarks"].shape == (10, 478, 3)
    # Roxanne holds a glass in her right hand; her left is out of the picture (tests/test_pose_hands_face.py).
    assert arrays["hand_present"][:, 1].sum() >= 8 and not arrays["hand_present"][:, 0].any()
    assert arrays["face_present"].all()
