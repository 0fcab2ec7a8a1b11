"""Job history, results and weights outlive the extension; a saved .blend carries its results (see blender_side)."""

from __future__ import annotations

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
