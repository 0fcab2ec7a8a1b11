"""Control passes rendered from a Blender scene, and Generate from Scene through the daemon, in real Blender.

The scene (``blender_side/scene_generate.py``) is a Rigify human metarig with a known animation, a camera with
lens shift and boxes at known distances. The pose pass is checked against ``world_to_camera_view`` of the
evaluated bones and against the pose mode's own OpenCV skeleton drawing; the depth pass against the boxes'
distances. Generate from Scene runs on the tiny Wan VACE pipeline (``support/tiny_wan.py``) in a daemon started
here, whose VACE runners also save the control video they hand the pipeline (``support/vace_control_recorder.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.daemon_process import DaemonProcess
from support.tiny_wan import build_tiny_wan_vace, write_tiny_manifest
from support.vace_control_recorder import RECEIVED_FOLDER

from models.skeleton import draw_openpose
from models.vace.runner import WAN_VACE_1_3B
from shared.openpose import OPENPOSE18_KEYPOINTS

pytestmark = pytest.mark.timeout(900)

FRAME_START, FRAME_COUNT = 3, 10  # as in blender_side/scene_generate.py
TINY = {"prompt": "a dancer spins on a bright stage", "quality": "draft", "width": 64, "height": 32, "seed": 3}
TINY_WINDOWS = {"window_frames": 9, "chunk_overlap": 5}
"""The Generate panel's options for the tiny pipeline: 10 frames in windows of 9 make two windows; steps are left
unset (0 in the panel), so the daemon takes them from the quality preset."""


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image[..., ::-1]


def strip_images(strip: dict[str, Any]) -> list[np.ndarray]:
    return [read_rgb(Path(strip["directory"]) / name) for name in strip["files"]]


@pytest.fixture(scope="module")
def passes(blender, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"scene-passes-{blender.line}")
    return blender.run("scene_generate.py", "--phase", "passes", "--data-dir", str(folder))


# -- the passes ---------------------------------------------------------------------------------------------


def test_each_pass_is_a_strip_of_the_shots_frames_with_the_shot_recorded(passes):
    for pass_name, strip in passes["strips"].items():
        assert strip["frame_start"] == FRAME_START and strip["duration"] == FRAME_COUNT, pass_name
        assert len(strip["files"]) == FRAME_COUNT
        assert strip["props"] == {
            "vfx_scene_pass": pass_name,
            "vfx_scene": "Scene",
            "vfx_camera": "Camera",
            "vfx_scene_frames": f"{FRAME_START}-{FRAME_START + FRAME_COUNT - 1}",
            "vfx_framing": "848x480: the camera's frame rendered at 853x480 and its centre cropped (5 px of width, "
            "0 px of height)",
        }
        for image in strip_images(strip):
            assert image.shape == (480, 848, 3)


def test_the_passes_are_rendered_at_the_generation_size_cropped_from_the_cameras_aspect(passes):
    # 640x360 is 16:9; the standard quality's 848x480 (the area of 832x480 in multiples of 16) is a little
    # narrower, so the render is 853x480 and its centre is cropped.
    assert passes["framing"] == {"width": 848, "height": 480, "render_size": [853, 480], "left": 2, "top": 0}


def test_rendering_puts_the_scenes_settings_back(passes):
    assert passes["frame_after"] == 1
    assert passes["render_engine_after"] == passes["render_engine_before"] != "BLENDER_WORKBENCH"
    assert passes["resolution_after"] == [640, 360]


CANCEL_AFTER = 3  # as in blender_side/scene_generate.py


def check_cancelled_part_way(cancelled: dict[str, Any]) -> None:
    """The scene while the task rendered CANCEL_AFTER frames, then after the panel's Cancel."""
    assert cancelled["ended_early"] == [False] * CANCEL_AFTER
    during, before = cancelled["during"], cancelled["before"]
    assert during["engine"] == "BLENDER_WORKBENCH" != before["engine"]
    assert during["frame"] == FRAME_START + CANCEL_AFTER - 1
    assert cancelled["files_during"] == [f"{i:06d}.png" for i in range(CANCEL_AFTER)]
    progress = f"progress {CANCEL_AFTER / FRAME_COUNT:.2f}"
    assert any(
        line.startswith(progress) and f"frame {CANCEL_AFTER}/{FRAME_COUNT}" in line
        for line in cancelled["panel_during"]
    ), cancelled["panel_during"]
    assert "<Cancel (Esc)>" in cancelled["panel_during"]
    assert "A pass is rendering" in cancelled["second_render"]
    assert cancelled["after"] == before, "every switched setting and the current frame are put back"
    assert cancelled["strips_after"] == cancelled["strips_before"], "no strip inserted"
    assert cancelled["folder_after"] is False, "the partial pass folder is removed"
    assert cancelled["state"] == "cancelled"
    assert f"cancelled after {CANCEL_AFTER} of {FRAME_COUNT} frames" in cancelled["message"]
    assert cancelled["step_after_cancel"] is True and cancelled["frames_after_cancel"] == CANCEL_AFTER
    assert "<Cancel (Esc)>" not in cancelled["panel_after"]
    assert any("cancelled after" in line for line in cancelled["panel_after"])


def test_a_pass_render_cancelled_part_way_puts_the_scene_back_and_inserts_nothing(passes):
    check_cancelled_part_way(passes["render_task"]["cancelled"])


def test_a_pass_render_stepped_to_the_end_reaches_full_progress_and_inserts_its_strip(passes):
    complete = passes["render_task"]["complete"]
    assert complete["state"] == "finished"
    progress = complete["progress_seen"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) == FRAME_COUNT + 1
    assert progress == sorted(progress)
    assert complete["strips_added"] == 1
    assert complete["after"] == passes["render_task"]["cancelled"]["before"]


def test_a_pass_render_that_fails_part_way_says_why_in_the_panel_and_leaves_nothing(passes):
    failed = passes["render_task"]["failed"]
    assert failed["state"] == "failed"
    assert "sees no surface" in failed["message"] and failed["last_error"] == failed["message"]
    assert any("sees no surface" in line for line in failed["panel"]), failed["panel"]
    assert failed["strips_added"] == 0 and failed["folder_after"] is False
    assert failed["after"] == passes["render_task"]["cancelled"]["before"]


def test_the_operators_invoked_in_background_mode_render_every_frame_at_once(passes):
    assert passes["render_task"]["invoked"] == {"result": ["FINISHED"], "strips_added": 1}


def test_pose_pass_joints_are_the_camera_projection_of_the_evaluated_bones_within_a_pixel(passes):
    keypoints = json.loads((Path(passes["strips"]["pose"]["directory"]) / "keypoints.json").read_text())
    assert len(keypoints["frames"]) == FRAME_COUNT
    moved = []
    for drawn, reference in zip(keypoints["frames"], passes["reference"]["frames"], strict=True):
        assert drawn["frame"] == reference["frame"]
        (body,) = drawn["bodies"]
        assert body["armature"] == "Hero" and body["bone_map"] == "Rigify metarig"
        for joint, (x, y, _depth) in reference["joints"].items():
            projected = body["projected"][OPENPOSE18_KEYPOINTS.index(joint)]
            assert np.hypot(projected[0] - x, projected[1] - y) < 1.0, (drawn["frame"], joint, projected, (x, y))
        moved.append(reference["joints"]["left_wrist"][:2])
    assert np.ptp(np.array(moved), axis=0).max() > 20, "the animation moves the left wrist across the frames"


@pytest.fixture(scope="module")
def generated_rig(blender, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"scene-generated-rig-{blender.line}")
    return blender.run("scene_generate.py", "--phase", "generated", "--data-dir", str(folder))


def test_a_generated_rigify_rig_moved_by_ik_is_drawn_where_its_deforming_bones_are(generated_rig):
    strip = generated_rig["pose"]
    keypoints = json.loads((Path(strip["directory"]) / "keypoints.json").read_text())
    moved = []
    for drawn, reference in zip(keypoints["frames"], generated_rig["reference"]["frames"], strict=True):
        (body,) = drawn["bodies"]  # the metarig is hidden from renders: only the generated rig is drawn
        assert body["armature"] == generated_rig["rig"] and body["bone_map"] == "Rigify generated rig (FK controls)"
        for joint, (x, y, _depth) in reference["joints"].items():
            projected = body["projected"][OPENPOSE18_KEYPOINTS.index(joint)]
            assert np.hypot(projected[0] - x, projected[1] - y) < 1.0, (drawn["frame"], joint, projected, (x, y))
        moved.append(reference["joints"]["left_wrist"][:2])
    assert np.ptp(np.array(moved), axis=0).max() > 20, "the IK control moves the left wrist across the frames"


def test_joints_hidden_behind_a_box_are_not_drawn_and_the_others_are(passes):
    keypoints = json.loads((Path(passes["strips"]["pose"]["directory"]) / "keypoints.json").read_text())
    for frame in keypoints["frames"]:
        (body,) = frame["bodies"]
        hidden = {name for name, flag in zip(OPENPOSE18_KEYPOINTS, body["hidden"], strict=True) if flag}
        assert hidden == {"left_ankle", "right_ankle"}, frame["frame"]
        for name in hidden:
            assert body["keypoints"][OPENPOSE18_KEYPOINTS.index(name)] == [None, None]


def test_pose_pass_images_match_the_pose_modes_skeleton_drawing_of_the_same_points(passes):
    strip = passes["strips"]["pose"]
    keypoints = json.loads((Path(strip["directory"]) / "keypoints.json").read_text())
    for image, frame in zip(strip_images(strip), keypoints["frames"], strict=True):
        expected = np.zeros_like(image)
        for body in frame["bodies"]:
            points = np.array([[np.nan if v is None else v for v in p] for p in body["keypoints"]], dtype=np.float64)
            expected = draw_openpose(expected, points)
        drawn = np.any(expected > 0, axis=2) | np.any(image > 0, axis=2)
        differ = np.any(image != expected, axis=2)
        assert drawn.sum() > 1000, "a whole skeleton is drawn"
        # The two rasterisers may round a limb's rim differently; nothing else may differ.
        assert differ.sum() <= 0.01 * drawn.sum(), (frame["frame"], int(differ.sum()), int(drawn.sum()))


def test_depth_pass_is_brighter_for_nearer_objects_on_one_scale_for_the_shot(passes):
    images = strip_images(passes["strips"]["depth"])
    boxes = passes["reference"]["boxes"]
    by_distance = sorted(boxes, key=lambda name: boxes[name][2])
    assert by_distance == ["occluder", "near_box", "middle_box", "far_wall"]
    for image in images:
        assert np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 0] == image[..., 2]), "grey"
        greys = [int(image[round(boxes[name][1]), round(boxes[name][0]), 0]) for name in by_distance]
        assert greys[0] > greys[1] > greys[2] > greys[3], greys
    # One scale for the whole shot: the static boxes keep their grey from frame to frame.
    assert len({int(image[round(boxes["near_box"][1]), round(boxes["near_box"][0]), 0]) for image in images}) == 1
    assert max(int(image.max()) for image in images) == 255


def test_layout_pass_shows_the_objects_in_grey(passes):
    images = strip_images(passes["strips"]["layout"])
    boxes = passes["reference"]["boxes"]
    for image in images:
        x, y, _ = boxes["near_box"]
        assert image[round(y), round(x)].std() < 2 and image[round(y), round(x)].mean() > 60


def test_a_scene_without_camera_armature_or_known_rig_gets_a_clear_message(passes):
    errors = passes["errors"]
    assert "Scene 'Scene' has no active camera" in errors["no_camera"]
    assert "Scene 'Scene' has no active camera" in errors["no_camera_generate"]
    assert "has no armature to render" in errors["no_armature"] and "depth or layout pass" in errors["no_armature"]
    assert "rig 'Hero' matches no built-in bone map" in errors["unrecognised"]
    assert "upper_arm.L" in errors["unrecognised"]
    assert any("has no active camera" in line for line in passes["panel_without_camera"])


def test_the_panel_shows_the_shot(passes):
    panel = passes["panel"]
    assert "Camera: Camera" in panel
    assert f"Frames {FRAME_START}-{FRAME_START + FRAME_COUNT - 1} ({FRAME_COUNT})" in panel
    assert {"<Generate from Scene>", "<Render Pass>"} <= set(panel), panel


# -- Generate from Scene through the daemon -----------------------------------------------------------------


@pytest.fixture(scope="module")
def vace_daemon(tmp_path_factory):
    """A daemon on the CPU with the tiny 1.3B pipeline, whose VACE runners save the control video they use."""
    base = tmp_path_factory.mktemp("scene-vace")
    models_dir = base / "models"
    build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder)
    manifest = base / "manifest.toml"
    write_tiny_manifest(manifest, models_dir)
    proc = DaemonProcess(
        extra_args=(
            "--manifest",
            str(manifest),
            "--models-dir",
            str(models_dir),
            "--device",
            "cpu",
            "--plugin",
            "vace_control_recorder",
        ),
        plugin=False,
    ).start()
    yield proc
    proc.cleanup()


def reference_image() -> Path:
    """Tom Hanks' portrait from the insightface wheel: a real subject for the reference image."""
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    package = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    path = (package or Path("insightface")) / "data" / "images" / "Tom_Hanks_54745.png"
    if not path.is_file():
        pytest.fail(f"{path} is missing: reinstall insightface==2.1 (its wheel ships the image)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def generated(blender, vace_daemon, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"scene-generate-{blender.line}")
    return blender.run(
        "scene_generate.py",
        "--phase",
        "generate",
        "--data-dir",
        str(folder),
        "--connection-file",
        str(vace_daemon.connection_file),
        "--reference",
        str(reference_image()),
        "--options",
        json.dumps({**TINY, **TINY_WINDOWS}),
    )


def test_generate_from_scene_cancelled_part_way_submits_no_job(generated, vace_daemon):
    cancelled = generated["cancelled"]
    with vace_daemon.client() as client:
        inputs = [json.dumps(job["inputs"]) for job in client.jobs()]
    assert generated["jobs"]["pose"]["pass"]["directory"].rstrip("/") in "".join(inputs), "the daemon lists inputs"
    assert not any(cancelled["folder"] in text for text in inputs), "no job of the daemon reads the cancelled pass"
    assert cancelled["jobs_added"] == 0
    check_cancelled_part_way(cancelled)


@pytest.mark.parametrize("pass_name, mode", [("pose", "vace_pose"), ("depth", "vace_motion")])
def test_generate_from_scene_inserts_a_strip_at_the_shots_frames(generated, pass_name, mode):
    job = generated["jobs"][pass_name]
    assert job["state"] == "succeeded", job["error"] or job["last_error"]
    assert job["mode"] == mode
    result, source = job["result"], job["pass"]
    assert job["source_strip"] == source["name"]
    assert result["frame_start"] == FRAME_START and result["duration"] == FRAME_COUNT
    assert result["channel"] > source["channel"]
    assert len(result["files"]) == FRAME_COUNT
    for image in strip_images(result):
        assert image.shape == (TINY["height"], TINY["width"], 3)


@pytest.mark.parametrize("pass_name", ["pose", "depth"])
def test_the_job_and_its_strip_record_the_scene_camera_and_pass(generated, pass_name):
    job = generated["jobs"][pass_name]
    recorded = {"vfx_scene_pass": pass_name, "vfx_scene": "Scene", "vfx_camera": "Camera"}
    assert recorded.items() <= job["strip_props"].items()
    assert recorded.items() <= job["result"]["props"].items()
    assert job["result"]["props"]["vfx_job_id"] == job["id"]
    assert job["result"]["props"]["vfx_scene_frames"] == f"{FRAME_START}-{FRAME_START + FRAME_COUNT - 1}"
    assert (job["params"]["width"], job["params"]["height"]) == (TINY["width"], TINY["height"])
    assert "steps" not in job["params"], "an option the panel never set is left to the daemon"
    if pass_name == "depth":
        assert job["params"]["control"] == "as_is"


@pytest.mark.parametrize("pass_name", ["pose", "depth"])
def test_the_control_video_the_pipeline_received_is_the_pass_on_disk(generated, pass_name):
    job = generated["jobs"][pass_name]
    received = sorted((Path(job["output_dir"]) / RECEIVED_FOLDER).glob("*.png"))
    on_disk = strip_images(job["pass"])
    assert len(received) == len(on_disk) == FRAME_COUNT
    for path, expected in zip(received, on_disk, strict=True):
        np.testing.assert_array_equal(read_rgb(path), expected)
    assert any(image.max() > 0 for image in on_disk), "the pass shows something"


def test_the_shot_is_generated_in_overlapping_windows_with_exactly_its_frames(generated, vace_daemon):
    with vace_daemon.client() as client:
        summary = client.result(generated["jobs"]["pose"]["id"])[0]
    # 10 frames in windows of 9 overlapping by 5: the last window moved back to end on the last frame.
    assert summary["windows"] == [{"start": 0, "frames": 9, "context": 0}, {"start": 1, "frames": 9, "context": 8}]
    assert summary["frame_count"] == FRAME_COUNT
    assert (summary["width"], summary["height"]) == (TINY["width"], TINY["height"])
