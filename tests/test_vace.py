"""The Wan VACE modes (vace_pose, vace_motion, r2v) and the optical flow behind vace_motion.

Jobs run through a real daemon on the tiny Wan VACE pipeline of ``support/tiny_wan.py``, saved with
``save_pretrained`` into the official repository's layout under a test models folder, and announced by a test
manifest with the real entries' names and paths and the tiny files' sizes and sha256: the daemon's readiness
check, the runners' loading code and the job engine all run as they do on real weights. Optical flow runs on
real frames of the sample video.
"""

from __future__ import annotations

import colorsys
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.daemon_process import DaemonProcess
from support.tiny_depth import build_tiny_depth_anything
from support.tiny_wan import build_tiny_wan_vace, write_tiny_manifest

from daemon.devices import resolve_device
from daemon.registry import ModelRegistry
from models.manifest import WeightSnapshot, load_manifest
from models.runner import InvalidInput
from models.skeleton import draw_openpose
from models.vace.depth import DEPTH_FETCH_MODE, DEPTH_FOLDER, DEPTH_REPOSITORY, DepthEstimator, depth_to_gray
from models.vace.motion import VaceMotionRunner
from models.vace.optical_flow import dense_flow, flow_to_color, flow_video
from models.vace.runner import WAN_VACE_1_3B
from models.vace.windows import Window, join_window, plan_windows
from shared.errors import RemoteError

PROMPT = "a dancer spins on a bright stage"
TINY = {"steps": 2, "width": 32, "height": 16, "seed": 3, "window_frames": 9, "chunk_overlap": 5}
"""Settings the tiny pipeline runs in well under a second per window on two CPU cores."""


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vace_models(tmp_path_factory) -> tuple[Path, Path]:
    """(models folder, manifest): the tiny 1.3B pipeline and the tiny depth model, locked as fetched (no 14B)."""
    base = tmp_path_factory.mktemp("vace")
    models_dir = base / "models"
    build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder)
    build_tiny_depth_anything(models_dir / DEPTH_FOLDER)
    manifest = base / "manifest.toml"
    write_tiny_manifest(manifest, models_dir)
    return models_dir, manifest


@pytest.fixture(scope="module")
def vace_daemon(vace_models):
    """A daemon on the CPU on :func:`vace_models`."""
    models_dir, manifest = vace_models
    proc = DaemonProcess(
        extra_args=("--manifest", str(manifest), "--models-dir", str(models_dir), "--device", "cpu")
    ).start()
    yield proc
    proc.cleanup()


@pytest.fixture
def vclient(vace_daemon):
    with vace_daemon.client(timeout=30.0) as c:
        yield c


@pytest.fixture(scope="module")
def reference_image(tmp_path_factory) -> Path:
    """Tom Hanks' portrait from the insightface wheel: a real subject for the reference image."""
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    package = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    path = (package or Path("insightface")) / "data" / "images" / "Tom_Hanks_54745.png"
    if not path.is_file():
        pytest.fail(f"{path} is missing: reinstall insightface==2.1 (its wheel ships the image)", pytrace=False)
    return path


def skeleton_strip(count: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A stick figure on black waving its right arm, drawn with the pose mode's OpenPose renderer."""
    frames = []
    for i in range(count):
        angle = np.pi / 2 + 0.9 * np.sin(i / 3)
        keypoints = np.full((18, 2), np.nan, dtype=np.float32)
        keypoints[:9] = [[32, 8], [32, 14], [26, 14], [22, 22], [0, 0], [38, 14], [42, 22], [44, 30], [28, 30]]
        keypoints[4] = keypoints[3] + 8 * np.array([np.cos(angle), -np.sin(angle)])
        keypoints[9:14] = [[28, 38], [28, 46], [36, 30], [36, 38], [36, 46]]
        frames.append(draw_openpose(np.zeros((height, width, 3), np.uint8), keypoints))
    return np.stack(frames)


def sample_frames(video: Path, start: int, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, bgr = capture.read()
        assert ok, f"could not read frame {start + len(frames)} of {video}"
        frames.append(np.ascontiguousarray(bgr[..., ::-1]))
    capture.release()
    return frames


def output_frames(job: dict) -> np.ndarray:
    paths = sorted(Path(job["output_dir"], "frames").glob("*.png"))
    return np.stack([cv2.imread(str(p))[..., ::-1] for p in paths])


def events_until_final(client, job_id: str, timeout: float = 60.0) -> list[dict]:
    collected: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = client.poll_events(timeout=0.5)
        collected += [e for e in events if e.get("job_id") == job_id]
        if any(e.get("type") == "state" and e.get("state") in ("succeeded", "failed", "cancelled") for e in events):
            return collected
    raise AssertionError(f"job {job_id} did not finish in {timeout} s; events: {collected[-3:]}")


# -- jobs through the daemon ------------------------------------------------------------------------------


def test_pose_job_makes_one_frame_per_pose_frame_with_progress_and_previews(vclient, reference_image):
    pose = skeleton_strip(7)
    vclient.submit(
        "pose-7",
        "vace_pose",
        {"prompt": PROMPT, **TINY},
        {"reference": {"path": str(reference_image)}, "pose": pose},
        subscribe=True,
    )
    events = events_until_final(vclient, "pose-7")
    job = vclient.job("pose-7")
    assert job["state"] == "succeeded", job["error"]
    frames = output_frames(job)
    assert frames.shape == (7, 16, 32, 3), "one frame per pose frame, at width 32 x height 16"
    summary, _ = vclient.result("pose-7")
    assert summary["frame_count"] == job["frame_count"] == 7
    assert (summary["width"], summary["height"], summary["dtype"], summary["device"]) == (32, 16, "float32", "cpu")
    assert any("generated 9 and kept the first 7" in note for note in summary["notes"]), summary["notes"]
    progress = [e for e in events if e["type"] == "progress"]
    stages = [e["stage"] for e in progress]
    assert "denoising step 1/2" in stages and "denoising step 2/2" in stages
    fractions = [e["fraction"] for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    previews = [e["preview_jpeg"] for e in progress if e["preview_jpeg"]]
    assert previews, "denoising steps send previews"
    decoded = cv2.imdecode(np.frombuffer(previews[0], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (16, 32, 3)


def test_same_seed_same_frames_other_seed_other_frames(vclient, reference_image):
    pose = skeleton_strip(5)
    inputs = {"reference": {"path": str(reference_image)}, "pose": pose}
    for job_id, seed in (("seed-a", 11), ("seed-b", 11), ("seed-c", 12)):
        vclient.submit(job_id, "vace_pose", {"prompt": PROMPT, **TINY, "seed": seed}, inputs)
    jobs = {job_id: vclient.wait(job_id, timeout=60) for job_id in ("seed-a", "seed-b", "seed-c")}
    assert all(job["state"] == "succeeded" for job in jobs.values()), [j["error"] for j in jobs.values()]
    first, again, other = (output_frames(jobs[j]) for j in ("seed-a", "seed-b", "seed-c"))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and np.abs(first.astype(int) - other).mean() > 0.2, "another seed"


def test_a_long_sequence_is_generated_in_windows_that_join_without_a_jump(vclient, reference_image):
    pose = skeleton_strip(21)
    vclient.submit(
        "long-pose",
        "vace_pose",
        {"prompt": PROMPT, **TINY},
        {"reference": {"path": str(reference_image)}, "pose": pose},
    )
    job = vclient.wait("long-pose", timeout=120)
    assert job["state"] == "succeeded", job["error"]
    summary, _ = vclient.result("long-pose")
    windows = [Window(w["start"], w["frames"], w["context"]) for w in summary["windows"]]
    assert windows == plan_windows(21, 9, 5) and len(windows) == 4
    frames = output_frames(job).astype(np.float32)
    assert len(frames) == 21
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    # A join sits where one window's copy hands over to the next: the frame after each overlap.
    joins = [w.start + w.context for w in windows[1:]]
    inside = [i for i in range(len(steps)) if all(abs(i + 1 - j) > 1 for j in joins)]
    assert max(steps[j - 1] for j in joins) <= 1.5 * max(steps[i] for i in inside), (
        f"frame-to-frame change at the joins {[round(float(steps[j - 1]), 2) for j in joins]} vs inside windows "
        f"up to {max(steps[i] for i in inside):.2f}"
    )


def test_cancel_stops_denoising_and_the_pipeline_stays_usable(vclient, reference_image):
    pose = skeleton_strip(9)
    inputs = {"reference": {"path": str(reference_image)}, "pose": pose}
    vclient.submit("cancel-me", "vace_pose", {"prompt": PROMPT, **TINY, "steps": 200}, inputs, subscribe=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = vclient.poll_events(timeout=0.5)
        if any(str(e.get("stage", "")).startswith("denoising step 3/") for e in events):
            break
    else:
        raise AssertionError("the job never reached its third denoising step")
    vclient.cancel("cancel-me")
    job = vclient.wait("cancel-me", timeout=30)
    assert job["state"] == "cancelled" and job["fraction"] < 0.5 and job["frame_count"] == 0
    vclient.submit("after-cancel", "vace_pose", {"prompt": PROMPT, **TINY}, inputs)
    assert vclient.wait("after-cancel", timeout=60)["state"] == "succeeded"


def test_motion_job_follows_a_real_driving_strip(vclient, reference_image, sample_video):
    driving = np.stack(sample_frames(sample_video, 120, 9))
    vclient.submit(
        "motion-9",
        "vace_motion",
        {"prompt": PROMPT, **TINY, "flow_method": "farneback"},
        {"reference": {"path": str(reference_image)}, "driving": driving},
    )
    job = vclient.wait("motion-9", timeout=60)
    assert job["state"] == "succeeded", job["error"]
    summary, _ = vclient.result("motion-9")
    assert output_frames(job).shape == (9, 16, 32, 3)
    assert any(note.startswith("flow_scale_px=") for note in summary["notes"])


def test_depth_control_drives_a_motion_job_through_the_real_depth_model(vclient, reference_image, sample_video):
    modes = vclient.health()["modes"]
    assert modes["vace_motion"]["options"]["control=depth"] == {"ready": True, "missing": [], "fix": []}
    driving = np.stack(sample_frames(sample_video, 120, 9))
    inputs = {"reference": {"path": str(reference_image)}, "driving": driving}
    for control in ("depth", "flow"):
        vclient.submit(f"motion-{control}", "vace_motion", {"prompt": PROMPT, **TINY, "control": control}, inputs)
    jobs = {control: vclient.wait(f"motion-{control}", timeout=60) for control in ("depth", "flow")}
    assert jobs["depth"]["state"] == "succeeded", jobs["depth"]["error"]
    summary, _ = vclient.result("motion-depth")
    assert summary["control"] == "depth" and summary["frame_count"] == 9
    assert any(note.startswith("control=depth: Depth Anything V2 Small") for note in summary["notes"])
    assert not any(note.startswith("flow_scale_px=") for note in summary["notes"])
    assert output_frames(jobs["depth"]).shape == output_frames(jobs["flow"]).shape == (9, 16, 32, 3)
    assert vclient.result("motion-flow")[0]["control"] == "flow"


class StageLog:
    """A RunContext that records stages and never cancels: for a runner's steps called one by one."""

    def __init__(self, device) -> None:
        self.device, self.output_dir, self.stages = device, Path("."), []

    def progress(self, fraction, stage, preview=None) -> None:
        self.stages.append(stage)

    def cancelled(self) -> bool:
        return False

    def raise_if_cancelled(self) -> None:
        pass

    def log(self, message) -> None:
        pass


def test_the_motion_runner_turns_the_driving_frames_into_the_chosen_control(vace_models, sample_video):
    models_dir, _ = vace_models
    runner = VaceMotionRunner()
    runner.models_dir = models_dir
    frames = [cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in sample_frames(sample_video, 120, 5)]
    ctx, notes = StageLog(resolve_device("cpu")), []
    depth = runner.control_frames(frames, runner.validate({"prompt": PROMPT, "control": "depth"}), ctx, notes)
    assert ctx.stages == ["depth maps"] and notes[0].startswith("control=depth")
    assert len(depth) == 5 and all(d.shape == (48, 64, 3) for d in depth)
    assert all(np.array_equal(d[..., 0], d[..., 2]) and d.min() == 0 and d.max() == 255 for d in depth), "grey"
    flow = runner.control_frames(frames, runner.validate({"prompt": PROMPT}), ctx, notes)
    assert ctx.stages[-1] == "optical flow" and notes[-1].startswith("flow_scale_px=")
    assert any(not np.array_equal(f[..., 0], f[..., 2]) for f in flow), "flow is drawn in colour"


def test_depth_maps_are_grey_near_bright_far_dark_at_the_frame_size(vace_models, sample_video):
    ramp = np.tile(np.linspace(0.5, 4.0, 8, dtype=np.float32), (3, 1))  # inverse depth: the right side is nearest
    gray = depth_to_gray(ramp)
    assert gray.shape == (3, 8, 3) and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert gray[0, 0, 0] == 0 and gray[0, -1, 0] == 255 and np.all(np.diff(gray[0, :, 0].astype(int)) > 0)
    assert not depth_to_gray(np.full((2, 2), 3.0)).any(), "no depth range at all: black"

    models_dir, _ = vace_models
    estimator = DepthEstimator(models_dir / DEPTH_FOLDER, resolve_device("cpu"))
    frames = [cv2.resize(f, (96, 64), interpolation=cv2.INTER_AREA) for f in sample_frames(sample_video, 120, 10)]
    maps = estimator.inverse_depth(frames[:2])
    assert [m.shape for m in maps] == [(64, 96)] * 2 and all(m.dtype == np.float32 for m in maps)
    video = estimator.depth_video(frames)
    assert len(video) == 10, "10 frames in two batches"
    for picture, inverse in zip(video[:2], maps, strict=True):
        assert picture.shape == (64, 96, 3) and picture.min() == 0 and picture.max() == 255
        nearest = np.unravel_index(np.argmax(inverse), inverse.shape)
        assert picture[nearest][0] == 255, "the nearest pixel is white"


def test_depth_without_its_model_shows_in_health_naming_the_entry_and_the_command(tmp_path):
    runner = VaceMotionRunner()
    runner.models_dir = tmp_path
    assert runner.validate({"prompt": PROMPT})["control"] == "flow", "flow needs no depth model"
    with pytest.raises(InvalidInput, match="is for control=flow") as err:
        runner.validate({"prompt": PROMPT, "control": "depth", "flow_scale_px": 4.0})
    assert err.value.field == "flow_scale_px"
    registry = ModelRegistry(
        {"vace_motion": VaceMotionRunner}, device=lambda: None, manifest=load_manifest(), models_dir=tmp_path
    )
    option = registry.readiness("vace_motion")["options"]["control=depth"]
    assert option["ready"] is False and option["fix"] == [f"python -m daemon fetch-models {DEPTH_FETCH_MODE}"]
    assert option["missing"] == [f"weights {DEPTH_REPOSITORY} ({DEPTH_FOLDER}): no lock file (never fetched)"]


def test_the_depth_model_is_the_official_small_one_at_a_pinned_commit():
    entry = load_manifest()[DEPTH_REPOSITORY]
    assert isinstance(entry, WeightSnapshot) and entry.modes == (DEPTH_FETCH_MODE,)
    assert (entry.hub_repo, entry.path, entry.licence) == (DEPTH_REPOSITORY, DEPTH_FOLDER, "Apache-2.0")
    assert len(entry.revision) == 40 and int(entry.revision, 16) >= 0, "pinned to a commit"
    assert entry.files == ("config.json", "model.safetensors", "preprocessor_config.json")
    assert [(pin.path, pin.size) for pin in entry.pins] == [("model.safetensors", 99_173_660)]


def test_r2v_job_from_two_references(vclient, reference_image, sample_image):
    vclient.submit(
        "r2v-5",
        "r2v",
        {"prompt": PROMPT, **TINY, "frame_count": 5},
        {"reference": {"path": str(reference_image)}, "reference_2": {"path": str(sample_image)}},
    )
    job = vclient.wait("r2v-5", timeout=60)
    assert job["state"] == "succeeded", job["error"]
    summary, _ = vclient.result("r2v-5")
    assert output_frames(job).shape == (5, 16, 32, 3)
    assert summary["fps"] == 16.0 and summary["mode"] == "r2v"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"width": 40}, "params.width", "multiple of 16"),
        ({"height": 8}, "params.height", "at least 16"),
        ({"window_frames": 10}, "params.window_frames", "4k+1"),
        ({"chunk_overlap": 7}, "params.chunk_overlap", "4k+1"),
        ({"window_frames": 9, "chunk_overlap": 9}, "params.chunk_overlap", "new frames per window"),
        ({"prompt": "   "}, "params.prompt", "empty"),
        ({"steps": 0}, "params.steps", "at least 1"),
        ({"quality": "ultra"}, "params.quality", "draft, standard, high"),
        ({"offload": "gpu"}, "params.offload", "auto, none, model, group, sequential"),
        ({"conditioning_scale": 3.0}, "params.conditioning_scale", "at most 2"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(vclient, reference_image, params, field, words):
    with pytest.raises(RemoteError) as err:
        vclient.submit(
            "bad",
            "vace_pose",
            {"prompt": PROMPT, **TINY, **params},
            {"reference": {"path": str(reference_image)}, "pose": skeleton_strip(5)},
        )
    assert err.value.detail["field"] == field and words in err.value.message, err.value.message


def test_missing_inputs_are_refused_naming_the_input(vclient, reference_image):
    with pytest.raises(RemoteError) as err:
        vclient.submit("no-pose", "vace_pose", {"prompt": PROMPT}, {"reference": {"path": str(reference_image)}})
    assert err.value.detail["field"] == "inputs.pose"
    started = time.monotonic()
    with pytest.raises(RemoteError) as err:
        vclient.submit(
            "short-pose",
            "vace_pose",
            {"prompt": PROMPT, **TINY, "frame_count": 9},
            {"reference": {"path": str(reference_image)}, "pose": skeleton_strip(5)},
        )
    assert err.value.detail["field"] == "inputs.pose"
    assert "has 5 frames but frame_count asks for 9" in err.value.message
    assert time.monotonic() - started < 2.0, "refused at submit, without loading the pipeline"


def test_a_video_as_a_reference_is_refused_at_submit(vclient, reference_image, sample_video):
    clip = {"path": str(sample_video), "frame_start": 100, "frame_end": 103}
    with pytest.raises(RemoteError) as err:
        vclient.submit(
            "video-ref", "vace_pose", {"prompt": PROMPT, **TINY}, {"reference": clip, "pose": skeleton_strip(5)}
        )
    assert err.value.detail["field"] == "inputs.reference"
    assert "is a video of 3 frames" in err.value.message and "frame_end = frame_start + 1" in err.value.message
    with pytest.raises(RemoteError) as err:
        vclient.submit(
            "video-ref-2",
            "r2v",
            {"prompt": PROMPT, **TINY, "frame_count": 5},
            {"reference": {"path": str(reference_image)}, "reference_2": clip},
        )
    assert err.value.detail["field"] == "inputs.reference_2"
    assert not any(job["job_id"].startswith("video-ref") for job in vclient.jobs()), "refused before queueing"
    one_frame = {**clip, "frame_end": 101}
    vclient.submit(
        "frame-ref", "vace_pose", {"prompt": PROMPT, **TINY}, {"reference": one_frame, "pose": skeleton_strip(5)}
    )
    assert vclient.wait("frame-ref", timeout=60)["state"] == "succeeded", "one frame of a video is a still image"


def test_missing_weights_fail_at_once_naming_the_files_and_the_command(vclient, reference_image):
    health = vclient.health()["modes"]
    assert health["vace_pose"]["ready"] and health["vace_motion"]["ready"] and health["r2v"]["ready"]
    assert health["vace_pose_14b"]["ready"] is False
    started = time.monotonic()
    with pytest.raises(RemoteError) as err:
        vclient.submit(
            "big",
            "vace_pose_14b",
            {"prompt": PROMPT, **TINY},
            {"reference": {"path": str(reference_image)}, "pose": skeleton_strip(5)},
        )
    assert time.monotonic() - started < 2.0, "refused at submit, without loading anything"
    assert err.value.code == "weights_missing"
    assert (
        "weights Wan-AI/Wan2.1-VACE-14B-diffusers (Wan2.1-VACE-14B-diffusers): no lock file (never fetched)"
        in err.value.message
    )
    assert "python -m daemon fetch-models vace_pose_14b" in err.value.message
    assert all(job["job_id"] != "big" for job in vclient.jobs())


def test_the_three_modes_share_one_pipeline_released_on_request(vclient, reference_image):
    inputs = {"reference": {"path": str(reference_image)}, "pose": skeleton_strip(5)}
    vclient.submit("share-pose", "vace_pose", {"prompt": PROMPT, **TINY}, inputs)
    vclient.submit("share-r2v", "r2v", {"prompt": PROMPT, **TINY, "frame_count": 5}, {"reference": inputs["reference"]})
    assert vclient.wait("share-pose", timeout=60)["state"] == "succeeded"
    assert vclient.wait("share-r2v", timeout=60)["state"] == "succeeded"
    loaded = {m["mode"] for m in vclient.health()["loaded_models"]}
    assert {"vace_pose", "r2v"} <= loaded
    assert {"vace_pose", "r2v"} <= set(vclient.release_memory())
    assert vclient.health()["loaded_models"] == []
    vclient.submit("after-release", "vace_pose", {"prompt": PROMPT, **TINY}, inputs)
    assert vclient.wait("after-release", timeout=60)["state"] == "succeeded", "a released pipeline loads again"


# -- windows ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "window", "overlap"),
    [(1, 81, 9), (80, 81, 9), (81, 81, 9), (82, 81, 9), (300, 81, 17), (21, 9, 5), (10, 9, 1)],
)
def test_windows_cover_the_sequence_in_4k_plus_1_frames_and_overlap(total, window, overlap):
    windows = plan_windows(total, window, overlap)
    assert windows[0].start == 0 and windows[0].context == 0
    assert all((w.length - 1) % 4 == 0 and w.length <= max(window, total + 3) for w in windows)
    assert windows[-1].end == total if total > window else windows[-1].end >= total
    for previous, current in itertools.pairwise(windows):
        assert current.context == previous.end - current.start >= overlap
        assert current.context < current.length, "every window makes new frames"


def test_the_overlap_cross_fades_from_the_old_window_to_the_new():
    pending = {i: np.full((2, 2, 3), 0, np.uint8) for i in range(4)}
    join_window(pending, Window(start=1, length=5, context=3), np.ones((5, 2, 2, 3), np.float32))
    assert [int(pending[i][0, 0, 0]) for i in range(6)] == [0, 64, 128, 191, 255, 255]


# -- optical flow -----------------------------------------------------------------------------------------


def hue_degrees(rgb: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, np.float64) / 255.0))[0] * 360.0


def shifted(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(frame, matrix, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_flow_of_real_frames_is_one_colour_image_per_frame(sample_video):
    frames = sample_frames(sample_video, 100, 6)
    colors, scales = flow_video(frames, method="dis")
    assert colors.shape == (6, 528, 720, 3) and colors.dtype == np.uint8
    assert len(scales) == 6 and min(scales) >= 1.0
    assert (colors < 250).any(axis=-1).mean() > 0.01, "the talking character's motion shows in colour"


def test_no_motion_is_white(sample_video):
    frame = sample_frames(sample_video, 100, 1)[0]
    colors, _ = flow_video([frame, frame.copy()], method="dis")
    assert colors.min() >= 245, "a still frame is (near) white everywhere"
    assert np.array_equal(flow_to_color(np.zeros((4, 4, 2), np.float32), 1.0), np.full((4, 4, 3), 255, np.uint8))


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize(
    ("dx", "dy", "hue", "direction"),
    [
        (4, 0, 0.0, "right: red"),
        (0, 4, 54.0, "down: orange-yellow"),
        (-4, 0, 191.0, "left: cyan-blue"),
        (0, -4, 261.0, "up: violet"),
    ],
)
def test_a_known_translation_gives_the_expected_hue(sample_video, method, dx, dy, hue, direction):
    frame = cv2.resize(sample_frames(sample_video, 100, 1)[0], (360, 264), interpolation=cv2.INTER_AREA)
    flow = dense_flow(frame, shifted(frame, dx, dy), method)
    np.testing.assert_allclose(np.median(flow[60:-60, 80:-80].reshape(-1, 2), axis=0), [dx, dy], atol=0.5)
    colors = flow_to_color(flow, scale=4.0)[60:-60, 80:-80]
    color = np.median(colors.reshape(-1, 3), axis=0)
    distance = abs((hue_degrees(color) - hue + 180) % 360 - 180)
    assert distance < 12, f"{direction}: got {color} (hue {hue_degrees(color):.0f})"
