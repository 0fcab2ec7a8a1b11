"""Ray executor benchmark: 20 short pose jobs on 1, 2 and 3 Ray worker nodes (one CPU each) vs the local executor.

Everything runs on this machine, on loopback: a Ray cluster (``ray.cluster_utils.Cluster``: a head without CPUs
standing in for the daemon's machine, and worker nodes of one CPU each, added one at a time), a daemon with
``--executor ray`` in front of it, and a daemon with the local executor. Each configuration first runs one
job per node (so every node has its pose actor loaded, as in a studio that has been working for a while),
then the measured batch: 20 pose jobs (``--frames`` frames of Megamind.avi each) submitted at once, timed from
the first submit to the last final state. Throughput ratios are against the local executor in the same run.

The per-job overhead of the Ray path is measured on a tiny job (the test runner ``count`` with one step, no
work): ``--tiny`` jobs one after another on each daemon, each followed from its submit to its final state
event; overhead = median(ray) - median(local).

A machine with fewer cores than nodes cannot show the nodes' speed-up: the nodes share its cores.

Usage: ``.venv/bin/python -m scripts.bench.ray [--jobs 20] [--frames 6] [--tiny 20] [--max-nodes 3]``. Prints a
table, then, as its last line, the JSON result line of ``scripts/bench/common.py`` (no goal: a reference).
Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench import common
from scripts.bench.common import FINAL_STATES, SAMPLE_VIDEO
from tests.support.daemon_process import DaemonProcess


def wait_all(client: Any, job_ids: list[str], timeout: float = 300.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [client.job(j) for j in job_ids]
        if all(j["state"] in FINAL_STATES for j in jobs):
            failed = [j for j in jobs if j["state"] != "succeeded"]
            if failed:
                raise SystemExit(f"job {failed[0]['job_id']} {failed[0]['state']}: {failed[0]['error']}")
            return jobs
        time.sleep(0.02)
    raise SystemExit(f"jobs did not end within {timeout} s")


def batch(client: Any, prefix: str, count: int, frames: int) -> float:
    """Seconds from the first submit to the last of ``count`` pose jobs ending."""
    inputs = {"video": {"path": str(SAMPLE_VIDEO), "frame_start": 20, "frame_end": 20 + frames}}
    started = time.monotonic()
    ids = [f"{prefix}-{i}" for i in range(count)]
    for job_id in ids:
        client.submit(job_id, "pose", {}, inputs)
    wait_all(client, ids)
    return time.monotonic() - started


def tiny_jobs(client: Any, prefix: str, count: int) -> list[float]:
    """Seconds each of ``count`` one-step count jobs takes, submit to final state, one after another."""
    times = []
    for i in range(count):
        started = time.monotonic()
        client.submit(f"{prefix}-{i}", "count", {"steps": 1}, {}, subscribe=True)
        while not any(
            e.get("type") == "state" and e.get("state") in FINAL_STATES for e in client.poll_events(timeout=5.0)
        ):
            pass
        times.append(time.monotonic() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=6, help="frames per pose job")
    parser.add_argument("--tiny", type=int, default=20, help="tiny jobs for the overhead")
    parser.add_argument("--max-nodes", type=int, default=3)
    args = parser.parse_args()
    if not SAMPLE_VIDEO.is_file():
        raise SystemExit(f"{SAMPLE_VIDEO} is missing: apt-get install opencv-doc")
    # Set before the daemons and Ray's processes start, which inherit them.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray process on loopback
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as Ray gives a one-CPU actor: the same work on both sides
    import ray
    from ray.cluster_utils import Cluster

    results: dict[str, Any] = {"ray": ray.__version__, "jobs": args.jobs, "frames": args.frames}
    local = DaemonProcess().start()
    try:
        with local.client(timeout=30.0) as c:
            batch(c, "warm", 1, args.frames)
            results["local_s"] = batch(c, "local", args.jobs, args.frames)
            local_tiny = tiny_jobs(c, "tiny", args.tiny)
    finally:
        local.cleanup()

    base = Path(tempfile.mkdtemp(prefix="vfx-bench-ray-"))
    (base / "resources.toml").write_text("[count]\nnum_cpus = 1\n", encoding="utf-8")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"node_ip_address": "127.0.0.1", "num_cpus": 0, "include_dashboard": False},
    )
    ray_daemon = None
    try:
        for nodes in range(1, args.max_nodes + 1):
            cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, object_store_memory=100 * 2**20)
            cluster.wait_for_nodes()
            if ray_daemon is None:
                extra = ("--executor", "ray", "--ray-address", cluster.address)
                ray_daemon = DaemonProcess(extra_args=(*extra, "--ray-resources", str(base / "resources.toml")))
                ray_daemon.start()
            with ray_daemon.client(timeout=30.0) as c:
                while c.health()["executor"]["status"] != "connected":
                    time.sleep(0.2)
                batch(c, f"warm{nodes}", nodes, args.frames)  # one loaded pose actor per node
                results[f"ray_{nodes}_s"] = batch(c, f"ray{nodes}", args.jobs, args.frames)
                if nodes == 1:
                    tiny_jobs(c, "tiny-warm", 1)
                    ray_tiny = tiny_jobs(c, "tiny", args.tiny)
    finally:
        if ray_daemon is not None:
            ray_daemon.cleanup()
        cluster.shutdown()

    results["local_tiny_median_s"] = statistics.median(local_tiny)
    results["ray_tiny_median_s"] = statistics.median(ray_tiny)
    results["ray_overhead_per_job_s"] = results["ray_tiny_median_s"] - results["local_tiny_median_s"]
    print(f"{args.jobs} pose jobs of {args.frames} frames, {os.cpu_count()} CPUs, Ray {ray.__version__}")
    print(f"{'executor':<22} {'seconds':>8} {'jobs/s':>7} {'vs local':>9}")
    print(f"{'local':<22} {results['local_s']:8.2f} {args.jobs / results['local_s']:7.2f} {1:8.2f}x")
    for n in range(1, args.max_nodes + 1):
        seconds = results[f"ray_{n}_s"]
        results[f"ray_{n}_vs_local"] = results["local_s"] / seconds
        name = f"ray, {n} node{'s' if n > 1 else ''} x 1 CPU"
        print(f"{name:<22} {seconds:8.2f} {args.jobs / seconds:7.2f} {results[f'ray_{n}_vs_local']:8.2f}x")
    local_ms, ray_ms = results["local_tiny_median_s"] * 1000, results["ray_tiny_median_s"] * 1000
    print(
        f"tiny job, submit to final state event (median of {args.tiny}): local {local_ms:.1f} ms, "
        f"ray {ray_ms:.1f} ms: overhead {ray_ms - local_ms:.1f} ms"
    )
    speed_ups = ", ".join(f"{results[f'ray_{n}_vs_local']:.2f}x" for n in range(1, args.max_nodes + 1))
    headline = f"{speed_ups} on 1-{args.max_nodes} one-CPU nodes vs local; {ray_ms - local_ms:+.1f} ms a job"
    common.result_line(results, headline, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
