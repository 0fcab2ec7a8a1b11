#!/usr/bin/env python3
"""Face-swap job overhead: a ``face_swap`` job through the daemon vs the same runner called directly.

Both sides run the real runner (``models.face_swap.runner.FaceSwapRunner``) on the same inputs: the first N frames of
Megamind.avi (a path input, decoded by ``models.media.VideoFile``) and insightface's Tom_Hanks_54745.png as the
reference, with tiny ONNX models in the real signatures (``tests/support/tiny_onnx_faces.py``) on the CPU, so the
measurement is about the job machinery, not the networks:

- **daemon**: a real daemon subprocess (``--manifest`` and ``--models-dir`` pointing at the tiny models,
  ``--device cpu``); timed client-side from ``submit`` to the ``succeeded`` state event. That includes
  validation, the readiness check, storing and queueing the job, progress events with JPEG previews, writing
  the frames, publishing the outputs (summary and arrays) and the events back.
- **direct**: in this process, ``open_media`` on the same specs, then ``runner.run`` with a minimal context
  writing frames into a temporary folder; timed from opening the inputs to the returned result.

Models are loaded on both sides by a warm-up run first. Daemon and direct runs alternate; the medians give the
overhead ``daemon / direct - 1`` (goal: at most 5 %). The two sides are checked to produce identical frames.

Real weights: ``--models-dir`` names a models folder where ``fetch-models face_swap`` put buffalo_l and
inswapper_128 (and ``face_swap_fp16`` the half-precision swapper, which ``auto`` takes on CUDA); ``--device``
(cuda, mps, cpu, auto) picks the onnxruntime providers on both sides. The same comparison then runs on the
real networks, and its frames per second are the mode's speed on that device.

Usage: ``.venv/bin/python -m scripts.bench.face_swap [--quick] [--frames N] [--repeats R] [--models-dir DIR
--device cuda [--manifest FILE]]``. Prints a table, then one JSON line with the numbers as its last line. Exits 0
whatever the numbers are (2 when the real weights are not all there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.common import hardware

REPO_ROOT = common.ROOT

VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
GOAL_OVERHEAD = 0.05
FINAL = common.FINAL_STATES


def job_inputs(frames: int, reference: Path) -> dict[str, dict[str, Any]]:
    return {"video": {"path": str(VIDEO), "frame_end": frames}, "reference": {"path": str(reference)}}


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_job(client: Any, pid: int, frames: int, reference: Path, timeout: float = 300.0) -> dict[str, Any]:
    """Submit one face_swap job and wait for its final state event; times are client-side, CPU time is the
    daemon process's."""
    job_id = f"bench-{uuid.uuid4().hex[:12]}"
    cpu = process_cpu_seconds(pid)
    started = time.perf_counter()
    client.submit(job_id, "face_swap", {}, job_inputs(frames, reference), subscribe=True)
    finished, state = 0.0, ""
    while not finished and time.perf_counter() - started < timeout:
        events = client.poll_events(timeout=1.0)
        now = time.perf_counter()
        for event in events:
            if event.get("job_id") == job_id and event.get("type") == "state" and event.get("state") in FINAL:
                finished, state = now, event["state"]
        if not events and client.job(job_id)["state"] in FINAL:
            finished, state = time.perf_counter(), client.job(job_id)["state"]  # fallback if an event was lost
    if state != "succeeded":
        raise RuntimeError(f"face_swap job {job_id} ended {state or 'unfinished'}: {client.job(job_id).get('error')}")
    cpu = process_cpu_seconds(pid) - cpu
    job = client.job(job_id)
    return {"job_id": job_id, "seconds": finished - started, "cpu_s": cpu, "output_dir": Path(job["output_dir"])}


def direct_run(runner: Any, device: Any, frames: int, reference: Path, out: Path) -> dict[str, Any]:
    from models.media import open_media

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cpu = time.process_time()
    started = time.perf_counter()
    inputs = {name: open_media(name, spec) for name, spec in job_inputs(frames, reference).items()}
    result = runner.run(inputs, runner.validate({}), common.QuietContext(out, device))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "frames": result.frame_count, "output_dir": out}


def weights_ready(models: Path, manifest: Path) -> bool:
    """Whether ``models`` holds the face_swap weights ``manifest`` lists; says what is missing if not."""
    from daemon.registry import ModelRegistry
    from models.face_swap.runner import FaceSwapRunner
    from models.manifest import load_manifest

    registry = ModelRegistry(
        {"face_swap": FaceSwapRunner}, device=lambda: None, manifest=load_manifest(manifest), models_dir=models
    )
    state = registry.readiness("face_swap")
    if not state["ready"]:
        print(f"face_swap is not ready in {models}: {'; '.join(state['missing'])}", file=sys.stderr)
        print(f"fix: {'; '.join(state['fix'])}", file=sys.stderr)
    return bool(state["ready"])


def same_frames(a: Path, b: Path, count: int) -> bool:
    return all(
        (a / "frames" / f"{i:06d}.png").read_bytes() == (b / "frames" / f"{i:06d}.png").read_bytes()
        for i in range(count)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (24 frames, 2 runs each)")
    parser.add_argument("--frames", type=int, default=None, help="frames of Megamind.avi (default 96)")
    parser.add_argument("--repeats", type=int, default=None, help="daemon/direct runs each (default 5)")
    parser.add_argument("--models-dir", type=Path, default=None, help="real weights (default: tiny models)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "mps", "cpu"))
    parser.add_argument("--manifest", type=Path, default=None, help="with --models-dir: another manifest")
    args = parser.parse_args(argv)
    frames = args.frames or (24 if args.quick else 96)
    repeats = args.repeats or (2 if args.quick else 5)
    if not VIDEO.is_file():
        print(f"{VIDEO} is missing: install the Debian package opencv-doc", file=sys.stderr)
        return 0
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")

    import insightface

    from daemon.devices import resolve_device
    from models.face_swap.runner import FaceSwapRunner
    from tests.support.daemon_process import DaemonProcess
    from tests.support.tiny_onnx_faces import BUILDERS, install_tiny_models, write_test_manifest

    reference = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    real = args.models_dir is not None
    from models.manifest import MANIFEST_PATH

    manifest = (args.manifest or MANIFEST_PATH).expanduser().resolve()
    if real and not weights_ready(args.models_dir.expanduser().resolve(), manifest):
        return 2
    work = Path(tempfile.mkdtemp(prefix="vfx-fsb-"))
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    try:
        if real:
            models = args.models_dir.expanduser().resolve()
        else:
            models = work / "models"
            install_tiny_models(models, tuple(BUILDERS))
            manifest = work / "manifest.toml"
            write_test_manifest(manifest, models)
        served = ("--manifest", str(manifest), "--models-dir", str(models), "--device", args.device)
        daemon = DaemonProcess(extra_args=served, plugin=False)
        daemon.start()
        try:
            client = daemon.client(timeout=30.0)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            cold = daemon_job(client, pid, 4, reference)  # loads the runner in the daemon
            device = resolve_device(args.device)
            runner = FaceSwapRunner()
            runner.models_dir = models
            runner.load(device)
            direct_run(runner, device, 4, reference, work / "direct-warm")

            daemon_runs, direct_runs = [], []
            for i in range(repeats):
                daemon_runs.append(daemon_job(client, pid, frames, reference))
                direct_runs.append(direct_run(runner, device, frames, reference, work / f"direct-{i}"))
            identical = same_frames(daemon_runs[0]["output_dir"], direct_runs[0]["output_dir"], frames)
            job_summary, _ = client.result(daemon_runs[0]["job_id"])
            client.close()
        finally:
            daemon.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    d, b = median(daemon_runs, "seconds"), median(direct_runs, "seconds")
    d_min, b_min = min(r["seconds"] for r in daemon_runs), min(r["seconds"] for r in direct_runs)
    d_cpu, b_cpu = median(daemon_runs, "cpu_s"), median(direct_runs, "cpu_s")
    overhead = d / b - 1.0
    hw = hardware()
    weights = f"real weights ({job_summary['swapper']})" if real else "tiny models"
    providers = ", ".join(job_summary["providers"])
    print(f"Face-swap job: {frames} frames of {VIDEO.name} (720x528), {weights}, {providers}, medians of {repeats}")
    print(f"{hw['nproc']} CPUs, {hw['cpu']}, {device.name} ({device.kind}), load average {load_at_start[0]} at start")
    print()
    print(f"{'measurement':<58}{'seconds':>9}{'fps':>9}")
    rows = (
        ("direct: open_media + FaceSwapRunner.run (frames written)", b, True),
        ("direct: fastest run", b_min, True),
        ("direct: CPU time (this process)", b_cpu, False),
        ("daemon: submit -> succeeded", d, True),
        ("daemon: fastest run", d_min, True),
        ("daemon: CPU time (daemon process)", d_cpu, False),
        ("daemon: first (cold) 4-frame job, model load included", cold["seconds"], False),
    )
    for name, seconds, rate in rows:
        fps = f"{frames / seconds:.1f}" if rate else "-"
        print(f"{name:<58}{seconds:>9.3f}{fps:>9}")
    print()
    verdict = "meets" if overhead <= GOAL_OVERHEAD else "MISSES"
    print(f"daemon overhead, medians   = {overhead * 100:+.1f} % (goal <= {GOAL_OVERHEAD * 100:.0f} %: {verdict})")
    print(f"daemon overhead, fastest   = {(d_min / b_min - 1) * 100:+.1f} %")
    print(f"daemon overhead, CPU time  = {(d_cpu / b_cpu - 1) * 100:+.1f} %")
    print(f"identical output frames on both sides: {identical}")
    common.result_line(
        {
            "benchmark": "face_swap",
            "weights": "real" if real else "tiny",
            "device": device.kind,
            "device_name": device.name,
            "providers": job_summary["providers"],
            "swapper": job_summary["swapper"],
            "direct_fps": round(frames / b, 2),
            "daemon_fps": round(frames / d, 2),
            "quick": args.quick,
            "frames": frames,
            "repeats": repeats,
            "direct_s": round(b, 4),
            "daemon_s": round(d, 4),
            "direct_runs_s": [round(r["seconds"], 4) for r in direct_runs],
            "daemon_runs_s": [round(r["seconds"], 4) for r in daemon_runs],
            "direct_cpu_s": round(b_cpu, 4),
            "daemon_cpu_s": round(d_cpu, 4),
            "overhead": round(overhead, 4),
            "overhead_fastest": round(d_min / b_min - 1, 4),
            "overhead_cpu": round(d_cpu / b_cpu - 1, 4),
            "goal_overhead": GOAL_OVERHEAD,
            "meets_goal": overhead <= GOAL_OVERHEAD,
            "identical_frames": identical,
            "cold_job_4_frames_s": round(cold["seconds"], 4),
            "loadavg_at_start": load_at_start,
            "hardware": hw,
        },
        f"{overhead * 100:+.1f} %",
        overhead <= GOAL_OVERHEAD,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
