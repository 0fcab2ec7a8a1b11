"""The live capture thread hands out frames ready for the model: RGB, converted on the capture thread."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from daemon.capture import FrameSource


class RecordingCapture:
    """OpenCV's own capture of the file, wrapped (a Python subclass of cv2.VideoCapture crashes the garbage
    collector later in the run); notes which thread reads each frame."""

    def __init__(self, target: str) -> None:
        self.capture = cv2.VideoCapture(target)
        self.read_on: set[str] = set()

    def read(self, *args):
        self.read_on.add(threading.current_thread().name)
        return self.capture.read(*args)

    def __getattr__(self, name: str):
        return getattr(self.capture, name)


def test_frames_come_out_rgb_converted_on_the_capture_thread(sample_video):
    opened: list[RecordingCapture] = []

    def open_capture(target: str) -> RecordingCapture:
        opened.append(RecordingCapture(target))
        return opened[0]

    source = FrameSource({"path": str(sample_video)}, open_capture=open_capture)
    source.start()
    try:
        frame = None
        while frame is None or frame.index < 5:  # frame 0 of Megamind.avi is black
            frame = source.latest(timeout=1.0) or frame
            assert not source.finished, "the file ended before its fifth frame"
    finally:
        source.close()
    capture = cv2.VideoCapture(str(sample_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame.index)
    ok, bgr = capture.read()
    capture.release()
    assert ok and not np.array_equal(bgr[..., 0], bgr[..., 2]), "a frame whose red and blue differ"
    rgb = frame.rgb()
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    assert rgb is frame.rgb(), "converted once, on the capture thread, not again by the consumer"
    assert opened[0].read_on == {"vfx-capture"}
