#!/usr/bin/env python3
"""Frame transport benchmark: 1080p RGB frames through the daemon's protocol vs raw pyzmq on the same transport.

Both sides run a synchronous round trip per frame (send one 1920x1080x3 uint8 frame, wait for it to come back)
over ``ipc://`` in a short temporary folder, with ``copy=False`` on every send and receive:

- **daemon**: ``Client.ping([frame])`` against a real daemon subprocess (signed header, msgpack, replay guard,
  allow-listed dtype and shape checks on both ends, the server's dispatch loop);
- **raw**: a DEALER socket talking to a ROUTER echo loop in another process (this script with
  ``--echo-server``), with the same socket options as the daemon, the reply viewed as a numpy array too.

The two are measured in alternating blocks in the same run; the ratio daemon/raw is what to compare across
machines (goal: at least 0.5). ``Client.upload(frame)`` (content-addressed: sha256 of the frame, written as
``.npy`` when new) is measured as extra information, with new frames and with frames the daemon already holds.

Usage: ``.venv/bin/python -m scripts.bench.protocol [--quick] [--rounds N] [--block-seconds S]``. Prints a table,
then one JSON line with the numbers as its last line. Exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.bench import common

REPO_ROOT = common.ROOT

import numpy as np  # noqa: E402
import zmq  # noqa: E402

SHAPE = (1080, 1920, 3)
FRAME_MB = float(np.prod(SHAPE)) / 1e6
GOAL_RATIO = 0.5
STOP = b"stop"


def hardware() -> dict[str, Any]:
    return {**common.hardware(), "zmq": zmq.zmq_version()}


# -- the raw baseline ------------------------------------------------------------------------------------------


def echo_server(endpoint: str) -> int:
    """A ROUTER that sends every message back as received (zero-copy), until it gets ``STOP``."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024 * 1024)
    router.setsockopt(zmq.SNDHWM, 1000)
    router.bind(endpoint)
    print("ready", flush=True)
    while True:
        frames = router.recv_multipart(copy=False)
        router.send_multipart(frames, copy=False)
        if len(frames) == 2 and len(frames[1]) == len(STOP) and frames[1].bytes == STOP:
            break
    router.close(linger=100)
    context.term()
    return 0


class RawEcho:
    """The client side of the baseline: one DEALER, one outstanding frame, reply viewed as an array."""

    def __init__(self, base: Path) -> None:
        self.endpoint = f"ipc://{base}/echo.sock"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __spec__.name, "--echo-server", self.endpoint],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the raw echo server did not start")
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.endpoint)

    def roundtrip(self, frame: np.ndarray) -> np.ndarray:
        self.socket.send_multipart([frame.reshape(-1).view(np.uint8).data], copy=False)
        if not self.socket.poll(10_000):
            raise RuntimeError("the raw echo server did not answer within 10 s")
        reply = self.socket.recv_multipart(copy=False)
        return np.frombuffer(reply[-1].buffer, dtype=np.uint8).reshape(frame.shape)

    def close(self) -> None:
        self.socket.send_multipart([STOP], copy=True)
        self.socket.poll(2_000)
        self.socket.close(linger=0)
        self.context.term()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


# -- measuring ------------------------------------------------------------------------------------------------


class RateLimited(Exception):
    """The daemon refused a request with ``limit_exceeded`` (its per-client requests-per-second budget)."""


class Series:
    """Round trips of one kind, accumulated over blocks. A block ends early if the daemon rate-limits."""

    def __init__(self, payload_mb: float = FRAME_MB) -> None:
        self.payload_mb = payload_mb
        self.frames = 0
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.rate_limited = False
        self.block_fps: list[float] = []

    def run_block(self, step: Callable[[np.ndarray], Any], frames: list[np.ndarray], budget_s: float, cap: int) -> None:
        start = last = time.perf_counter()
        count = 0
        while count < cap and last - start < budget_s:
            try:
                step(frames[count % len(frames)])
            except RateLimited:
                self.rate_limited = True
                break
            now = time.perf_counter()
            self.latencies.append(now - last)
            last = now
            count += 1
        self.frames += count
        self.seconds += last - start
        self.block_fps.append(count / (last - start) if last > start else 0.0)

    def stats(self) -> dict[str, float]:
        fps = self.frames / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies)
        return {
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(fps, 2),
            "mb_per_s": round(fps * self.payload_mb, 1),
            "latency_ms_median": round(statistics.median(lat) * 1e3, 3) if lat else 0.0,
            "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))] * 1e3, 3) if lat else 0.0,
            "rate_limited": self.rate_limited,
        }


def limited(call: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """``call``, turning the daemon's ``limit_exceeded`` refusal into :class:`RateLimited`."""
    from shared.errors import LIMIT_EXCEEDED, RemoteError

    def step(frame: np.ndarray) -> Any:
        try:
            return call(frame)
        except RemoteError as exc:
            if exc.code == LIMIT_EXCEEDED:
                raise RateLimited(str(exc)) from None
            raise

    return step


def wait_for_device(client: Any, timeout: float = 120.0) -> float:
    """Wait until the daemon's background device probe is over (it imports torch when torch is installed,
    which would compete with the measurement for the CPU); return how long that took."""
    start = time.perf_counter()
    while client.health()["device_status"] == "probing" and time.perf_counter() - start < timeout:
        time.sleep(0.05)
    return time.perf_counter() - start


def make_frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1080)
    return [rng.integers(0, 256, size=SHAPE, dtype=np.uint8) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating daemon/raw blocks (default 8)")
    parser.add_argument("--block-seconds", type=float, default=None, help="time budget per block (default 0.75)")
    parser.add_argument("--echo-server", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        return echo_server(args.echo_server)

    from tests.support.daemon_process import DaemonProcess

    rounds = args.rounds or (2 if args.quick else 8)
    block_s = args.block_seconds or (0.4 if args.quick else 0.75)
    cap = 2_000  # frames per block at most
    upload_new_cap = 20 if args.quick else 100  # each new frame is 6.2 MB written to disk
    warmup = 10 if args.quick else 30

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    frames = make_frames(4)
    base = Path(tempfile.mkdtemp(prefix="vfxb-"))
    (base / "d").mkdir()
    daemon = DaemonProcess(base=base / "d", plugin=False)
    raw: RawEcho | None = None
    try:
        daemon.start()
        client = daemon.client(timeout=30.0)
        probe_s = wait_for_device(client)
        raw = RawEcho(base)

        # Warm up both paths, checking once that each echoes the frame intact.
        for i in range(warmup):
            got_daemon = client.ping([frames[i % len(frames)]])[0]
            got_raw = raw.roundtrip(frames[i % len(frames)])
            if i == 0 and not (np.array_equal(got_daemon, frames[0]) and np.array_equal(got_raw, frames[0])):
                raise RuntimeError("a round trip changed the frame")

        ping = limited(lambda f: client.ping([f]))
        daemon_series, raw_series = Series(), Series()
        for _ in range(rounds):
            daemon_series.run_block(ping, frames, block_s, cap)
            raw_series.run_block(raw.roundtrip, frames, block_s, cap)

        # The fixed cost of one message: no pixels at all. Few requests, to stay under the daemon's rate limit.
        empty = [np.zeros((0,), dtype=np.uint8)]
        empty_daemon, empty_raw = Series(0.0), Series(0.0)
        for _ in range(rounds):
            empty_daemon.run_block(limited(lambda f: client.ping([])), empty, block_s / 4, 100)
            empty_raw.run_block(raw.roundtrip, empty, block_s / 4, 100)

        # Uploads: frames the daemon already holds (hash only), then new frames (hash + .npy write).
        known, new = Series(), Series()
        for f in frames:
            client.upload(f)
        known.run_block(limited(client.upload), frames, block_s * rounds / 2, cap)
        fresh = frames[0].copy()
        counter = iter(range(1, 1 << 30))

        def upload_new(_: np.ndarray) -> str:
            fresh.reshape(-1)[:8].view(np.int64)[0] = next(counter)  # a different frame each time
            return client.upload(fresh)

        new.run_block(limited(upload_new), [fresh], block_s * rounds / 2, upload_new_cap)
        client.close()
    finally:
        if raw is not None:
            raw.close()
        daemon.cleanup()
        shutil.rmtree(base, ignore_errors=True)

    d, r, k, n = daemon_series.stats(), raw_series.stats(), known.stats(), new.stats()
    ed, er = empty_daemon.stats(), empty_raw.stats()
    ratio = d["fps"] / r["fps"] if r["fps"] else 0.0
    round_ratios = [a / b for a, b in zip(daemon_series.block_fps, raw_series.block_fps, strict=True) if b]
    hw = hardware()
    print(f"Protocol round trip, 1920x1080x3 uint8 ({FRAME_MB:.2f} MB a frame, each way), ipc://, copy=False")
    print(
        f"{hw['nproc']} CPUs, {hw['cpu']}, load average {load_at_start[0]} at start; "
        f"{rounds} alternating round(s) of {block_s:g} s per path"
    )
    print()
    print(f"{'path':<34}{'frames':>8}{'frames/s':>11}{'MB/s':>9}{'median ms':>11}{'p95 ms':>9}")
    rows = [
        ("raw pyzmq DEALER/ROUTER echo", r),
        ("daemon client.ping([frame])", d),
        ("raw, empty message", er),
        ("daemon ping([]), empty message", ed),
        ("client.upload (already stored)", k),
        ("client.upload (new frame)", n),
    ]
    for name, s in rows:
        mb_per_s = f"{s['mb_per_s']:.0f}" if s["mb_per_s"] else "-"
        print(
            f"{name:<34}{s['frames']:>8}{s['fps']:>11.1f}{mb_per_s:>9}"
            f"{s['latency_ms_median']:>11.2f}{s['latency_ms_p95']:>9.2f}"
        )
    print()
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"daemon / raw = {ratio:.2f}x  (goal >= {GOAL_RATIO}x: {verdict})")
    print(
        f"per-round ratios: median {statistics.median(round_ratios):.2f}, "
        f"min {min(round_ratios):.2f}, max {max(round_ratios):.2f} (spread = noise from other load)"
    )
    print("MB/s counts the frame payload one way; each round trip moves it twice.")
    if any(s["rate_limited"] for _, s in rows):
        print("note: the daemon's per-client rate limit (serve --max-requests-per-second) cut a block short")
    result = {
        "benchmark": "protocol",
        "quick": args.quick,
        "frame_shape": list(SHAPE),
        "frame_mb": round(FRAME_MB, 3),
        "raw": r,
        "daemon": d,
        "ratio": round(ratio, 3),
        "round_ratios": [round(x, 3) for x in round_ratios],
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
        "empty_raw": er,
        "empty_daemon": ed,
        "upload_known": k,
        "upload_new": n,
        "device_probe_wait_s": round(probe_s, 3),
        "loadavg_at_start": load_at_start,
        "hardware": hw,
    }
    common.result_line(result, f"{ratio:.2f}x", ratio >= GOAL_RATIO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
