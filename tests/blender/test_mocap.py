"""Pose to armature in real Blender: accuracy on real rigs, the sample video through the daemon, and live pose.

Each scenario runs in a subprocess of a Blender line's bpy venv (``blender_side/mocap_*.py``) with the extension
installed by Blender's own installer.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(900)

LIMB_LIMIT_DEG = 5.0


@pytest.fixture(scope="module")
def accuracy(blender, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"mocap-accuracy-{blender.line}")
    return blender.run("mocap_accuracy.py", "--data-dir", str(folder))


@pytest.fixture(scope="session")
def vtest_pose_job(vtest_video: Path, tmp_path_factory) -> tuple[Path, int]:
    """A pose job folder as the daemon publishes it: the real pose runner on vtest.avi's first 60 frames with
    people = all; and the number of the pedestrian to follow: the one seen longest that is not the default."""
    import json

    from test_pose_runner import RecordingContext

    from models.media import VideoFile
    from models.pose import PoseRunner

    folder = tmp_path_factory.mktemp("vtest-pose-job")
    runner = PoseRunner()
    runner.load("cpu")
    try:
        video = VideoFile(vtest_video, frame_end=60)
        params = runner.validate({"people": "all", "render_skeleton": False})
        result = runner.run({"video": video}, params, RecordingContext(folder))
    finally:
        runner.unload()
    (folder / "arrays").mkdir()
    for name, array in result.arrays.items():
        np.save(folder / "arrays" / f"{name}.npy", array)
    (folder / "summary.json").write_text(json.dumps(result.summary))
    tracks = result.summary["tracks"]
    others = [t for k, t in enumerate(tracks) if k != result.summary["default_track"]]
    return folder, max(others, key=lambda t: t["frames"])["number"]


@pytest.fixture(scope="module")
def people(blender, vtest_pose_job) -> dict[str, Any]:
    folder, person = vtest_pose_job
    return blender.run("mocap_people.py", "--data-dir", str(folder), "--person", str(person))


@pytest.fixture(scope="module")
def media(blender, daemon_python: str, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"mocap-media-{blender.line}")
    options = ["--daemon-python", daemon_python, "--data-dir", str(folder / "data"), "--video", str(sample_video)]
    return blender.run("mocap_media.py", *options)


@pytest.fixture(scope="module")
def live(blender, daemon_python: str, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"mocap-live-{blender.line}")
    options = ["--daemon-python", daemon_python, "--data-dir", str(folder / "data"), "--video", str(sample_video)]
    return blender.run("mocap_live.py", *options)


# -- accuracy -------------------------------------------------------------------------------------------------


def test_known_motion_baked_with_the_default_settings_follows_within_five_degrees_without_lag(accuracy):
    """The default bake smooths zero-phase: a 4 s motion at 24 fps with tracker-like jitter comes back within 5
    degrees on average on the limbs, no bone above 10 (a causal filter's lag made that 5-12 degrees)."""
    case = accuracy["known_motion"]
    assert (case["frames"], case["fps"], case["smoothing"], case["root_motion"]) == (96, 24.0, True, True)
    limb = case["limb"]
    assert limb["mean_deg"] <= LIMB_LIMIT_DEG, limb
    assert max(limb["per_bone_mean_deg"].values()) <= 2 * LIMB_LIMIT_DEG, limb["per_bone_mean_deg"]


def test_a_known_walk_baked_with_the_default_settings_keeps_planted_feet_and_the_root_path(accuracy):
    """Straight-legged steps towards the camera and to the side, seen by a known camera, baked through the
    operator: each planted heel stays within 2 cm while planted, the hips within 5 % of the path's length."""
    walk = accuracy["known_walk"]
    assert walk["frames"] == 72 and walk["towards_camera_m"] > 2.0, "metres of depth to recover"
    assert max(walk["planted_drift_m"]) <= 0.02, walk["planted_drift_m"]
    assert walk["root_error_m"] <= 0.05 * walk["path_m"], walk


def test_a_rigify_metarig_posed_with_known_rotations_comes_back_within_five_degrees(accuracy):
    case = accuracy["metarig"]
    assert case["map"] == "Rigify metarig"
    limb = case["limb"]
    assert limb["mean_deg"] <= LIMB_LIMIT_DEG, limb
    assert max(limb["per_bone_mean_deg"].values()) <= LIMB_LIMIT_DEG, limb["per_bone_mean_deg"]


def test_a_mixamo_named_fbx_like_rig_comes_back_within_five_degrees(accuracy):
    case = accuracy["mixamo"]
    assert case["map"] == "Mixamo"
    assert "mixamorig:LeftForeArm" in case["driven"] and "mixamorig:LeftToeBase" not in case["driven"]
    limb = case["limb"]
    assert limb["mean_deg"] <= LIMB_LIMIT_DEG, limb
    assert max(limb["per_bone_mean_deg"].values()) <= LIMB_LIMIT_DEG, limb["per_bone_mean_deg"]


def test_a_generated_rigify_rig_is_driven_through_its_fk_controls(accuracy):
    case = accuracy["generated"]
    assert case["map"].startswith("Rigify generated")
    assert not [bone for bone in case["driven"] if bone.startswith(("DEF-", "ORG-", "MCH-"))]
    assert {"torso", "upper_arm_fk.L", "shin_fk.R"} <= set(case["driven"])
    assert set(case["switches"].values()) == {1.0}, case["switches"]
    # The deforming bones point where the metarig's did (their twist is Rigify's to spread along the limb).
    assert case["def"]["direction_mean_deg"] <= LIMB_LIMIT_DEG, case["def"]


def test_keys_land_only_on_mapped_bones_on_the_strip_frames(accuracy):
    for name in ("metarig", "mixamo", "generated"):
        case = accuracy[name]
        first = case["bakes"]["first"]
        assert first["bones"] == sorted(case["driven"]), name
        assert first["frames"] == [10, 57]
        channels = 4 * len(case["driven"]) + 3  # a quaternion per bone, the root's location
        assert first["fcurves"] == channels and first["keys"] == channels * 48, name


def test_baking_again_replaces_the_keys_instead_of_adding(accuracy):
    for name in ("metarig", "mixamo", "generated"):
        first, second = accuracy[name]["bakes"]["first"], accuracy[name]["bakes"]["second"]
        assert (second["fcurves"], second["keys"], second["actions"]) == (
            first["fcurves"],
            first["keys"],
            first["actions"],
        ), name


def test_baking_again_with_fewer_bones_clears_the_keys_of_bones_no_longer_driven(accuracy):
    rebake = accuracy["rebake_fewer_bones"]
    driven = rebake["driven"]
    assert "mixamorig:LeftForeArm" not in driven and "mixamorig:LeftHand" not in driven
    assert rebake["keyed_in_range"] == driven, "in the baked frames, only the bones driven now keep keys"
    assert rebake["forearm_frames"] == [rebake["after_range"]], "a key outside the baked frames stays"
    assert rebake["hand_fcurves"] == 0 and rebake["hand_rotation"] == [1.0, 0.0, 0.0, 0.0]
    [(_slot, paths)] = rebake["record"].items()
    assert sorted({path.split('"')[1] for path in paths}) == sorted([*driven, rebake["forearm"]])


def test_a_bone_renamed_while_its_bake_is_solved_fails_that_bake_only_and_says_why(accuracy):
    renamed = accuracy["renamed_during_bake"]
    assert renamed["first"] == {"armature": "metarig", "baked": True}, "the bake queued with it is written"
    failed = renamed["failed"]
    assert failed["armature"] == "Mixamo" and failed["baked"] is False
    assert "has no bones 'mixamorig:LeftForeArm' any more" in failed["error"]
    assert "renamed or deleted after the pose was solved" in failed["error"] and "bake again" in failed["error"]
    assert renamed["last_error"] == failed["error"]
    assert textwrap.wrap(failed["error"], 48)[0] in renamed["panel"], renamed["panel"]
    assert renamed["busy"] is False
    assert renamed["again"] == {"baked": True, "bones": 18}


def test_switches_that_are_not_json_or_not_switches_are_reported_by_the_operator(accuracy):
    for case, reason in (
        ("not_json", "are not valid JSON"),
        ("wrong_shape", "[0] must be [bone name, property, number]"),
    ):
        bad = accuracy["bad_switches"][case]
        assert bad["result"] == [], case
        assert "switches (vfx_mocap_map.switches_json of 'Mixamo')" in bad["error"] and reason in bad["error"]
        assert 'write them as [["bone", "property", number], ...], or [] for none' in bad["error"]
        assert "Traceback" not in bad["error"] and bad["last_error"] in bad["error"]


def test_a_bone_map_is_edited_saved_as_a_preset_and_loaded_back(accuracy):
    presets = accuracy["presets"]
    assert presets["source_after_edit"] == "CUSTOM" and presets["edit_keeps_the_map"] is True
    assert presets["saved"]["format"] == "vfx-mocap-bone-map"
    assert presets["saved"]["bones"]["forearm.L"] == "mixamorig:LeftForeArm"
    assert presets["broken_lacks"] == ["mixamorig:LeftForeArm"]
    assert presets["restored"] is True
    assert presets["bad_preset"]["result"] == []
    assert "unknown roles ['elbow.L']" in presets["bad_preset"]["error"]


def test_the_panels_draw_only_properties_and_operators_that_exist(accuracy, live):
    detected = accuracy["detected_panels"]
    assert len(detected["panels"]) == 4, "Pose to Armature and Live Pose, in the 3D viewport and the Sequencer"
    assert {"vfxmocap.bake_pose", "vfxmocap.pose_control_video", "vfxmocap.live_start"} <= set(detected["operators"])
    assert any(label.startswith("Mixamo: 18 bones driven") for label in detected["labels"]), detected["labels"]
    custom = accuracy["presets"]["custom_panels"]
    assert custom["props"].count("bone") >= 2 * 27, "one line per part, chain link and anchor, in both editors"
    assert {"vfxmocap.live_stop", "vfxmocap.live_record"} <= set(live["panels_while_live"]["operators"])


# -- several people ----------------------------------------------------------------------------------------------


def test_one_armature_per_person_each_following_its_own_person(people):
    assert people["errors"] == []
    armatures = people["armatures"]
    assert len(armatures) == len(people["tracks"]) >= 3
    assert sorted(a["person"] for a in armatures.values()) == [t["number"] for t in people["tracks"]]
    assert armatures["metarig"]["person"] == people["chosen"], "the chosen armature follows the chosen person"
    assert len({a["action"] for a in armatures.values()}) == len(armatures), "each its own animation"


def test_hands_and_face_stay_with_the_main_person(people):
    """Hands on (the default) bakes another person without fingers; a Face Mesh with another person is refused
    with a message naming the main person and the fix."""
    assert people["hands_on"] is True and people["errors"] == []
    result, error = people["face_refused"]
    assert result is None, "refused with an error report"
    assert "main person only" in error and "set Person to 0" in error, error


def test_a_chosen_pedestrians_root_path_is_continuous(people):
    """vtest.avi runs at 10 fps: a walker moves about 0.14 m a frame; a jump to another pedestrian would be
    metres. Every frame the person is seen, and every held or interpolated one between, moves less than 0.25 m
    (the rig is a little larger than the pedestrians, and MediaPipe jitters on people 70 px tall)."""
    chosen = people["armatures"]["metarig"]
    root, seen = np.array(chosen["root"]), np.array(chosen["seen"])
    frames = np.flatnonzero(seen)
    path = root[frames[0] : frames[-1] + 1]
    steps = np.linalg.norm(np.diff(path, axis=0), axis=-1)
    assert steps.max() < 0.25, steps.round(3).tolist()
    assert np.linalg.norm(path[-1] - path[0]) > 0.3, "the pedestrian walks somewhere"


# -- the sample video through the daemon --------------------------------------------------------------------------


def test_baking_a_strip_runs_pose_then_bakes_aligned_with_the_strip(media):
    assert media["job"]["state"] == "succeeded"
    assert media["strip"] == {"start": 5, "duration": 270}
    assert media["report"]["frames"] == [5, 274]
    unsmoothed = media["unsmoothed"]
    assert (unsmoothed["first_frame"], unsmoothed["last_frame"], unsmoothed["frame_sets"]) == (5, 274, 1)
    assert media["arm_turns_deg"] > 10.0, "the characters' arms move"


def test_the_baked_action_has_no_nan_no_flips_and_keys_only_on_mapped_bones(media):
    for bake in ("unsmoothed", "smoothed"):
        summary = media[bake]
        assert summary["nan"] == 0
        assert summary["min_consecutive_dot"] >= 0.0, f"{bake}: a quaternion flipped sign between frames"
        assert summary["keyed_bones"] == sorted(media["driven"])


def test_frames_without_a_person_take_the_first_sighting_and_unseen_legs_stay_at_rest(media):
    assert 0 in media["absent_frames"], "Megamind.avi opens on a black frame"
    assert media["first_present"] >= 1
    assert media["lead_max_change"] < 1e-5
    assert media["ankles_ever_seen"] is False and media["legs_at_rest"] is True


def test_each_bake_keeps_a_quality_report_and_the_panel_shows_it(media):
    quality = media["quality"]
    report = quality["report"]
    assert report["cuts"] == [1, 98, 154, 200] and report["frames"] == 270
    assert report["frames_without_person"] == len(media["absent_frames"])
    assert (report["person"], report["people"]) == (1, 1)
    bones = report["bones"]
    assert set(bones) == set(media["driven"])
    legs = [bone for bone in bones if bone.startswith(("shin", "foot"))]
    assert set(legs) <= set(report["unsure_bones"]), "legs never seen: unsure"
    assert max(v["confidence"] for v in bones.values()) > 0.5, "the upper body is seen"
    assert max(bones[bone]["confidence"] for bone in legs) < 0.1 and bones["shin.L"]["frames_held"] == 270
    assert report["foot_contacts"]["left"] == {"frames": 0, "steps": 0}, "no feet in view: no contacts"
    assert (
        quality["kept"].endswith("bake_reports/metarig.json") and quality["file_matches"] and quality["action_matches"]
    )
    assert quality["bone_confidence"] == {bone: pytest.approx(v["confidence"]) for bone, v in bones.items()}
    panel = quality["panel"]
    assert "Quality of 'metarig'" in panel
    assert any(line.startswith("Shot cuts at clip frames 1, 98, 154, 200") for line in panel), panel


def test_shot_cuts_are_found_and_the_root_does_not_jump_at_them(media):
    cuts = media["cuts"]
    assert cuts["shot_starts"] == [0, 1, 98, 154, 200], "Megamind.avi's cuts, as a viewer sees them"
    assert max(cuts["root_step_at_cuts"]) <= cuts["root_step_within_shots_max"], cuts
    # Clip frame 97 is the last of its shot: its key holds until the cut (no blend between frames).
    assert media["interpolation_at_frames"] == {"101": "BEZIER", "102": "CONSTANT", "103": "BEZIER"}


def test_smoothing_rebakes_over_the_same_keys(media):
    smoothed, unsmoothed = media["smoothed"], media["unsmoothed"]
    assert (smoothed["fcurves"], smoothed["keys"]) == (unsmoothed["fcurves"], unsmoothed["keys"])
    assert media["actions"] == 1
    # Within shots: the turn across a cut is the cut, which is never smoothed.
    calmer = smoothed["min_consecutive_dot_within_shots"] > unsmoothed["min_consecutive_dot_within_shots"]
    assert calmer, "smoothing calms frame-to-frame turns"


def test_key_reduction_keeps_the_curves_within_the_tolerance(media):
    reduced = media["reduced"]
    assert reduced["nan"] == 0 and reduced["fcurves"] == media["smoothed"]["fcurves"]
    assert reduced["keys"] < media["smoothed"]["keys"] / 3
    assert reduced["max_quaternion_deviation"] <= math.radians(0.5) / 2 + 1e-4


def test_the_pose_control_video_is_an_image_sequence_of_skeletons_on_black(media):
    control = media["control"]
    assert (control["type"], control["channel"], control["start"], control["elements"]) == ("IMAGE", 2, 5, 270)
    assert '"skeleton_background": "black"' in control["params"] and '"render_skeleton": true' in control["params"]
    assert '"face": true' in control["params"], "VACE's default pose control has the face's points"
    assert control["last_error"] == ""
    images = [cv2.imread(str(Path(control["directory"]) / name)) for name in control["files"]]
    assert images[0].max() == 0, "no person in the first frame: an empty (black) control frame"
    drawn = [image for image in images[1:] if image.max() > 0]
    assert len(drawn) >= len(images) // 2
    for image in drawn:
        assert (image.max(axis=2) == 0).mean() > 0.8, "mostly black background"
        assert (image.max(axis=2) - image.min(axis=2)).max() > 200, "saturated OpenPose colours"
    assert sum(bool((image == 255).all(axis=2).any()) for image in drawn) >= len(drawn) // 2, "white face points"


# -- live ---------------------------------------------------------------------------------------------------------


def test_a_video_file_camera_drives_the_armature_live(live):
    assert live["turned_before_deg"] == 0.0
    assert live["threads_running"] == ["vfx-mocap-live-pose"]
    assert live["applied"] >= 30
    assert live["session"]["state"] == "running" and live["session"]["fps"] > 2  # the rate: scripts/bench
    assert live["daemon_sessions_running"] == 1
    assert live["turned_live_deg"] > 10.0


def test_recording_writes_keys_on_the_mapped_bones_from_the_current_frame(live):
    record = live["record"]
    assert live["recording"] is True and record["recording_after"] is False
    assert record["keyed_bones"] == sorted(live["driven"])
    assert record["first_frame"] == 20.0
    [keys] = record["keys_per_channel"]
    assert keys >= 30, "36 poses or more, at most one key per timeline frame"
    span = record["last_frame"] - record["first_frame"]
    assert span >= keys - 1, "one key per timeline frame at the most"
    # Keys sit at the timeline frames the poses were captured in, so they span the recording's duration at the
    # scene's rate (a loaded machine may leave gaps between them, never stretch them; the first pose may have been
    # captured up to one latency, well under half a second, before the click).
    assert span <= (live["recorded_s"] + 0.5) * record["fps"]
    assert record["nan"] == 0


def test_stopping_cleans_up_the_thread_and_the_daemons_session(live):
    # the thread was held in its last step until after the click: a Stop that waited would take its 10 s timeout
    assert live["stop_operator_ms"] < 5_000 and live["alive_after_stop"], "Stop returns at once"
    assert live["after_stop"] == {
        "threads": [],
        "running": False,
        "state": "stopped",
        "daemon_sessions": 0,
        "error": "",
    }


def test_a_missing_camera_is_shown_and_leaves_nothing_running(live):
    camera = live["camera"]
    assert camera["state"] == "failed"
    assert "could not open camera 7" in camera["error"]
    assert camera["last_error"] == camera["error"]
    assert camera["threads"] == [] and camera["daemon_sessions"] == 0


def test_a_driven_bone_renamed_while_live_stops_live_pose_and_says_why(live):
    renamed = live["bone_renamed"]
    assert "Armature 'metarig' has no bones 'forearm.L' any more (renamed or deleted)" in renamed["error"]
    assert "Start it again" in renamed["error"] and renamed["last_error"] == renamed["error"]
    assert textwrap.wrap(renamed["error"], 48)[0] in renamed["panel"], renamed["panel"]
    assert (renamed["threads"], renamed["daemon_sessions"], renamed["timer_registered"]) == ([], 0, False)


def test_opening_a_file_stops_live_pose_before_it_drives_the_new_files_armature(live):
    opened = live["file_opened"]
    assert opened["running"] is False and opened["error"].startswith("Live pose stopped: another file was opened")
    assert (opened["threads"], opened["daemon_sessions"]) == ([], 0)
    assert opened["applied_after_open"] == 0 and opened["turned_deg"] == 0.0


def test_disabling_the_add_on_stops_live_pose_and_its_session(live):
    assert live["after_disable"] == {
        "threads": [],
        "daemon_gone": True,
        "timer_registered": False,
        "load_pre_handler": False,
    }
    lines = live["daemon_log_session"]
    assert any(line.endswith(" stopped") for line in lines), lines
    assert not any("timed out" in line for line in lines), "stopped by the add-on, not by the TTL"


def test_live_solving_takes_a_few_milliseconds(live):
    assert live["solve_ms_p50"] < 100.0  # a few ms on an idle machine (scripts/bench); this bounds a busy one
    assert np.isfinite(live["latency_ms_p50"])
