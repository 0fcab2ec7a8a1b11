"""*Set Up Daemon* in real Blender, against the package registries this machine reaches (see blender_side).

Slow the first time (pip downloads the pose feature set); the wheels are cached in ``.cache/pip`` of the checkout,
so later runs and Blender lines install from the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(900)
PIP_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "pip"


@pytest.fixture(scope="module")
def setup_run(blender, sample_video) -> dict[str, Any]:
    return blender.run(
        "setup_daemon.py",
        "--video",
        str(sample_video),
        env={"PIP_CACHE_DIR": str(PIP_CACHE)},
        timeout=800,
    )


def test_start_without_an_environment_names_set_up_daemon(setup_run):
    assert setup_run["python_before"] == ["", ""]
    assert "press Set Up Daemon" in setup_run["start_without_env"]
    drawn = " ".join(setup_run["feature_sets_drawn"])
    assert "Pose capture and live pose (MediaPipe) (about 250 MB)" in drawn and "3-4 GB with CUDA" in drawn


def test_a_cancelled_run_leaves_nothing_start_would_use(setup_run):
    assert setup_run["cancel_poll_while_running"] is True and setup_run["setup_poll_while_running"] is False
    cancelled = setup_run["cancelled"]
    assert cancelled["state"] == "cancelled" and cancelled["marker"] is False
    assert cancelled["python_after"] == ["", ""]


def test_the_environment_is_built_with_progress_and_log_shown_and_start_needs_no_path(setup_run):
    setup = setup_run["setup"]
    assert setup["state"] == "done", setup["message"] + setup["log_file"]
    assert setup["fraction"] == 1.0 and "Installing the daemon" in setup["steps"]
    drawn = setup["drawn_while_running"]
    assert any(line.startswith("progress ") for line in drawn), drawn
    assert "mediapipe" in setup["log_file"].lower() and "-- done" in setup["log_file"]
    python, source = setup_run["python_after"]
    assert source == "set up by Set Up Daemon" and python.endswith("/.local/share/vfx-mocap/env/bin/python")
    assert setup_run["daemon_python_preference"] == "", "nothing was typed"
    assert setup_run["connected_pid"] > 0


def test_the_readme_demo_job_runs_on_the_set_up_daemon(setup_run):
    assert setup_run["demo_job"] == {"state": "succeeded", "error": "", "frames": 6}
    assert setup_run["demo_strip"]


def test_a_second_run_is_a_no_op(setup_run):
    again = setup_run["again"]
    assert again["state"] == "done" and again["did_nothing"] is True
    assert "nothing to do" in again["message"]
