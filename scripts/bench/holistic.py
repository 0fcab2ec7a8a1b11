"""Holistic tracking benchmark: the daemon's pose job with hands and face vs a bare MediaPipe Holistic loop.

- **daemon**: a real daemon subprocess; a ``pose`` job with ``hands`` and ``face`` on and ``render_skeleton`` off
  on the first N frames of Megamind.avi (a path input: the daemon decodes the file), timed from submit to the
  ``succeeded`` state event.
- **bare**: in this process, ``mediapipe.solutions.holistic.Holistic(model_complexity=1,
  refine_face_landmarks=True)`` over the same frames read with ``cv2.VideoCapture`` (BGR to RGB included), timed
  from opening the file (graph construction included, as each daemon job builds a fresh graph) to the last frame.

A warm-up job and a warm-up loop load MediaPipe first. Daemon and bare runs alternate; the ratio of the medians
bare/daemon is the goal (at least 0.9). CPU seconds are measured too (the daemon process's, all threads, from
/proc; the bare loop's process time): their ratio does not move with the machine's other load, which the
wall-clock ratio does on a shared machine. Both sides must find hands and faces in the same frames.

Usage: ``.venv/bin/python -m scripts.bench.holistic [--frames N] [--repeats R]``. Prints a table, then, as its last
line, the JSON result line of ``scripts/bench/common.py``. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from scripts.bench import common
from scripts.bench.common import FINAL_STATES
from tests.support.daemon_process import DaemonProcess

VIDEO = common.SAMPLE_VIDEO
GOAL_RATIO = 0.9
PARAMS = {"hands": True, "face": True, "render_skeleton": False}
PARTS = ("hand_present", "face_present")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) that process ``pid`` has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_job(client: Any, pid: int, frames: int, timeout: float = 300.0) -> tuple[float, float, dict[str, Any]]:
    """(seconds from submit to succeeded, daemon CPU seconds meanwhile, the job's presence arrays)."""
    job_id = f"bench-{uuid.uuid4().hex[:12]}"
    cpu = process_cpu_s(pid)
    started = time.perf_counter()
    client.submit(job_id, "pose", PARAMS, {"video": {"path": str(VIDEO), "frame_end": frames}}, subscribe=True)
    deadline = started + timeout
    state = ""
    while not state and time.perf_counter() < deadline:
        for event in client.poll_events(timeout=1.0):
            if event.get("job_id") == job_id and event.get("state") in FINAL_STATES:
                state = event["state"]
    seconds = time.perf_counter() - started
    cpu = process_cpu_s(pid) - cpu
    if state != "succeeded":
        raise RuntimeError(f"pose job {job_id} ended {state or 'unfinished'}: {client.job(job_id).get('error')}")
    _summary, arrays = client.result(job_id)
    return seconds, cpu, {name: np.asarray(arrays[name]) for name in PARTS}


def bare_loop(mediapipe: Any, cv2: Any, frames: int) -> tuple[float, float, dict[str, Any]]:
    """(seconds, CPU seconds, presence arrays) of the bare loop, graph construction included."""
    cpu = time.process_time()
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
        cpu = time.process_time() - cpu
    finally:
        tracker.close()
        capture.release()
    hands = np.array([(r.left_hand_landmarks is not None, r.right_hand_landmarks is not None) for r in results])
    face = np.array([r.face_landmarks is not None for r in results])
    return seconds, cpu, {"hand_present": hands, "face_present": face}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames of Megamind.avi (default 120)")
    parser.add_argument("--repeats", type=int, default=3, help="daemon/bare runs each (default 3)")
    args = parser.parse_args(argv)
    if not VIDEO.is_file():
        print(f"{VIDEO} is missing: install the Debian package opencv-doc", file=sys.stderr)
        return 1

    load_at_start = os.getloadavg()[0]
    daemon = DaemonProcess(plugin=False)
    try:
        daemon.start()
        client = daemon.client(timeout=30.0)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        while client.health()["device_status"] == "probing":
            time.sleep(0.05)
        daemon_job(client, pid, 5)
        import cv2
        import mediapipe

        bare_loop(mediapipe, cv2, 5)
        daemon_runs, bare_runs = [], []
        for i in range(args.repeats):  # alternate which side goes first, so drifting load hits both alike
            for side in ("daemon", "bare") if i % 2 == 0 else ("bare", "daemon"):
                if side == "daemon":
                    daemon_runs.append(daemon_job(client, pid, args.frames))
                else:
                    bare_runs.append(bare_loop(mediapipe, cv2, args.frames))
        client.close()
    finally:
        daemon.cleanup()

    same = all(np.array_equal(run[2][name], bare_runs[0][2][name]) for run in daemon_runs for name in PARTS)
    daemon_s = float(statistics.median(run[0] for run in daemon_runs))
    bare_s = float(statistics.median(run[0] for run in bare_runs))
    daemon_cpu = float(statistics.median(run[1] for run in daemon_runs))
    bare_cpu = float(statistics.median(run[1] for run in bare_runs))
    ratio, cpu_ratio = bare_s / daemon_s, bare_cpu / daemon_cpu
    frames = len(bare_runs[0][2]["face_present"])
    print(f"Holistic (body, hands, 478-point face): {frames} frames of {VIDEO.name}, medians of {args.repeats}")
    print(f"{os.cpu_count()} CPUs, load average {load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    for name, seconds, cpu in (("bare Holistic loop", bare_s, bare_cpu), ("daemon pose job", daemon_s, daemon_cpu)):
        print(f"{name:<20}{seconds:8.3f} s {frames / seconds:6.1f} fps {cpu * 1e3 / frames:6.1f} CPU ms/frame")
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"daemon / bare = {ratio:.2f}x (goal >= {GOAL_RATIO}x: {verdict}); same hands and faces found: {same}")
    print(f"CPU per frame bare / daemon = {cpu_ratio:.2f}x (does not move with the machine's other load)")
    numbers = {
        "frames": frames,
        "repeats": args.repeats,
        "bare_s": round(bare_s, 4),
        "daemon_s": round(daemon_s, 4),
        "bare_runs_s": [round(run[0], 4) for run in bare_runs],
        "daemon_runs_s": [round(run[0], 4) for run in daemon_runs],
        "bare_cpu_s": round(bare_cpu, 4),
        "daemon_cpu_s": round(daemon_cpu, 4),
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "same_parts_found": same,
    }
    common.result_line(numbers, f"{ratio:.2f}x (CPU {cpu_ratio:.2f}x)", ratio >= GOAL_RATIO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
