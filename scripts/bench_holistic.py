#!/usr/bin/env python3
"""Holistic tracking benchmark: the daemon's pose job with hands and face vs a bare MediaPipe Holistic loop.

- **daemon**: a real daemon subprocess; a ``pose`` job with ``hands`` and ``face`` on and ``render_skeleton`` off
  on the first N frames of Megamind.avi (a path input: the daemon decodes the file), timed from submit to the
  ``succeeded`` state event.
- **bare**: in this process, ``mediapipe.solutions.holistic.Holistic(model_complexity=1,
  refine_face_landmarks=True)`` over the same frames read with ``cv2.VideoCapture`` (BGR to RGB included), timed
  from opening the file (graph construction included, as each daemon job builds a fresh graph) to the last frame.

A warm-up job and a warm-up loop load MediaPipe first. Daemon and bare runs alternate; the ratio of the medians
bare/daemon is the goal (at least 0.9). Both sides must find hands and faces in the same frames.

Usage: ``.venv/bin/python scripts/bench_holistic.py [--frames N] [--repeats R]``. Prints a table, then one JSON
line with the numbers. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]
import numpy as np  # noqa: E402

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
GOAL_RATIO = 0.9
PARAMS = {"hands": True, "face": True, "render_skeleton": False}


def daemon_job(client: Any, frames: int, timeout: float = 300.0) -> tuple[float, dict[str, np.ndarray]]:
    """(seconds from submit to succeeded, the job's presence arrays)."""
    job_id = f"bench-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    client.submit(job_id, "pose", PARAMS, {"video": {"path": str(VIDEO), "frame_end": frames}}, subscribe=True)
    deadline = started + timeout
    state = ""
    while not state and time.perf_counter() < deadline:
        for event in client.poll_events(timeout=1.0):
            if event.get("job_id") == job_id and event.get("state") in ("succeeded", "failed", "cancelled"):
                state = event["state"]
    seconds = time.perf_counter() - started
    if state != "succeeded":
        raise RuntimeError(f"pose job {job_id} ended {state or 'unfinished'}: {client.job(job_id).get('error')}")
    _summary, arrays = client.result(job_id)
    return seconds, {name: np.asarray(arrays[name]) for name in ("hand_present", "face_present")}


def bare_loop(mediapipe: Any, cv2: Any, frames: int) -> tuple[float, dict[str, np.ndarray]]:
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(VIDEO))
    tracker = mediapipe.solutions.holistic.Holistic(
        static_image_mode=False, model_complexity=1, refine_face_landmarks=True
    )
    results = []
    try:
        for _ in range(frames):
            ok, bgr = capture.read()
            if not ok:
                break
            results.append(tracker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        seconds = time.perf_counter() - started
    finally:
        tracker.close()
        capture.release()
    hands = np.array([(r.left_hand_landmarks is not None, r.right_hand_landmarks is not None) for r in results])
    face = np.array([r.face_landmarks is not None for r in results])
    return seconds, {"hand_present": hands, "face_present": face}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames of Megamind.avi (default 120)")
    parser.add_argument("--repeats", type=int, default=3, help="daemon/bare runs each (default 3)")
    args = parser.parse_args(argv)
    if not VIDEO.is_file():
        print(f"{VIDEO} is missing: install the Debian package opencv-doc", file=sys.stderr)
        return 0

    from support.daemon_process import DaemonProcess

    daemon = DaemonProcess(plugin=False)
    try:
        daemon.start()
        client = daemon.client(timeout=30.0)
        while client.health()["device_status"] == "probing":
            time.sleep(0.05)
        daemon_job(client, 5)
        import cv2
        import mediapipe

        bare_loop(mediapipe, cv2, 5)
        daemon_runs, bare_runs = [], []
        for i in range(args.repeats):  # alternate which side goes first, so drifting load hits both alike
            for side in ("daemon", "bare") if i % 2 == 0 else ("bare", "daemon"):
                if side == "daemon":
                    daemon_runs.append(daemon_job(client, args.frames))
                else:
                    bare_runs.append(bare_loop(mediapipe, cv2, args.frames))
        client.close()
    finally:
        daemon.cleanup()

    same = all(
        np.array_equal(d[1][name], bare_runs[0][1][name])
        for d in daemon_runs
        for name in ("hand_present", "face_present")
    )
    daemon_s = float(statistics.median(s for s, _ in daemon_runs))
    bare_s = float(statistics.median(s for s, _ in bare_runs))
    ratio = bare_s / daemon_s
    frames = len(bare_runs[0][1]["face_present"])
    print(
        f"Holistic tracking (body + hands + 478-point face): {frames} frames of {VIDEO.name}, medians of {args.repeats}"
    )
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} now")
    print(f"bare Holistic loop     {bare_s:8.3f} s  {frames / bare_s:6.1f} fps")
    print(f"daemon pose job        {daemon_s:8.3f} s  {frames / daemon_s:6.1f} fps  (hands, face, no render)")
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"daemon / bare = {ratio:.2f}x (goal >= {GOAL_RATIO}x: {verdict}); same hands and faces found: {same}")
    result = {
        "benchmark": "holistic",
        "frames": frames,
        "repeats": args.repeats,
        "bare_s": round(bare_s, 4),
        "daemon_s": round(daemon_s, 4),
        "bare_runs_s": [round(s, 4) for s, _ in bare_runs],
        "daemon_runs_s": [round(s, 4) for s, _ in daemon_runs],
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
        "same_parts_found": same,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
