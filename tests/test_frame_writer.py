"""The frame writer: real frames of Megamind.avi encoded by OpenCV on its threads and stored in order on a real
disk, slowed down or broken on purpose; and the pose runner using it."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.run_context import RecordingContext

from models.frame_writer import FrameWriteError, FrameWriter, frame_path, store_atomically
from models.media import VideoFile
from models.pose import PoseRunner
from models.runner import JobCancelled


@pytest.fixture(scope="module")
def frames(sample_video: Path) -> list[np.ndarray]:
    """24 RGB frames of Megamind.avi (720x528), the first one black."""
    return list(VideoFile(sample_video, frame_end=24).frames())


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("frame-writer", "frame-encode"))]


class SlowDisk:
    """Stores for real after a random delay of up to ``most_s``; records the order and how far the producer was
    ahead of the disk at each store."""

    def __init__(self, most_s: float, seed: int = 0) -> None:
        self.most_s = most_s
        self.random = random.Random(seed)
        self.order: list[int] = []
        self.accepted = 0

    def __call__(self, path: Path, data: bytes) -> None:
        time.sleep(self.random.uniform(0, self.most_s))
        store_atomically(path, data)
        self.order.append(int(path.stem))


def test_frames_are_stored_in_order_and_exact_under_a_slow_disk(frames: list[np.ndarray], tmp_path: Path) -> None:
    disk = SlowDisk(most_s=0.03)
    ahead = []
    with FrameWriter(tmp_path, workers=4, max_pending=3, store=disk) as writer:
        for index, frame in enumerate(frames):
            writer.write(index, frame)
            ahead.append(index + 1 - len(disk.order))
    assert disk.order == list(range(len(frames)))
    # Back-pressure: the producer is never more than the queue, the frame being stored and the one in hand ahead.
    assert max(ahead) <= 3 + 2
    for index in (0, 7, 23):
        np.testing.assert_array_equal(read_rgb(frame_path(tmp_path, index)), frames[index])  # RGB kept, lossless
    assert writer.written == len(frames) and writer_threads() == []


def test_drawn_frames_are_drawn_off_the_calling_thread(frames: list[np.ndarray], tmp_path: Path) -> None:
    drawn_on = []

    def draw() -> np.ndarray:
        drawn_on.append(threading.current_thread().name)
        return frames[5][::-1].copy()

    with FrameWriter(tmp_path) as writer:
        writer.write_drawn(0, draw)
    assert drawn_on[0].startswith("frame-encode")
    np.testing.assert_array_equal(read_rgb(frame_path(tmp_path, 0)), frames[5][::-1])


def test_close_stops_cleanly_with_frames_pending(frames: list[np.ndarray], tmp_path: Path) -> None:
    disk = SlowDisk(most_s=0.05)
    writer = FrameWriter(tmp_path, workers=2, max_pending=4, store=disk)
    for index in range(6):
        writer.write(index, frames[index])
    writer.close()  # as a cancelled job does
    assert writer_threads() == [], "no writer thread is left behind"
    assert disk.order == list(range(6)), "the accepted frames are stored, in order"
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    with pytest.raises(RuntimeError, match="after finish"):
        writer.write(6, frames[6])
    writer.close()  # twice is fine


def test_a_failed_write_is_reported_with_its_frame_index(frames: list[np.ndarray], tmp_path: Path) -> None:
    (tmp_path / "frames" / "000005.png.tmp").mkdir(parents=True)  # the disk refuses frame 5's file
    writer = FrameWriter(tmp_path, workers=2, max_pending=2)
    with pytest.raises(FrameWriteError) as error:
        try:
            for index, frame in enumerate(frames):
                writer.write(index, frame)  # raises once the writer has seen the failure
            writer.finish()
        finally:
            writer.close()
    assert error.value.index == 5
    assert "could not write output frame 5" in str(error.value) and "000005.png.tmp" in str(error.value)
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert writer_threads() == []


# The pose runner through the writer


@pytest.fixture(scope="module")
def pose_runner() -> PoseRunner:
    runner = PoseRunner()
    runner.load("cpu")
    return runner


def test_a_pose_job_whose_disk_fails_names_the_frame(pose_runner: PoseRunner, sample_video: Path, tmp_path: Path):
    (tmp_path / "frames" / "000003.png.tmp").mkdir(parents=True)
    with pytest.raises(FrameWriteError, match="could not write output frame 3"):
        pose_runner.run(
            {"video": VideoFile(sample_video, frame_end=30)}, pose_runner.validate({}), RecordingContext(tmp_path)
        )
    assert writer_threads() == []


def test_a_cancelled_pose_job_leaves_no_writer_thread(pose_runner: PoseRunner, sample_video: Path, tmp_path: Path):
    with pytest.raises(JobCancelled):
        pose_runner.run(
            {"video": VideoFile(sample_video)}, pose_runner.validate({}), RecordingContext(tmp_path, cancel_after=7)
        )
    assert writer_threads() == []
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"{i:06d}.png" for i in range(7)]
