"""The pose runner on real footage with real MediaPipe, and the OpenPose skeleton drawing it uses."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.run_context import RecordingContext

from models.media import VideoFile
from models.pose import LANDMARK_MODEL_FILES, PoseRunner, landmark_model_path
from models.runner import InvalidInput, JobCancelled, RunResult
from models.skeleton import (
    JOINT_RADIUS_PX,
    LIMB_OPACITY,
    MEDIAPIPE_POSE_LANDMARKS,
    OPENPOSE18_KEYPOINTS,
    OPENPOSE18_LIMBS,
    OPENPOSE_COLOURS,
    STICK_WIDTH_PX,
    draw_openpose,
    mediapipe_to_openpose18,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKED_FRAMES = 48
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12


@pytest.fixture(scope="module")
def runner() -> Iterator[PoseRunner]:
    pose = PoseRunner()
    pose.load("cpu")
    yield pose
    pose.unload()


def run_pose(
    runner: PoseRunner, video: VideoFile, output_dir: Path, cancel_after: int | None = None, **params: Any
) -> tuple[RunResult, RecordingContext]:
    ctx = RecordingContext(output_dir, cancel_after)
    return runner.run({"video": video}, runner.validate(params), ctx), ctx


@pytest.fixture(scope="module")
def megamind_run(
    runner: PoseRunner, sample_video: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunResult, RecordingContext]:
    """Default parameters on Megamind frames 0..47: frame 0 is black, the others show a character."""
    video = VideoFile(sample_video, frame_end=TRACKED_FRAMES)
    return run_pose(runner, video, tmp_path_factory.mktemp("megamind"))


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


# The runner's contract


def test_importing_the_runner_imports_neither_mediapipe_nor_opencv() -> None:
    check = "import sys, models.pose, models.media; print(sorted({'mediapipe', 'cv2'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


MEMORY_AFTER_JOBS = """
import sys, tempfile
from pathlib import Path
from models.media import VideoFile
from models.pose import PoseRunner
sys.path.insert(0, "tests")
from test_pose_runner import RecordingContext

def resident_mb():
    return next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))

runner = PoseRunner()
runner.load("cpu")
loaded = resident_mb()
for _ in range(2):
    with tempfile.TemporaryDirectory() as out:
        video = VideoFile(sys.argv[1], 0, 110, name="video")  # shots start at frames 0, 1 and 98: three graphs a job
        runner.run({"video": video}, runner.validate({"render_skeleton": False}), RecordingContext(Path(out)))
print(resident_mb() - loaded)
"""


def test_a_pose_job_gives_its_graphs_memory_back(sample_video: Path) -> None:
    # Each MediaPipe graph takes ~120 MB; without handing the freed pages back the process kept about 450 MB more after
    # two jobs than before them (one graph per shot, glibc keeping each closed graph's pages), with it 50-110
    # (Linux: reads /proc).
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_AFTER_JOBS, str(sample_video)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb = int(done.stdout.split()[-1])
    assert grown_mb <= 180, f"{grown_mb} MB more resident after two pose jobs than with the runner loaded"


def test_defaults_are_the_documented_ones() -> None:
    assert PoseRunner().validate({}) == {
        "model_complexity": 1,
        "min_detection_confidence": 0.5,
        "min_tracking_confidence": 0.5,
        "smooth_landmarks": True,
        "people": "one",
        "render_skeleton": True,
        "skeleton_background": "black",
        "hands": False,
        "face": False,
        "face_shapes": "auto",
    }
    assert [slot.name for slot in PoseRunner.inputs] == ["video"]


@pytest.mark.parametrize(
    ("params", "field", "expected"),
    [
        ({"model_complexity": 3}, "model_complexity", "must be at most 2"),
        ({"model_complexity": 1.5}, "model_complexity", "must be a whole number"),
        ({"min_detection_confidence": 1.5}, "min_detection_confidence", "must be at most 1.0"),
        ({"min_tracking_confidence": -0.1}, "min_tracking_confidence", "must be at least 0.0"),
        ({"smooth_landmarks": "yes"}, "smooth_landmarks", "must be true or false"),
        ({"skeleton_background": "white"}, "skeleton_background", "must be one of black, overlay"),
        ({"people": "two"}, "people", "must be one of one, all"),
        ({"people": "all", "hands": True}, "people", "but hands is on: use people=one"),
        ({"people": "all", "face": True}, "people", "but face is on: use people=one"),
        ({"people": "all", "hands": True, "face": True}, "people", "or turn hands and face off"),
        ({"threshold": 0.5}, "threshold", "is not a parameter of this mode"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as error:
        PoseRunner().validate(params)
    assert error.value.field == field
    assert expected in error.value.message


@pytest.mark.parametrize("complexity", [0, 2])
def test_a_landmark_model_missing_from_mediapipe_is_refused_by_name(complexity: int) -> None:
    model = landmark_model_path(complexity)
    assert model is not None and model.name == LANDMARK_MODEL_FILES[complexity]
    if model.is_file():
        assert PoseRunner().validate({"model_complexity": complexity})["model_complexity"] == complexity
        return
    with pytest.raises(InvalidInput) as error:
        PoseRunner().validate({"model_complexity": complexity})
    assert error.value.field == "model_complexity"
    assert model.name in error.value.message and "Use model_complexity 1" in error.value.message


def test_the_full_landmark_model_ships_with_mediapipe() -> None:
    model = landmark_model_path(1)
    assert model is not None and model.is_file()


def test_run_needs_load_and_works_again_after_unload_and_load(sample_video: Path, tmp_path: Path) -> None:
    pose = PoseRunner()
    video = VideoFile(sample_video, frame_start=100, frame_end=102)
    with pytest.raises(RuntimeError, match="before load"):
        run_pose(pose, video, tmp_path)
    pose.load("cpu")
    pose.unload()
    with pytest.raises(RuntimeError, match="before load"):
        run_pose(pose, video, tmp_path)
    pose.load("cpu")
    result, _ = run_pose(pose, video, tmp_path)
    assert result.summary["frames_with_person"] == 2


# Landmarks on Megamind


def test_a_person_is_found_in_most_frames(megamind_run: tuple[RunResult, RecordingContext]) -> None:
    result, _ = megamind_run
    # Measured: 47 of 48 (every frame but the black first one); 269 of 270 over the whole video.
    assert result.arrays["present"].mean() >= 0.9


def test_result_arrays_have_the_documented_shapes_and_dtypes(
    megamind_run: tuple[RunResult, RecordingContext],
) -> None:
    arrays = megamind_run[0].arrays
    assert {name: (array.shape, array.dtype) for name, array in arrays.items()} == {
        "image_landmarks": ((TRACKED_FRAMES, 33, 3), np.float32),
        "world_landmarks": ((TRACKED_FRAMES, 33, 3), np.float32),
        "visibility": ((TRACKED_FRAMES, 33), np.float32),
        "present": ((TRACKED_FRAMES,), np.bool_),
        "shot_cut_distance": ((TRACKED_FRAMES,), np.float32),
        "track_image_landmarks": ((1, TRACKED_FRAMES, 33, 3), np.float32),
        "track_world_landmarks": ((1, TRACKED_FRAMES, 33, 3), np.float32),
        "track_visibility": ((1, TRACKED_FRAMES, 33), np.float32),
        "track_boxes": ((1, TRACKED_FRAMES, 4), np.float32),
        "track_present": ((1, TRACKED_FRAMES), np.bool_),
    }


def test_frames_without_a_person_are_nan_and_the_others_are_not(
    megamind_run: tuple[RunResult, RecordingContext],
) -> None:
    arrays = megamind_run[0].arrays
    present = arrays["present"]
    assert not present[0], "Megamind's first frame is black"
    for name in ("image_landmarks", "world_landmarks", "visibility"):
        assert np.isnan(arrays[name][~present]).all(), name
        assert not np.isnan(arrays[name][present]).any(), name


def test_visibility_is_a_probability(megamind_run: tuple[RunResult, RecordingContext]) -> None:
    arrays = megamind_run[0].arrays
    visibility = arrays["visibility"][arrays["present"]]
    assert visibility.min() >= 0.0 and visibility.max() <= 1.0


def test_landmarks_follow_the_upper_body(megamind_run: tuple[RunResult, RecordingContext]) -> None:
    arrays = megamind_run[0].arrays
    present = arrays["present"]
    shoulders_xy = arrays["image_landmarks"][present][:, [LEFT_SHOULDER, RIGHT_SHOULDER], :2]
    assert ((shoulders_xy > 0.0) & (shoulders_xy < 1.0)).all(), "the shoulders are in the picture"
    world = arrays["world_landmarks"][present]
    shoulder_width_m = np.linalg.norm(world[:, LEFT_SHOULDER] - world[:, RIGHT_SHOULDER], axis=1)
    # Measured 0.29..0.31 m; a unit mix-up (pixels, centimetres, normalised) would be far outside.
    assert ((shoulder_width_m > 0.15) & (shoulder_width_m < 0.6)).all()


def test_summary_describes_the_run(megamind_run: tuple[RunResult, RecordingContext]) -> None:
    import mediapipe

    result = megamind_run[0]
    mediapipe_names = [landmark.name.lower() for landmark in mediapipe.solutions.pose.PoseLandmark]
    assert result.summary == {
        "frame_count": TRACKED_FRAMES,
        "frames_with_person": int(result.arrays["present"].sum()),
        "fps": pytest.approx(23.976, abs=1e-3),
        "width": 720,
        "height": 528,
        "landmark_names": mediapipe_names,
        "shot_starts": [0, 1],
        "tracks": [
            {
                "number": 1,
                "frames": TRACKED_FRAMES - 1,
                "first_frame": 1,
                "last_frame": TRACKED_FRAMES - 1,
                "median_height_px": result.summary["tracks"][0]["median_height_px"],
            }
        ],
        "default_track": 0,
        "hands": False,
        "face": False,
        "face_source": None,
    }
    assert 200 < result.summary["tracks"][0]["median_height_px"] < 528, "the upper body fills most of the frame"


def test_the_same_frames_give_the_same_landmarks_run_after_run(
    runner: PoseRunner, sample_video: Path, tmp_path: Path
) -> None:
    # Reusing one tracking graph across runs would start the second run from the first run's last pose.
    video = VideoFile(sample_video, frame_start=100, frame_end=110)
    first, _ = run_pose(runner, video, tmp_path / "first", render_skeleton=False)
    second, _ = run_pose(runner, video, tmp_path / "second", render_skeleton=False)
    for name, array in first.arrays.items():
        np.testing.assert_array_equal(second.arrays[name], array, err_msg=name)


# Skeleton renders, progress and cancel


def test_one_skeleton_image_per_frame_at_the_source_size(
    megamind_run: tuple[RunResult, RecordingContext],
) -> None:
    result, ctx = megamind_run
    written = sorted((ctx.output_dir / "frames").iterdir())
    assert result.frame_count == TRACKED_FRAMES
    assert [path.name for path in written] == [f"{index:06d}.png" for index in range(TRACKED_FRAMES)]
    assert {read_rgb(path).shape for path in written} == {(528, 720, 3)}


def test_skeletons_are_drawn_in_openpose_colours_where_a_person_is(
    megamind_run: tuple[RunResult, RecordingContext],
) -> None:
    result, ctx = megamind_run
    present = result.arrays["present"]
    for index in range(TRACKED_FRAMES):
        skeleton = read_rgb(ctx.output_dir / "frames" / f"{index:06d}.png")
        assert skeleton.any() == present[index], f"frame {index}"
    # The nose joint is solid red and the neck-to-nose limb 60 % blue over black.
    skeleton = read_rgb(ctx.output_dir / "frames" / "000020.png")
    colours = {tuple(pixel) for pixel in skeleton.reshape(-1, 3)}
    assert (255, 0, 0) in colours
    assert (0, 0, 153) in colours


def test_overlay_draws_the_skeleton_over_the_source_frame(
    runner: PoseRunner, sample_video: Path, tmp_path: Path
) -> None:
    video = VideoFile(sample_video, frame_start=100, frame_end=103)
    result, ctx = run_pose(runner, video, tmp_path, skeleton_background="overlay")
    assert result.frame_count == 3
    for index, source in enumerate(video.frames()):
        changed = (read_rgb(ctx.output_dir / "frames" / f"{index:06d}.png") != source).any(axis=2)
        assert 0.0 < changed.mean() < 0.05, "a thin skeleton over an otherwise untouched frame"


def test_without_render_no_frames_are_written_but_previews_still_come(
    runner: PoseRunner, sample_video: Path, tmp_path: Path
) -> None:
    video = VideoFile(sample_video, frame_start=100, frame_end=112)
    result, ctx = run_pose(runner, video, tmp_path, render_skeleton=False)
    assert result.frame_count == 0
    assert not (tmp_path / "frames").exists()
    assert [i for i, (_, _, preview) in enumerate(ctx.progress_calls) if preview is not None] == [0, 10]


def test_progress_is_reported_per_frame_with_a_preview_every_ten(
    megamind_run: tuple[RunResult, RecordingContext],
) -> None:
    ctx = megamind_run[1]
    fractions = [fraction for fraction, _, _ in ctx.progress_calls]
    assert len(fractions) == TRACKED_FRAMES
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {stage for _, stage, _ in ctx.progress_calls} == {"tracking"}
    previews = {i: preview for i, (_, _, preview) in enumerate(ctx.progress_calls) if preview is not None}
    assert sorted(previews) == [0, 10, 20, 30, 40]
    np.testing.assert_array_equal(previews[20], read_rgb(ctx.output_dir / "frames" / "000020.png"))


def test_cancel_stops_the_run_at_the_next_frame(runner: PoseRunner, sample_video: Path, tmp_path: Path) -> None:
    threads_before = threading.active_count()
    with pytest.raises(JobCancelled):
        run_pose(runner, VideoFile(sample_video), tmp_path, cancel_after=5)
    assert len(list((tmp_path / "frames").iterdir())) == 5
    assert threading.active_count() == threads_before, "the decoding thread stopped with the run"


# OpenPose skeleton drawing


def test_openpose_colours_are_the_hue_wheel_in_20_degree_steps() -> None:
    assert len(OPENPOSE_COLOURS) == len(OPENPOSE18_KEYPOINTS) == 18
    assert OPENPOSE_COLOURS[:4] == ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0))
    assert OPENPOSE_COLOURS[6] == (0, 255, 0)
    assert OPENPOSE_COLOURS[12] == (0, 0, 255)
    assert OPENPOSE_COLOURS[17] == (255, 0, 85)


def test_mediapipe_landmarks_map_to_the_openpose_body() -> None:
    landmarks = np.stack([np.arange(33.0), np.arange(33.0) * 10], axis=1)
    keypoints = mediapipe_to_openpose18(landmarks, np.ones(33), threshold=0.5)
    assert keypoints.shape == (18, 2) and keypoints.dtype == np.float32
    for name in ("nose", "right_shoulder", "left_wrist", "right_ankle", "left_ear"):
        source = MEDIAPIPE_POSE_LANDMARKS.index(name)
        np.testing.assert_array_equal(keypoints[OPENPOSE18_KEYPOINTS.index(name)], landmarks[source])
    np.testing.assert_array_equal(keypoints[OPENPOSE18_KEYPOINTS.index("neck")], [11.5, 115.0])


def test_landmarks_below_the_visibility_threshold_become_nan() -> None:
    visibility = np.ones(33)
    visibility[MEDIAPIPE_POSE_LANDMARKS.index("left_shoulder")] = 0.2
    keypoints = mediapipe_to_openpose18(np.zeros((33, 2)), visibility, threshold=0.5)
    missing = {OPENPOSE18_KEYPOINTS[i] for i in np.flatnonzero(np.isnan(keypoints).any(axis=1))}
    assert missing == {"left_shoulder", "neck"}


def test_draw_openpose_draws_joints_solid_and_limbs_blended_on_a_copy() -> None:
    canvas = np.zeros((100, 200, 3), np.uint8)
    keypoints = np.full((18, 2), np.nan)
    keypoints[OPENPOSE18_KEYPOINTS.index("neck")] = (100, 50)
    keypoints[OPENPOSE18_KEYPOINTS.index("right_shoulder")] = (40, 50)
    drawn = draw_openpose(canvas, keypoints)
    assert not canvas.any(), "the canvas is not changed"
    assert tuple(drawn[50, 100]) == OPENPOSE_COLOURS[1], "the neck joint, solid"
    assert tuple(drawn[50, 40]) == OPENPOSE_COLOURS[2], "the shoulder joint, solid"
    assert tuple(drawn[50, 70]) == (153, 0, 0), "limb 0 (neck to right shoulder) is red at 60 %"
    assert tuple(drawn[58, 70]) == (0, 0, 0), "limbs are about 8 px thick"
    assert not draw_openpose(canvas, np.full((18, 2), np.nan)).any(), "missing keypoints draw nothing"


def whole_frame_openpose(canvas: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The OpenPose drawing as its definition reads: every limb filled on a copy of the whole canvas, the copy
    blended over the whole canvas at 60 %, then the joints drawn solid."""
    limbs = canvas.copy()
    for colour, (start, end) in zip(OPENPOSE_COLOURS, OPENPOSE18_LIMBS, strict=False):
        if np.isnan(keypoints[[start, end]]).any():
            continue
        centre = (keypoints[start] + keypoints[end]) / 2
        dx, dy = keypoints[end] - keypoints[start]
        axes = (round(np.hypot(dx, dy) / 2), STICK_WIDTH_PX)
        outline = cv2.ellipse2Poly(
            (round(centre[0]), round(centre[1])), axes, round(np.degrees(np.arctan2(dy, dx))), 0, 360, 1
        )
        cv2.fillConvexPoly(limbs, outline, colour)
    result = cv2.addWeighted(canvas, 1.0 - LIMB_OPACITY, limbs, LIMB_OPACITY, 0.0)
    for index in np.flatnonzero(~np.isnan(keypoints).any(axis=1)):
        x, y = keypoints[index]
        cv2.circle(result, (round(x), round(y)), JOINT_RADIUS_PX, OPENPOSE_COLOURS[index], thickness=-1)
    return result


def test_draw_openpose_blends_only_around_the_limbs_yet_draws_what_a_whole_frame_blend_draws() -> None:
    rng = np.random.default_rng(7)
    for trial in range(200):
        keypoints = rng.uniform(-60, 260, (18, 2))  # some limbs run off the canvas, on every side
        keypoints[rng.random(18) < 0.2] = np.nan
        canvas = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8) if trial % 2 else np.zeros((150, 200, 3), np.uint8)
        before = canvas.copy()
        np.testing.assert_array_equal(draw_openpose(canvas, keypoints), whole_frame_openpose(canvas, keypoints))
        np.testing.assert_array_equal(canvas, before)


def test_the_schema_offers_only_the_model_complexity_this_mediapipe_ships():
    (complexity,) = [p for p in PoseRunner.describe()["params"] if p["name"] == "model_complexity"]
    assert (complexity["minimum"], complexity["maximum"], complexity["default"]) == (1, 1, 1)
    (live,) = [p for p in PoseRunner.describe()["live"] if p["name"] == "model_complexity"]
    assert (live["minimum"], live["maximum"]) == (1, 1)
