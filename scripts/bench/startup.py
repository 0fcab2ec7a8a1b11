#!/usr/bin/env python3
"""Daemon start-up benchmark: process spawn to the "ready" line, and to the first answered health request.

Each start runs ``python -m daemon serve`` in a subprocess (through ``tests/support/daemon_process.py``, same
data folder every time, as a user's restarts would) and measures, from just before the spawn:

- **ready**: the ``ready <connection file>`` line on stdout;
- **health**: a fresh :class:`shared.client.Client` got its first ``health`` reply;
- **device**: ``health`` no longer says ``device_status: probing`` (the background device probe, a child
  interpreter that imports torch when torch is installed; extra information, the daemon serves requests
  meanwhile; torch is then mapped into the child, never into the daemon).

It also reports which heavy libraries (torch, cv2, mediapipe) are mapped into the daemon when it says ready, the
time of ``python -c "import daemon.app"`` next to a bare ``python -c pass`` (the baseline), and whether importing
``daemon.app`` imports torch, cv2 or mediapipe (it must not). Goal: median spawn-to-ready below 1.5 s.

Usage: ``.venv/bin/python -m scripts.bench.startup [--quick] [--starts N]``. Prints a table, then one JSON line
with the numbers as its last line. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.common import hardware

REPO_ROOT = common.ROOT

GOAL_S = 1.5
HEAVY = ("torch", "cv2", "mediapipe")
# Shared objects that show a library is loaded in another process (from /proc/PID/maps).
HEAVY_MAPS = {"torch": "/torch/lib/", "cv2": "/cv2/", "mediapipe": "/mediapipe/"}


def mapped_libraries(pid: int) -> list[str]:
    """Which of HEAVY have shared objects mapped into process ``pid`` (Linux only; empty elsewhere)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return [name for name, marker in HEAVY_MAPS.items() if marker in maps]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (Linux only)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), None)
    return int(line.split()[1]) / 1024 if line else None


def installed(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def time_command(code: str, runs: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT)
        times.append(time.perf_counter() - t0)
    return times


def modules_after_import() -> dict[str, bool]:
    code = f"import json, sys; import daemon.app; print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT, capture_output=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def one_start(daemon: Any) -> dict[str, Any]:
    from shared.client import Client

    t0 = time.perf_counter()
    daemon.start()
    ready = time.perf_counter() - t0
    libs_at_ready = mapped_libraries(daemon.proc.pid)
    rss_at_ready = rss_mb(daemon.proc.pid)
    client = Client.from_file(daemon.connection_file, timeout=30.0)
    try:
        health = client.health()
        first_health = time.perf_counter() - t0
        while health["device_status"] == "probing" and time.perf_counter() - t0 < 120:
            time.sleep(0.02)
            health = client.health()
        device = time.perf_counter() - t0
    finally:
        client.close()
    libs_after_probe = mapped_libraries(daemon.proc.pid)
    rss_after_probe = rss_mb(daemon.proc.pid)
    t_stop = time.perf_counter()
    daemon.stop()
    stop = time.perf_counter() - t_stop
    return {
        "ready_s": ready,
        "health_s": first_health,
        "device_s": device,
        "stop_s": stop,
        "device_status": health["device_status"],
        "libs_at_ready": libs_at_ready,
        "libs_after_probe": libs_after_probe,
        "rss_at_ready_mb": rss_at_ready,
        "rss_after_probe_mb": rss_after_probe,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
        "min": round(min(values), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (3 starts)")
    parser.add_argument("--starts", type=int, default=None, help="measured daemon starts (default 10)")
    args = parser.parse_args(argv)
    starts = args.starts or (3 if args.quick else 10)
    import_runs = 3 if args.quick else 7

    from tests.support.daemon_process import DaemonProcess

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    have = {m: installed(m) for m in HEAVY}
    python_pass = time_command("pass", import_runs)
    import_app = time_command("import daemon.app", import_runs)
    imported = modules_after_import()

    daemon = DaemonProcess(plugin=False)
    runs = []
    try:
        one_start(daemon)  # warm-up: creates the data folder and the job database, fills the page cache
        for _ in range(starts):
            runs.append(one_start(daemon))
    finally:
        daemon.cleanup()

    ready = summary([r["ready_s"] for r in runs])
    health = summary([r["health_s"] for r in runs])
    device = summary([r["device_s"] for r in runs])
    stop = summary([r["stop_s"] for r in runs])
    base = summary(python_pass)
    imp = summary(import_app)
    libs_at_ready = sorted({lib for r in runs for lib in r["libs_at_ready"]})
    libs_after_probe = sorted({lib for r in runs for lib in r["libs_after_probe"]})
    rss_ready = [r["rss_at_ready_mb"] for r in runs if r["rss_at_ready_mb"] is not None]
    rss_probe = [r["rss_after_probe_mb"] for r in runs if r["rss_after_probe_mb"] is not None]
    rss = {
        "at_ready_mb": round(statistics.median(rss_ready), 1) if rss_ready else None,
        "after_probe_mb": round(statistics.median(rss_probe), 1) if rss_probe else None,
    }
    hw = hardware()

    print(f"Daemon start-up, {starts} starts after one warm-up start (same data folder)")
    print(f"{hw['nproc']} CPUs, {hw['cpu']}, load average {load_at_start[0]} at start")
    print("installed in the daemon's Python: " + ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in have.items()))
    print()
    print(f"{'measurement':<52}{'median s':>10}{'max s':>9}{'min s':>9}")
    rows = [
        ('python -c "pass" (baseline)', base),
        ('python -c "import daemon.app"', imp),
        ("daemon: spawn -> ready line", ready),
        ("daemon: spawn -> first health reply", health),
        ("daemon: spawn -> device probe done", device),
        ("daemon: SIGTERM -> exit", stop),
    ]
    for name, s in rows:
        print(f"{name:<52}{s['median']:>10.3f}{s['max']:>9.3f}{s['min']:>9.3f}")
    print()
    verdict = "meets" if ready["median"] < GOAL_S else "MISSES"
    print(f"spawn -> ready median {ready['median']:.3f} s, max {ready['max']:.3f} s  (goal < {GOAL_S} s: {verdict})")
    print(f"spawn -> first health median {health['median']:.3f} s, max {health['max']:.3f} s")
    print(f"import daemon.app costs {imp['median'] - base['median']:.3f} s over a bare interpreter start")
    print(
        "imported by `import daemon.app`: "
        + ", ".join(f"{m} {'YES' if v else 'no'}" for m, v in imported.items())
        + f"; mapped in the daemon at ready: {', '.join(libs_at_ready) or 'none'}"
        + f"; after the device probe: {', '.join(libs_after_probe) or 'none'}"
    )
    if rss["at_ready_mb"] is not None and rss["after_probe_mb"] is not None:
        print(
            f"daemon resident memory: {rss['at_ready_mb']:.0f} MB at ready, "
            f"{rss['after_probe_mb']:.0f} MB after the device probe"
        )
    result = {
        "benchmark": "startup",
        "quick": args.quick,
        "starts": starts,
        "ready_s": ready,
        "first_health_s": health,
        "device_probe_done_s": device,
        "stop_s": stop,
        "goal_s": GOAL_S,
        "meets_goal": ready["median"] < GOAL_S,
        "python_pass_s": base,
        "import_daemon_app_s": imp,
        "heavy_imported_by_daemon_app": imported,
        "heavy_mapped_at_ready": libs_at_ready,
        "heavy_mapped_after_probe": libs_after_probe,
        "heavy_installed": have,
        "daemon_rss": rss,
        "ready_runs_s": [round(r["ready_s"], 4) for r in runs],
        "health_runs_s": [round(r["health_s"], 4) for r in runs],
        "loadavg_at_start": load_at_start,
        "hardware": hw,
    }
    common.result_line(result, f"{ready['median']:.2f} s median", ready["median"] < GOAL_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
