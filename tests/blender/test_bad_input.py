"""Operators refuse bad input with reports that say what is wrong and what to do; the panel keeps the last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def reports(blender, daemon_python: str, sample_video: Path, sample_image: Path, tmp_path_factory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp(f"bad-input-{blender.line}") / "data"
    return blender.run(
        "bad_input.py",
        "--daemon-python",
        daemon_python,
        "--data-dir",
        str(data_dir),
        "--video",
        str(sample_video),
        "--reference",
        str(sample_image),
    )


def test_generate_without_a_daemon_says_to_start_it(reports):
    assert "The daemon is not running" in reports["daemon_not_running"]
    assert "start it in the Motion Capture panel" in reports["daemon_not_running"]


def test_a_daemon_started_elsewhere_is_used_through_its_connection_file(reports):
    assert reports["connected"] == {
        "owned": False,
        "pid": reports["connected"]["daemon_pid"],
        "daemon_pid": reports["connected"]["daemon_pid"],
    }
    modes = reports["modes"]
    assert modes["pose"] is True and modes["reference_overlay"] is True
    assert modes["needs_missing_package"] is False


def test_generate_without_a_selected_strip_says_to_select_one(reports):
    for key in ("no_strip", "strip_not_selected"):
        assert "No strip selected: select a movie, image sequence or image strip in the Sequencer" in reports[key]


def test_a_strip_whose_file_is_gone_is_refused_naming_the_file(reports):
    assert "moved.avi (movie strip 'missing'): the file does not exist" in reports["file_missing"]


def test_an_unreadable_image_fails_its_job_with_the_daemons_reason(reports):
    assert reports["unreadable_submit"] == {"result": ["FINISHED"], "error": ""}
    job = reports["unreadable_job"]
    assert job["state"] == "failed"
    assert "could not read image" in job["error"] and "broken.png" in job["error"]
    assert "video: could not read image" in reports["last_error_after_unreadable"], "refused at submit"


def test_retry_of_a_job_the_daemon_refused_at_submit_submits_it_again(reports):
    retried = reports["retried_refused_job"]
    assert reports["retry_sent_state"] == "submitting", "sent again as a new submission"
    assert retried["result"] == ["FINISHED"] and retried["state"] == "failed" and retried["stage"] == ""
    assert "could not read image" in retried["error"] and "no job" not in retried["error"], "the daemon saw it again"


def test_an_operators_error_shows_next_to_its_button(reports):
    panel = reports["generate_panel_after_error"]
    button = panel.index("<vfxmocap.generate>")
    assert " ".join(panel[button + 1 :]).startswith(reports["mode_not_ready"].removeprefix("Error: ")[:40])


def test_a_mode_that_needs_a_reference_refuses_to_run_without_one(reports):
    assert "needs a reference image: choose a file or an image strip" in reports["reference_none"]
    assert "no_such_reference.png (the reference image): the file does not exist" in reports["reference_file_missing"]
    assert "Reference strip 'no such strip' is not an image strip" in reports["reference_strip_missing"]


def test_with_its_reference_the_mode_runs(reports):
    assert reports["reference_job"] == {"state": "succeeded", "error": ""}


def test_a_mode_that_is_not_ready_says_what_is_missing(reports):
    assert "Mode 'needs_missing_package' is not ready" in reports["mode_not_ready"]
    assert "python package vfx_package_that_does_not_exist" in reports["mode_not_ready"]


def test_inserting_a_failed_job_is_refused_and_the_panel_keeps_the_last_error(reports):
    assert "failed: only a succeeded job has a result" in reports["insert_unfinished"]
    assert reports["last_error_in_panel"] in reports["insert_unfinished"]


def test_stop_shuts_down_a_daemon_started_elsewhere(reports):
    assert reports["foreign_daemon_exit"] == 0


def test_panels_show_what_a_mode_lacks_and_the_last_error(reports):
    generate = " ".join(reports["panels"]["generate"])
    assert "missing python package vfx_package_that_does_not_exist." in generate
    assert "Fix: pip install vfx_package_that_does_not_exist" in generate
    daemon = reports["panels"]["daemon"]
    assert daemon[0] == f"Connected (pid {reports['connected']['daemon_pid']})"  # not started here
    assert "Last error" in daemon
    jobs = reports["panels"]["jobs"]
    assert "* reference_overlay succeeded" in jobs and "* pose failed" in jobs


def test_a_malformed_update_is_shown_in_the_panel_and_the_pump_goes_on(reports):
    malformed = reports["malformed_update"]
    assert malformed["intervals"] == [0.1, 0.1], "the timer keeps its interval instead of raising"
    assert malformed["applied_after"] == "applied after the bad update"
    assert "Applying a JobUpdate from the daemon failed (ValueError" in malformed["last_error"]
