"""What every benchmark shares: the machine it ran on, percentiles, the jobs' final states and the result line.

A benchmark prints a human table, then, as its very last stdout line, one JSON object built by
:func:`result_line`: its numbers plus ``headline`` (the goal's number in words), ``goal_met`` (true, false or
null for a reference-only benchmark), ``hardware`` and the load average at the start and the end.
``scripts/bench/run.py`` reads that line back to regenerate docs/benchmarks.md. Benchmarks exit 0 whatever
the result: a missed goal is a number to report, not a failure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")

_LOAD_AT_IMPORT = [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo (Linux) or sysctl (macOS) gives it, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if shutil.which("sysctl"):
        done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """NVIDIA GPUs as nvidia-smi names them (empty without one); no torch import, so it costs no start-up."""
    if not shutil.which("nvidia-smi"):
        return []
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def hardware() -> dict[str, Any]:
    """The machine in a few fields: CPU count and name, GPUs, OS and Python."""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "gpus": gpu_names(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` 0.95 for p95), no interpolation; NaN when empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def result_line(numbers: dict[str, Any], headline: str, goal_met: bool | None) -> str:
    """Print the benchmark's last line (one JSON object) and return it. ``headline``: the goal's number in words,
    e.g. "0.96x"; ``goal_met``: None for a benchmark without a goal. Machine and load are added when absent."""
    numbers = dict(numbers)
    numbers["headline"] = headline
    numbers["goal_met"] = goal_met
    numbers.setdefault("hardware", hardware())
    numbers.setdefault("load_average_at_start", _LOAD_AT_IMPORT)
    numbers["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    numbers["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = json.dumps(numbers, default=str)
    print(line, flush=True)
    return line


class QuietContext:
    """The smallest real RunContext: frames go to ``output_dir``, progress is dropped, nothing cancels."""

    def __init__(self, output_dir: Path, device: Any) -> None:
        self.output_dir = output_dir
        self.device = device

    def progress(self, fraction: float, stage: str, preview: Any = None) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def raise_if_cancelled(self) -> None:
        pass

    def log(self, message: str) -> None:
        pass
