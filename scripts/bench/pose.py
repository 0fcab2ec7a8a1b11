#!/usr/bin/env python3
"""Pose throughput benchmark: the daemon's "pose" job vs a bare MediaPipe loop on the same frames.

- **daemon**: a real daemon subprocess; a ``pose`` job on the first N frames of Megamind.avi (a path input, so
  the daemon decodes the file itself) with ``render_skeleton`` false, timed from submit to the ``succeeded``
  state event, and from the first progress event (stage "starting", before the MediaPipe graph is built) to
  the last one (fraction 1.0).
- **skeleton renders**: the same job with ``render_skeleton`` true (a PNG per frame, the default), on Megamind.avi
  (528p) and on the same frames scaled to 1920x1080 (written once to a temporary MJPG file, decoded by both
  sides), each against the bare loop on the same file in the same alternation (goal: at least 0.9 at both sizes).
- **bare**: in this process, ``mediapipe.solutions.pose.Pose(static_image_mode=False, model_complexity=1)`` over
  the same frames read with ``cv2.VideoCapture``, ``cv2.cvtColor`` BGR to RGB included, timed from opening the
  file (graph construction included, as every daemon job builds a fresh graph) to the last frame.

The model is loaded (MediaPipe imported) by a warm-up job and a warm-up loop first, so neither side pays for
imports. Daemon and bare runs alternate; the medians give the ratio daemon/bare (goal: at least 0.9). The two
sides are checked to have found the person in the same frames.

Usage: ``.venv/bin/python -m scripts.bench.pose [--quick] [--frames N] [--repeats R]``. Prints a table, then
one JSON line with the numbers as its last line. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.common import hardware

REPO_ROOT = common.ROOT
import numpy as np  # noqa: E402

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
GOAL_RATIO = 0.9


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hold back what MediaPipe's C++ code writes to stderr (log lines about its graph) to keep the table
    readable; it is written out after all if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) that process ``pid`` has used so far (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory process ``pid`` has had so far (VmHWM, Linux only), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


# -- the daemon side --------------------------------------------------------------------------------------------


def wait_for_device(client: Any, timeout: float = 120.0) -> float:
    """Wait until the daemon's background device probe is over (it imports torch when torch is installed,
    which would compete with the measurement for the CPU); return how long that took."""
    start = time.perf_counter()
    while client.health()["device_status"] == "probing" and time.perf_counter() - start < timeout:
        time.sleep(0.05)
    return time.perf_counter() - start


def daemon_job(
    client: Any, pid: int, frames: int, render: bool, video: Path = VIDEO, timeout: float = 300.0
) -> dict[str, Any]:
    """Submit one pose job and follow its events; times are client-side arrival times."""
    job_id = f"bench-{uuid.uuid4().hex[:12]}"
    params = {"render_skeleton": render}
    inputs = {"video": {"path": str(video), "frame_end": frames}}
    cpu_start = process_cpu_s(pid)
    t_submit = time.perf_counter()
    client.submit(job_id, "pose", params, inputs, subscribe=True)
    progress: list[tuple[float, float, str]] = []  # (time, fraction, stage)
    state, t_final = "", 0.0
    deadline = t_submit + timeout
    while not t_final and time.perf_counter() < deadline:
        events = client.poll_events(timeout=1.0)
        now = time.perf_counter()
        for event in events:
            if event.get("job_id") != job_id:
                continue
            if event.get("type") == "progress":
                progress.append((now, float(event["fraction"]), str(event["stage"])))
            elif event.get("type") == "state" and event.get("state") in common.FINAL_STATES:
                state, t_final = event["state"], now
        if not events and client.job(job_id)["state"] in common.FINAL_STATES:
            state, t_final = client.job(job_id)["state"], time.perf_counter()  # fallback if an event was lost
    cpu_end = process_cpu_s(pid)
    if state != "succeeded":
        job = client.job(job_id)
        raise RuntimeError(f"pose job {job_id} ended {job['state']}: {job.get('error')}")
    summary, arrays = client.result(job_id)
    tracking = [p for p in progress if p[2] == "tracking"]
    first, last = progress[0], progress[-1]
    first_tracking = tracking[0] if tracking else last
    steady_frames = (last[1] - first_tracking[1]) * frames
    steady_s = last[0] - first_tracking[0]
    return {
        "job_id": job_id,
        "frames": int(summary["frame_count"]),
        "submit_to_succeeded_s": t_final - t_submit,
        "progress_span_s": last[0] - first[0],
        "steady_fps": steady_frames / steady_s if steady_s > 0 else 0.0,
        "progress_events": len(progress),
        "cpu_s": cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else None,
        "present": np.asarray(arrays["present"]),
        "image_landmarks": np.asarray(arrays["image_landmarks"]),
    }


def scale_clip(cv2: Any, path: Path, frames: int, size: tuple[int, int]) -> Path:
    """The first ``frames`` frames of Megamind.avi scaled to ``size`` (width, height), as MJPG at quality 95."""
    capture = cv2.VideoCapture(str(VIDEO))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), capture.get(cv2.CAP_PROP_FPS), size)
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for _ in range(frames):
        ok, bgr = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR))
    writer.release()
    capture.release()
    return path


# -- the bare side ----------------------------------------------------------------------------------------------


def bare_loop(mp_pose: Any, cv2: Any, frames: int, video: Path = VIDEO) -> dict[str, Any]:
    """MediaPipe over ``frames`` frames, decoding with cv2 on this thread; the timing covers open to last frame."""
    cpu_start = time.process_time()
    t0 = time.perf_counter()
    capture = cv2.VideoCapture(str(video))
    tracker = mp_pose.Pose(static_image_mode=False, model_complexity=1)
    t_built = time.perf_counter()
    results = []
    try:
        for _ in range(frames):
            ok, bgr = capture.read()
            if not ok:
                break
            results.append(tracker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        t_end = time.perf_counter()
        cpu_s = time.process_time() - cpu_start
    finally:
        tracker.close()
        capture.release()
    present = np.array([r.pose_landmarks is not None for r in results], dtype=bool)
    image = np.full((len(results), 33, 3), np.nan, dtype=np.float32)
    for i, r in enumerate(results):
        if r.pose_landmarks is not None:
            image[i] = [(p.x, p.y, p.z) for p in r.pose_landmarks.landmark]
    return {
        "frames": len(results),
        "total_s": t_end - t0,
        "build_s": t_built - t0,
        "loop_s": t_end - t_built,
        "cpu_s": cpu_s,
        "present": present,
        "image_landmarks": image,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (60 frames, twice each)")
    parser.add_argument("--frames", type=int, default=None, help="frames of Megamind.avi (default all 270)")
    parser.add_argument("--repeats", type=int, default=None, help="daemon/bare runs each (default 4)")
    args = parser.parse_args(argv)
    frames = args.frames or (60 if args.quick else 270)
    repeats = args.repeats or (2 if args.quick else 4)
    if not VIDEO.is_file():
        print(f"{VIDEO} is missing: install the Debian package opencv-doc", file=sys.stderr)
        return 0

    from tests.support.daemon_process import DaemonProcess

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    daemon = DaemonProcess(plugin=False)
    try:
        daemon.start()
        client = daemon.client(timeout=30.0)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        probe_s = wait_for_device(client)

        # Warm-up: the first job loads the runner (imports MediaPipe) in the daemon; this process imports it too.
        cold = daemon_job(client, pid, 10, render=False)
        t = time.perf_counter()
        import cv2
        import mediapipe

        import_s = time.perf_counter() - t
        mp_pose = mediapipe.solutions.pose
        with quiet_stderr():
            bare_loop(mp_pose, cv2, 10)

        daemon_runs, bare_runs, render_runs = [], [], []
        for i in range(repeats):  # alternate which side goes first, so drifting load hits both alike
            for side in ("daemon", "bare", "render") if i % 2 == 0 else ("render", "bare", "daemon"):
                if side == "daemon":
                    daemon_runs.append(daemon_job(client, pid, frames, render=False))
                elif side == "render":
                    render_runs.append(daemon_job(client, pid, frames, render=True))
                else:
                    with quiet_stderr():
                        bare_runs.append(bare_loop(mp_pose, cv2, frames))
        megamind_peak_mb = peak_rss_mb(pid)  # Megamind.avi (528p) jobs only, before the 1080p ones
        hd_bare, hd_render = [], []
        with tempfile.TemporaryDirectory(prefix="vfx-bench-pose-") as scratch:
            hd_video = scale_clip(cv2, Path(scratch) / "1080p.avi", frames, (1920, 1080))
            for i in range(repeats):
                for side in ("bare", "render") if i % 2 == 0 else ("render", "bare"):
                    if side == "render":
                        hd_render.append(daemon_job(client, pid, frames, render=True, video=hd_video))
                    else:
                        with quiet_stderr():
                            hd_bare.append(bare_loop(mp_pose, cv2, frames, hd_video))
        daemon_peak_mb = peak_rss_mb(pid)  # pose jobs only: MediaPipe, never torch
        torch_loaded = client.health()["torch_loaded"]
        client.close()
    finally:
        daemon.cleanup()

    n = bare_runs[0]["frames"]
    if any(r["frames"] != n for r in daemon_runs + bare_runs):
        raise RuntimeError("the daemon and the bare loop did not see the same number of frames")
    same_present = all(np.array_equal(d["present"], bare_runs[0]["present"]) for d in daemon_runs)
    both = bare_runs[0]["present"] & daemon_runs[0]["present"]
    max_diff = float(
        np.max(np.abs(daemon_runs[0]["image_landmarks"][both] - bare_runs[0]["image_landmarks"][both]), initial=0.0)
    )

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    d_total = median([r["submit_to_succeeded_s"] for r in daemon_runs])
    d_span = median([r["progress_span_s"] for r in daemon_runs])
    d_steady = median([r["steady_fps"] for r in daemon_runs])
    b_total = median([r["total_s"] for r in bare_runs])
    b_build = median([r["build_s"] for r in bare_runs])
    b_loop = median([r["loop_s"] for r in bare_runs])
    ratio = b_total / d_total
    ratio_span = b_total / d_span
    render_s = median([r["submit_to_succeeded_s"] for r in render_runs])
    render_ratio = b_total / render_s
    hd_bare_s = median([r["total_s"] for r in hd_bare])
    hd_render_s = median([r["submit_to_succeeded_s"] for r in hd_render])
    hd_ratio = hd_bare_s / hd_render_s
    hd_bare_cpu = median([r["cpu_s"] for r in hd_bare])
    hd_render_cpus = [r["cpu_s"] for r in hd_render if r["cpu_s"] is not None]
    hd_render_cpu = median(hd_render_cpus) if hd_render_cpus else None
    b_cpu = median([r["cpu_s"] for r in bare_runs])
    d_cpus = [r["cpu_s"] for r in daemon_runs if r["cpu_s"] is not None]
    d_cpu = median(d_cpus) if d_cpus else None
    render_cpus = [r["cpu_s"] for r in render_runs if r["cpu_s"] is not None]
    render_cpu = median(render_cpus) if render_cpus else None
    cpu_ratio = b_cpu / d_cpu if d_cpu else None
    hw = hardware()

    print(f"Pose throughput: {n} frames of {VIDEO.name} (720x528), model_complexity 1, medians of {repeats} run(s)")
    print(f"{hw['nproc']} CPUs, {hw['cpu']}, load average {load_at_start[0]} at start")
    print()
    print(f"{'measurement':<56}{'seconds':>9}{'fps':>9}{'CPU ms/frame':>14}")
    rows = [
        ("bare: open + Pose() + decode/RGB/process loop", b_total, n / b_total, b_cpu),
        ("bare: decode/RGB/process loop only", b_loop, n / b_loop, None),
        ("daemon: submit -> succeeded (render_skeleton false)", d_total, n / d_total, d_cpu),
        ("daemon: first -> last progress event", d_span, n / d_span, None),
        ("daemon: steady tracking rate (progress events)", None, d_steady, None),
        ("daemon: submit -> succeeded, render_skeleton true", render_s, n / render_s, render_cpu),
        ("daemon: first (cold) 10-frame job, model load included", cold["submit_to_succeeded_s"], None, None),
        ("1080p bare: open + Pose() + decode/RGB/process loop", hd_bare_s, n / hd_bare_s, hd_bare_cpu),
        ("1080p daemon: submit -> succeeded, render_skeleton true", hd_render_s, n / hd_render_s, hd_render_cpu),
    ]
    for name, seconds, fps, cpu in rows:
        seconds_text = f"{seconds:.3f}" if seconds is not None else "-"
        fps_text = f"{fps:.1f}" if fps is not None else "-"
        cpu_text = f"{cpu * 1e3 / n:.1f}" if cpu is not None else "-"
        print(f"{name:<56}{seconds_text:>9}{fps_text:>9}{cpu_text:>14}")
    print()
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"daemon / bare (submit -> succeeded) = {ratio:.2f}x  (goal >= {GOAL_RATIO}x: {verdict})")
    print(f"daemon / bare (progress span)       = {ratio_span:.2f}x")
    render_met = min(render_ratio, hd_ratio) >= GOAL_RATIO
    print(
        f"skeleton renders / bare             = {render_ratio:.2f}x at 528p, {hd_ratio:.2f}x at 1080p  "
        f"(goal >= {GOAL_RATIO}x: {'meets' if render_met else 'MISSES'})"
    )
    if cpu_ratio is not None:
        print(
            f"CPU per frame bare / daemon         = {cpu_ratio:.2f}x  (load-independent: above 1 means the daemon "
            "spends no more CPU per frame than the bare loop; wall-clock ratios move with other load)"
        )
    print(
        f"daemon peak resident memory: {megamind_peak_mb or 0:.0f} MB in the Megamind.avi (528p) jobs, "
        f"{daemon_peak_mb or 0:.0f} MB with the 1080p ones; torch loaded: {torch_loaded}"
    )
    print(
        f"same frames with a person: {same_present}; largest landmark difference {max_diff:.2g} "
        f"(normalised units); bare graph build {b_build * 1e3:.0f} ms; MediaPipe import here {import_s:.2f} s"
    )
    result = {
        "benchmark": "pose",
        "quick": args.quick,
        "frames": n,
        "repeats": repeats,
        "bare": {
            "total_s": round(b_total, 4),
            "fps": round(n / b_total, 2),
            "build_s": round(b_build, 4),
            "loop_fps": round(n / b_loop, 2),
            "runs_s": [round(r["total_s"], 4) for r in bare_runs],
            "cpu_s": round(b_cpu, 4),
        },
        "daemon": {
            "submit_to_succeeded_s": round(d_total, 4),
            "fps": round(n / d_total, 2),
            "progress_span_s": round(d_span, 4),
            "progress_span_fps": round(n / d_span, 2),
            "steady_fps": round(d_steady, 2),
            "runs_s": [round(r["submit_to_succeeded_s"], 4) for r in daemon_runs],
            "cpu_s": round(d_cpu, 4) if d_cpu is not None else None,
        },
        "ratio": round(ratio, 3),
        "ratio_progress_span": round(ratio_span, 3),
        "cpu_ratio": round(cpu_ratio, 3) if cpu_ratio is not None else None,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
        "render_skeleton": {
            "submit_to_succeeded_s": round(render_s, 4),
            "fps": round(n / render_s, 2),
            "runs_s": [round(r["submit_to_succeeded_s"], 4) for r in render_runs],
            "cpu_s": round(render_cpu, 4) if render_cpu is not None else None,
            "ratio_528p": round(render_ratio, 3),
            "bare_1080p_runs_s": [round(r["total_s"], 4) for r in hd_bare],
            "render_1080p_runs_s": [round(r["submit_to_succeeded_s"], 4) for r in hd_render],
            "ratio_1080p": round(hd_ratio, 3),
            "bare_1080p_cpu_s": round(hd_bare_cpu, 4),
            "render_1080p_cpu_s": round(hd_render_cpu, 4) if hd_render_cpu is not None else None,
        },
        "cold_job_10_frames_s": round(cold["submit_to_succeeded_s"], 4),
        "same_present_frames": same_present,
        "max_landmark_diff": max_diff,
        "device_probe_wait_s": round(probe_s, 3),
        "daemon_peak_rss_mb": round(daemon_peak_mb, 1) if daemon_peak_mb is not None else None,
        "daemon_peak_rss_mb_528p": round(megamind_peak_mb, 1) if megamind_peak_mb is not None else None,
        "daemon_torch_loaded": torch_loaded,
        "loadavg_at_start": load_at_start,
        "hardware": hw,
    }
    headline = f"{ratio:.2f}x; with skeleton renders {render_ratio:.2f}x (528p), {hd_ratio:.2f}x (1080p)"
    common.result_line(result, headline, ratio >= GOAL_RATIO and render_met)
    return 0


if __name__ == "__main__":
    sys.exit(main())
