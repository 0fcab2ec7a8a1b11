"""Pose on a real movie strip through the add-on, result back in the sequencer, across a Blender restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

SOURCE_OFFSET = 30  # as in blender_side/round_trip.py
SOURCE_FRAMES = 12


@pytest.fixture(scope="module")
def round_trip(blender, daemon_python: str, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    """Both phases' records: ``first`` (submit, insert, cancel, save) and ``reopen`` (a new Blender)."""
    folder = tmp_path_factory.mktemp(f"round-trip-{blender.line}")
    common = [
        "--daemon-python",
        daemon_python,
        "--data-dir",
        str(folder / "data"),
        "--video",
        str(sample_video),
        "--blend",
        str(folder / "round_trip.blend"),
    ]
    runtime_dir = Path(blender.work_dir) / f"rt-round-trip-{blender.line}"
    runtime_dir.mkdir()
    first = blender.run("round_trip.py", "--phase", "first", *common, runtime_dir=runtime_dir)
    reopen = blender.run(
        "round_trip.py",
        "--phase",
        "reopen",
        *common,
        "--first-job",
        first["job"]["id"],
        "--last-job",
        first["last_job"]["id"],
        "--cancelled-job",
        first["cancelled"]["id"],
        runtime_dir=runtime_dir,
    )
    return {"first": first, "reopen": reopen}


def test_pose_job_on_a_movie_strip_succeeds_with_one_frame_per_visible_frame(round_trip):
    job = round_trip["first"]["job"]
    assert job["state"] == "succeeded", job["error"]
    assert job["frame_count"] == SOURCE_FRAMES
    assert job["max_fraction"] == pytest.approx(1.0)


def test_progress_previews_reach_the_panel(round_trip):
    size = round_trip["first"]["job"]["preview_size"]
    assert size is not None and min(size) > 0


def test_result_goes_to_the_first_free_channel_above_the_source_at_its_first_visible_frame(round_trip):
    inserted = round_trip["first"]["inserted"]
    source = round_trip["first"]["source"]
    assert inserted["type"] == "IMAGE"
    # channel 2 holds a strip overlapping the source; channel 3's strip lies later in time, so 3 is free
    assert inserted["channel"] == 3
    assert inserted["frame_final_start"] == source["frame_final_start"] == 1 + SOURCE_OFFSET
    assert inserted["frame_final_duration"] == SOURCE_FRAMES
    assert inserted["elements"] == SOURCE_FRAMES


def test_result_strip_is_named_after_the_mode_and_carries_the_job(round_trip):
    inserted = round_trip["first"]["inserted"]
    job = round_trip["first"]["job"]
    assert inserted["name"] == "pose"
    assert inserted["props"]["vfx_job_id"] == job["id"]
    assert inserted["props"]["vfx_mode"] == "pose"
    params = json.loads(inserted["props"]["vfx_params"])
    assert params["skeleton_background"] == "overlay"
    assert params["render_skeleton"] is True
    assert "vfx_seed" not in inserted["props"]  # pose takes no seed; seeded modes store theirs
    assert inserted["props"]["vfx_licences"] == "MediaPipe Pose Landmarker (in the mediapipe wheel): Apache-2.0"
    assert Path(inserted["directory"]) == Path(job["output_dir"]) / "frames"


def test_result_frames_show_the_visible_source_frames(round_trip, sample_video: Path):
    """The overlay result's first frame is the source's content frame 30 (its trim), not a neighbour."""
    inserted = round_trip["first"]["inserted"]
    result = cv2.imread(str(Path(inserted["directory"]) / inserted["first_file"])).astype(np.float32)
    capture = cv2.VideoCapture(str(sample_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, SOURCE_OFFSET - 1)
    distances = {}
    for index in (SOURCE_OFFSET - 1, SOURCE_OFFSET, SOURCE_OFFSET + 1):
        ok, frame = capture.read()
        assert ok
        distances[index] = float(np.abs(frame.astype(np.float32) - result).mean())
    capture.release()
    assert min(distances, key=distances.get) == SOURCE_OFFSET, distances


def test_inserting_twice_does_not_duplicate(round_trip):
    assert round_trip["first"]["strips_before_insert"] == 0
    assert round_trip["first"]["strips_after_second_insert"] == 1


def test_cancel_operator_stops_a_running_job(round_trip):
    first = round_trip["first"]
    assert first["cancel_at_fraction"] > 0
    assert first["cancelled"]["state"] == "cancelled"
    assert first["cancelled"]["fraction"] < 1.0


def test_jobs_survive_blender_closing(round_trip):
    first, reopen = round_trip["first"], round_trip["reopen"]
    assert reopen["jobs"] == {
        first["job"]["id"]: {"state": "succeeded", "mode": "pose"},
        first["cancelled"]["id"]: {"state": "cancelled", "mode": "pose"},
        first["last_job"]["id"]: {"state": first["last_job"]["state_at_save"], "mode": "pose"},
    }


def test_result_can_be_inserted_after_reopening_without_a_daemon(round_trip):
    reopen, inserted = round_trip["reopen"], round_trip["first"]["inserted"]
    assert reopen["daemon_state_at_insert"] == "stopped"
    again = reopen["reinserted"]
    for key in ("channel", "frame_final_start", "frame_final_duration", "directory", "props"):
        assert again[key] == inserted[key], key


def test_a_job_cut_off_by_closing_blender_finishes_after_reopening_and_inserts_itself(round_trip):
    reopen = round_trip["reopen"]
    assert reopen["last_job_state_after_reopen"] == "succeeded", "quitting left the daemon to finish the job"
    assert reopen["last_job_final"]["state"] == "succeeded", reopen["last_job_final"]["error"]
    assert reopen["last_job_final"]["attempts"] == 1, "it ran once: never interrupted, never retried"
    auto = reopen["auto_inserted"]
    assert auto["channel"] == 4  # 3 now holds the first result
    assert auto["frame_final_start"] == 1 + SOURCE_OFFSET
    assert auto["frame_final_duration"] == SOURCE_FRAMES
    assert auto["name"].startswith("pose")


def test_retry_of_a_cancelled_job_runs_it_again_to_its_result(round_trip):
    """Retry in the Jobs panel on the job cancelled before Blender closed: the daemon runs it a second time, the
    panel follows that run to 'succeeded' and the result inserts itself above the job's source strip."""
    retry, source = round_trip["reopen"]["retry"], round_trip["first"]["cancelled"]["source"]
    assert "* pose cancelled" in retry["panel_before"] and "<Retry>" in retry["panel_before"]
    assert retry["result"] == ["FINISHED"], retry["error"]
    assert retry["timed_out"] is None, retry["timed_out"]
    assert retry["states"][0] == "cancelled" and retry["states"][-1] == "succeeded", retry["states"]
    assert {"queued", "running"} & set(retry["states"]), f"the panel showed the new run: {retry['states']}"
    assert retry["daemon"] == {"state": "succeeded", "attempts": 2}, "the daemon ran the same job again"
    assert retry["final"]["frame_count"] == source["frame_final_duration"], retry["final"]["error"]
    assert retry["final"]["fraction"] == pytest.approx(1.0)
    inserted = retry["inserted"]
    assert inserted is not None, "auto-insert placed the retried job's result"
    assert inserted["channel"] == source["channel"] + 1
    assert inserted["frame_final_start"] == source["frame_final_start"]
    assert inserted["elements"] == inserted["frame_final_duration"] == source["frame_final_duration"]
    assert inserted["props"]["vfx_job_id"] == round_trip["first"]["cancelled"]["id"]
    assert "* pose cancelled" not in retry["panel_after"] and retry["panel_after"].count("* pose succeeded") == 3
    assert any(line.startswith("progress 1.00 ") for line in retry["panel_after"]), retry["panel_after"]


def test_the_daemon_panel_names_the_loaded_models_and_no_gpu_memory_on_the_cpu(round_trip):
    daemon = round_trip["first"]["panels"]["daemon"]
    assert "Loaded models: pose" in daemon
    assert not any(line.startswith("GPU memory") for line in daemon)


def test_panels_show_the_modes_options_source_and_the_finished_job(round_trip):
    generate = round_trip["first"]["panels"]["generate"]
    assert "<Pose>" in generate, "modes by their human names"
    assert "Licences: Apache-2.0" in generate, "the chosen mode's model licences"
    assert {"[Skeleton background]", "[Render skeleton]", "[Model complexity]"} <= set(generate)
    assert "Source: source" in generate and "[auto_insert]" in generate
    jobs = round_trip["first"]["panels"]["jobs"]
    assert "* pose succeeded" in jobs
    assert any(line.startswith("progress 1.00 ") and line.endswith(" 100%") for line in jobs), jobs
    assert "preview" in jobs
    assert {"<Cancel>", "<Retry>", "<Insert>"} <= set(jobs)
