"""Job history, results and weights outlive the extension; a saved .blend carries its results (see blender_side)."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def survived(blender, daemon_python: str, sample_video, tmp_path_factory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp(f"survives-{blender.line}") / "project"
    first = blender.run(
        "data_survives.py",
        "--phase",
        "first",
        "--daemon-python",
        daemon_python,
        "--video",
        str(sample_video),
        "--project",
        str(project),
    )
    reopened = blender.run("data_survives.py", "--phase", "reopen", "--project", str(project))
    return {**first, **reopened}


def test_an_older_store_in_the_extension_folder_is_moved_once_to_the_platform_data_folder(survived):
    assert survived["data_dir"].endswith("/.local/share/vfx-mocap") and not survived["inside_extension"]
    assert survived["moved"] == {"old_gone": True, "job_frame": True, "weights": True}
    assert survived["notice"].startswith("Moved the job history, results and weights from the extension's folder")


def test_uninstalling_and_reinstalling_keeps_the_history_the_results_and_the_weights(survived):
    assert survived["uninstalled"] is True
    assert survived["after_uninstall"] == {"database": True, "job_frames": 4, "weights": True}
    assert survived["job_id"] in survived["history_after_reinstall"]


def test_a_saved_blend_keeps_its_results_beside_it_and_opens_elsewhere_with_every_frame(survived):
    assert survived["inserted_directory"].startswith(survived["data_dir"])
    assert survived["saved_directory"] == f"//vfx_results/{survived['job_id']}/"
    assert survived["kept_files"] == ["000000.png", "000001.png", "000002.png", "000003.png"]
    reopened = survived["reopened"]
    assert reopened["directory"] == survived["saved_directory"] and reopened["inside_moved_project"]
    assert reopened["frames_found"] == reopened["elements"] == 4


def test_a_mode_that_needs_a_download_is_one_line_with_fetch_and_a_failed_fetch_says_why_under_it(survived):
    licence = "non-commercial research use only (github.com/deepinsight/insightface#license)"
    assert survived["face_swap_row"] == [
        "Face swap: needs a download (889 MB)",
        "<Fetch>",
        f"Licence: InsightFace inswapper: {licence}",
    ]
    argv = survived["fetch_argv"]
    assert argv[1:5] == ["-m", "vfx_mocap", "fetch-models", "face_swap"]
    assert argv[5:] == ["--models-dir", survived["data_dir"] + "/models"], "the daemon's own models folder"
    assert survived["fetch_state"] == "failed", "this machine cannot reach huggingface.co"
    after = survived["face_swap_after_fetch"]
    assert after[1] == "<Fetch>" and after[4].startswith("error: could not download"), after


def test_a_finished_job_shows_no_stage(survived):
    assert survived["finished_job"] == {"state": "succeeded", "stage": "", "eta_s": -1.0}


def test_a_truncated_clip_ends_with_a_visible_warning_in_the_jobs_panel(survived):
    truncated = survived["truncated"]
    assert truncated["state"] == "succeeded"
    assert re.search(r"cut\.avi promises \d+ frames but only 13 could be decoded", truncated["warning"]), truncated
    # (Blender's own decoder finds 22 frames in the cut file, the container header 270: the strip sends 22.)
    panel = truncated["jobs_panel"]
    assert any(line.startswith("Warning: video: cut.avi") for line in panel), panel
