"""The README's main job, as a new user runs it: the Blender demo (the 5.0 line the README's command uses)
and the protocol-only pose demo, each writing its pictures and summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BLENDER_50 = REPO / ".venv-bpy50" / "bin" / "python"


def run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{command[1]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_blender_demo_inserts_the_pose_strip_and_saves_the_file(tmp_path, sample_video):
    assert BLENDER_50.is_file(), "Blender 5.0 as a module is missing: run scripts/setup_blender_envs.sh 50"
    out = tmp_path / "blender-demo"
    run([str(BLENDER_50), "scripts/blender_demo.py", "--out", str(out), "--frames", "12"], timeout=300)
    summary = json.loads((out / "blender_demo.json").read_text())
    assert summary["blender"].startswith("5.0")
    strip = summary["result_strip"]
    assert strip["name"] == "pose" and strip["frames"] == 12
    assert strip["channel"] == summary["source"]["channel"] + 1
    assert strip["first_frame"] == summary["source"]["first_frame"]
    assert (out / "pose_demo.blend").stat().st_size > 0
    picture = cv2.imread(str(out / "sequencer_frame.png"))
    assert picture is not None and picture.std() > 5, "the rendered sequencer frame shows the strips"
    frames = sorted((Path(summary["output_dir"]) / "frames").glob("*.png"))
    assert len(frames) == 12


def test_pose_demo_writes_an_overlay_video_a_contact_sheet_and_a_summary(tmp_path, sample_video):
    out = tmp_path / "pose-demo"
    run([sys.executable, "scripts/pose_demo.py", "--video", str(sample_video), "--out", str(out)], timeout=300)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 270 and summary["frames_with_person"] >= 0.9 * 270
    video = cv2.VideoCapture(str(out / "skeleton_overlay.avi"))
    try:
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 270
    finally:
        video.release()
    assert cv2.imread(str(out / "contact_sheet.png")) is not None
    with np.load(out / "landmarks.npz") as landmarks:
        assert any(array.shape[0] == 270 for array in landmarks.values())
