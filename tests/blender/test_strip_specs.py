"""Which frames a strip sends, and where a result lands, in real Blender (no daemon needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def specs(blender, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"strip-specs-{blender.line}")
    frames = folder / "frames"
    frames.mkdir()
    for index in range(10):
        cv2.imwrite(str(frames / f"f{index:03d}.png"), np.full((16, 24, 3), index * 20, np.uint8))
    video_30 = folder / "thirty.avi"  # 30 fps footage in the 24 fps scene
    writer = cv2.VideoWriter(str(video_30), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 24))
    for index in range(40):
        writer.write(np.full((24, 32, 3), index * 5, np.uint8))
    writer.release()
    return blender.run(
        "strip_specs.py",
        *("--video", str(sample_video), "--video-30", str(video_30)),
        *("--frames", str(frames), "--output", str(folder / "jobs")),
    )


def test_a_movie_strip_sends_the_frames_it_shows(specs):
    # the hold offset (content trim) skips 5 content frames, the left handle 20 more; 8 frames stay visible.
    # Where that puts the strip differs (5.2 moves the content when it is trimmed), the frames do not.
    movie = specs["movie"]
    assert movie["spec"] == {"path": "Megamind.avi", "frame_start": 25, "frame_end": 33, "step": 1}
    assert movie["frame_start"] == movie["strip_left_handle"]
    assert movie["frame_count"] == 8 and movie["channel"] == 1


def test_a_movie_at_another_frame_rate_sends_one_movie_frame_per_strip_frame_as_blender_plays_it(specs):
    thirty = specs["movie_30fps"]
    assert thirty["scene_fps"] == 24 and thirty["movie_fps"] == 30
    assert thirty["spec"] == {"path": "thirty.avi", "frame_start": 0, "frame_end": 40, "step": 1}
    assert thirty["frame_count"] == 40


def test_a_reversed_movie_is_refused_with_a_way_out(specs):
    assert "retimed, reversed or strobed" in specs["movie_reversed"]["error"]
    assert "render it to an image sequence" in specs["movie_reversed"]["error"]


def test_an_image_sequence_sends_one_file_per_visible_frame(specs):
    sequence = specs["sequence"]
    assert sequence["spec"]["paths"] == ["f002.png", "f003.png", "f004.png", "f005.png", "f006.png"]
    assert sequence["spec"]["fps"] == pytest.approx(24.0)
    assert sequence["frame_start"] == 3 and sequence["frame_count"] == 5


def test_a_reversed_image_sequence_sends_its_frames_as_blender_plays_them(specs):
    assert specs["sequence_reversed"]["spec"]["paths"] == ["f007.png", "f006.png", "f005.png", "f004.png", "f003.png"]


def test_a_single_image_sends_one_still(specs):
    assert specs["still"]["spec"] == {"path": "f003.png"}
    assert specs["still"]["frame_count"] == 20


def test_other_strip_types_are_refused(specs):
    assert "is a color strip: select a movie, image sequence or image strip" in specs["color"]["error"]


def test_a_result_follows_its_moved_source_and_skips_busy_channels(specs):
    result = specs["sequence_result"]
    assert result["frame_final_start"] == result["source_frame_final_start"] == 13
    assert result["channel"] == 4  # the source is on 2, channel 3 is busy over the result's frames
    assert result["frame_final_duration"] == 5
    assert result["seed"] == 7  # modes with a seed keep it on the strip
    assert result["job_result_strip"]


def test_a_result_strip_is_made_without_reading_its_frames_and_looks_as_if_it_had(specs):
    """The strip is made on a name that is no file (Blender would decode the first frame on the main thread), then
    given the job's frames in order and the colour space and alpha that reading the first frame gives."""
    result = specs["sequence_result"]
    assert result["files"] == [f"{index:06d}.png" for index in range(5)]
    assert Path(result["directory"]).name == "frames"
    read = specs["first_frame_read_by_blender"]
    assert (result["colorspace"], result["alpha_mode"]) == (read["colorspace"], read["alpha_mode"])
    assert read["colorspace"], "Blender named the colour space it read"


def test_a_one_frame_result_of_a_deleted_still_is_stretched_over_the_stills_old_place(specs):
    assert specs["still_result"] == {"channel": 4, "frame_final_start": 50, "frame_final_duration": 20}


def test_a_missing_result_folder_is_reported_with_what_to_do(specs):
    assert "No result frames in" in specs["missing_result"] and "retry the job" in specs["missing_result"]


def test_fcurves_are_written_through_the_version_layer(specs):
    fcurve = specs["fcurve"]
    assert fcurve["same_curve_again"] is True
    assert fcurve["z_at_frame_6"] == pytest.approx(2.5)
    since_4_4 = tuple(specs["version"]) >= (4, 4, 0)  # slotted actions and the strips API arrived together
    assert fcurve["slotted"] is since_4_4 and fcurve["strips_api"] is since_4_4
