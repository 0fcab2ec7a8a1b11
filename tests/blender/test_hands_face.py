"""Hands onto finger bones and face onto shape keys in real Blender (scenario ``blender_side/mocap_hands_face.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(900)

FINGER_LIMIT_DEG = 7.0
BACKWARD_LIMIT_DEG = -5.0
"""The solver's least curl at the middle and end joints (fingers.FINGER_LIMITS_DEG)."""


@pytest.fixture(scope="module")
def record(blender, daemon_python: str, sample_video: Path, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(f"hands-face-{blender.line}")
    options = ["--daemon-python", daemon_python, "--data-dir", str(folder / "data"), "--video", str(sample_video)]
    return blender.run("mocap_hands_face.py", *options)


def test_a_rigify_hand_posed_with_known_curls_and_spreads_comes_back_within_seven_degrees(record):
    fingers = record["fingers"]
    assert fingers["finger_map"] == "Rigify fingers"
    assert fingers["mean_deg"] <= FINGER_LIMIT_DEG, json.dumps(fingers["per_bone_mean_deg"])
    assert fingers["keyed"] == fingers["expected_keyed"], "keys on the body's driven bones and the 30 finger bones"


def test_a_generated_rigify_rig_is_driven_through_its_finger_fk_controls(record):
    generated = record["fingers"]["generated"]
    assert generated["map"].startswith("Rigify generated") and generated["finger_map"] == "Rigify fingers"
    assert len(generated["finger_bones"]) == 30 and generated["keyed_fingers"] == sorted(generated["finger_bones"])
    assert not [bone for bone in generated["finger_bones"] if bone.startswith(("DEF-", "ORG-", "MCH-"))]
    # The deforming bones follow the controls: they turn as the metarig's fingers were posed.
    assert generated["def_mean_deg"] <= FINGER_LIMIT_DEG, json.dumps(generated["def_per_bone_mean_deg"])


def test_megamind_baked_with_hands_and_face_in_one_pass(record):
    media = record["media"]
    assert media["error"] == ""
    assert media["job_params"]["hands"] is True and media["job_params"]["face"] is True
    assert media["hand_frames"][1] > 50 and media["face_frames"] > 200, "the right hand and the face were tracked"
    assert media["nan"] == 0
    assert media["keyed_bones"] == media["expected_bones"]
    assert media["keyed_shapes"] == ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen"], "ARKit names only, not 'smirk'"
    assert media["actions"] == ["Face Face", "metarig Mocap"], "one action for the armature, one for the shape keys"
    assert media["armature_frames"] == media["shape_frames"] == media["strip_frames"]
    assert media["jaw_range"][0] >= 0.0 and media["jaw_range"][1] > 0.3, "the jaw moves as Roxanne and Minion talk"


def test_no_finger_bends_backwards_on_real_footage(record):
    media = record["media"]
    assert media["min_middle_end_curl_deg"] is not None
    assert media["min_middle_end_curl_deg"] >= BACKWARD_LIMIT_DEG - 1.0


def test_the_hands_and_face_panel_draws_its_settings(record):
    panel = record["panel"]
    assert len(panel["panels"]) == 2, "in the Sequencer and the 3D viewport"
    assert {"use_hands", "use_face", "face_mesh", "shape_key_names", "gain_eyes", "smooth_mouth"} <= set(panel["props"])


def test_live_pose_drives_and_records_fingers_and_shape_keys_from_a_video_file(record):
    whole = record["live"]["whole"]
    assert whole["error"] == "" and whole["applied"] >= 40
    assert {"f_index.01.R", "f_pinky.03.R", "thumb.02.R"} <= set(whole["keyed_bones"]), "the right hand's fingers"
    assert whole["keyed_shapes"] == ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen"]
    assert whole["armature_frames"] == whole["shape_frames"] and whole["armature_frames"][0] == 20
    assert whole["nan"] == 0
    body = record["live"]["body"]
    assert body["error"] == "" and body["applied"] >= 40
