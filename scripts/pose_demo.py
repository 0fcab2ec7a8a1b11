"""The main job without Blender: start the daemon, extract poses from the sample video through the protocol,
and write a skeleton-overlay video, a contact sheet and a summary.

Usage: python scripts/pose_demo.py [--video PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.client import Client  # noqa: E402

SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")


def start_daemon(base: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon",
            "serve",
            "--runtime-dir",
            str(base / "run"),
            "--data-dir",
            str(base / "data"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=open(base / "daemon.log", "w"),  # noqa: SIM115 - the daemon writes it for its whole life
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        raise SystemExit(f"the daemon did not start; see {base / 'daemon.log'}")
    return proc, Path(line.split(" ", 1)[1].strip())


def contact_sheet(frames: list[np.ndarray], columns: int = 6, width: int = 240) -> np.ndarray:
    tiles = [cv2.resize(f, (width, round(f.shape[0] * width / f.shape[1]))) for f in frames]
    rows = [
        np.hstack(tiles[i : i + columns] + [np.zeros_like(tiles[0])] * (columns - len(tiles[i : i + columns])))
        for i in range(0, len(tiles), columns)
    ]
    return np.vstack(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=SAMPLE_VIDEO)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "pose-demo")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} is missing: install the Debian package opencv-doc, or pass --video")
    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="vfx-demo-"))
    started = time.monotonic()
    proc, connection_file = start_daemon(base)
    print(f"daemon ready in {time.monotonic() - started:.2f} s ({connection_file})")
    try:
        with Client.from_file(connection_file, timeout=30) as client:
            job_id = uuid.uuid4().hex
            client.submit(
                job_id,
                "pose",
                {"render_skeleton": True, "skeleton_background": "overlay"},
                {"video": {"path": str(args.video.resolve())}},
                subscribe=True,
            )
            job = client.wait(job_id, timeout=900)
            if job["state"] != "succeeded":
                raise SystemExit(f"pose job {job['state']}: {job['error']}")
            summary, arrays = client.result(job_id)
        frames_dir = Path(job["output_dir"]) / "frames"
        frame_files = sorted(frames_dir.glob("*.png"))
        first = cv2.imread(str(frame_files[0]))
        writer = cv2.VideoWriter(
            str(args.out / "skeleton_overlay.avi"),
            cv2.VideoWriter_fourcc(*"MJPG"),
            summary["fps"],
            (first.shape[1], first.shape[0]),
        )
        for path in frame_files:
            writer.write(cv2.imread(str(path)))
        writer.release()
        picks = [cv2.imread(str(frame_files[i])) for i in np.linspace(0, len(frame_files) - 1, 18).astype(int)]
        cv2.imwrite(str(args.out / "contact_sheet.png"), contact_sheet(picks))
        np.savez_compressed(args.out / "landmarks.npz", **arrays)
        report = {
            "video": str(args.video),
            "frames": summary["frame_count"],
            "frames_with_person": summary["frames_with_person"],
            "seconds": round(time.monotonic() - started, 2),
            "outputs": ["skeleton_overlay.avi", "contact_sheet.png", "landmarks.npz"],
        }
        (args.out / "summary.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
