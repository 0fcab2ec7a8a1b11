"""The face_swap mode: tiny ONNX models in the real signatures, loaded by insightface's own code, on real media.

The tiny detector (see ``support/tiny_onnx_faces.py``) fires on bright, warm blobs, so the real frames of
Megamind.avi and insightface's bundled photos give it faces at known places (two or three a frame), and its
black first frame gives none. Everything downstream (alignment, recognition, inswapper, colour correction,
mouth mask, paste-back, enhancer, tracking, the daemon's job path) runs for real on those detections.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from support.daemon_process import DaemonProcess
from support.run_context import RecordingContext
from support.tiny_onnx_faces import (
    BOX_STRIDES,
    BUILDERS,
    DETECTOR_STRIDE,
    MANIFEST_NAMES,
    REQUIRED_ROLES,
    install_tiny_models,
    mean_face_68,
    real_manifest_entries,
    write_test_manifest,
)

from daemon.devices import Device
from models.face_swap import analysis as face_analysis
from models.face_swap.blend import crop_mask, mouth_mask, paste_back, transfer_colour
from models.face_swap.runner import FaceSwapRunner
from models.manifest import load_manifest
from models.media import FrameArray, ImageSequence, VideoFile
from models.runner import InvalidInput, JobCancelled
from shared.errors import RemoteError

# insightface's alignment calls scikit-image and numpy APIs that announce future changes; that is its business.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface")

INSIGHTFACE_IMAGES = Path(__import__("insightface").__file__).parent / "data" / "images"
TOM_HANKS = INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png"
GROUP_PHOTO = INSIGHTFACE_IMAGES / "t1.jpg"
CLIP_FRAMES = 12


def read_frames(path: Path, start: int, count: int) -> np.ndarray:
    """RGB frames of a video, decoded the way the daemon decodes them."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, bgr = capture.read()
        assert ok, f"could not read frame {start + len(frames)} of {path}"
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def swap_regions(shape: tuple[int, ...], kps: np.ndarray) -> np.ndarray:
    """Where a swap of faces with landmarks ``kps`` (F, 5, 2) may change pixels: the 128x128 inswapper crops
    aligned by insightface's own ``estimate_norm``, mapped back into the frame (grown by 2 pixels for the
    bilinear warp)."""
    from insightface.utils import face_align

    region = np.zeros(shape[:2], np.uint8)
    for points in kps:
        inverse = cv2.invertAffineTransform(face_align.estimate_norm(points, 128))
        corners = np.array([[0, 0, 1], [128, 0, 1], [128, 128, 1], [0, 128, 1]], np.float64) @ inverse.T
        cv2.fillConvexPoly(region, np.round(corners).astype(np.int32), 1)
    return cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)


@pytest.fixture
def face_client(face_swap_daemon):
    with face_swap_daemon.client(timeout=30.0) as c:
        yield c


def direct_run(runner, tmp_path: Path, inputs: dict[str, Any], **params: Any):
    ctx = RecordingContext(tmp_path, device=None)
    result = runner.run(inputs, runner.validate(params), ctx)
    return result, ctx


def output_frames(folder: Path, count: int) -> np.ndarray:
    return np.stack([read_rgb(folder / "frames" / f"{i:06d}.png") for i in range(count)])


def follow_job(client, job_id: str, timeout: float = 120.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Collect a subscribed job's events until it reaches a final state."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.poll_events(timeout=0.5)
        events += [e for e in batch if e.get("job_id") == job_id]
        job = client.job(job_id)
        if job["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return job, events
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


# -- the tiny models and the manifest ---------------------------------------------------------------------------


def test_tiny_models_route_through_insightface_like_the_real_files(tiny_face_models):
    from insightface.model_zoo import model_zoo

    paths = {role: tiny_face_models / real_manifest_entries()[name]["path"] for role, name in MANIFEST_NAMES.items()}
    routed = {role: model_zoo.get_model(str(paths[role]), providers=["CPUExecutionProvider"]) for role in paths}
    assert {role: type(m).__name__ for role, m in routed.items() if role != "enhancer"} == {
        "detector": "SCRFD",
        "recognition": "ArcFaceONNX",
        "landmarks": "Landmark",
        "swapper": "INSwapper",
        "swapper_fp16": "INSwapper",
    }
    detector = routed["detector"]
    assert detector.use_kps and detector.fmc == 3 and detector._num_anchors == 2, "det_10g: 9 outputs, 2 anchors"
    names = ["448", "471", "494", "451", "474", "497", "454", "477", "500"]
    widths = [1, 1, 1, 4, 4, 4, 10, 10, 10]
    assert [(o.name, o.shape[1]) for o in detector.session.get_outputs()] == list(zip(names, widths, strict=True))
    assert routed["recognition"].input_size == (112, 112) and routed["recognition"].output_shape[1] == 512
    assert routed["recognition"].input_mean == 127.5, "normalised outside the graph, as w600k_r50"
    assert routed["landmarks"].taskname == "landmark_3d_68"
    for role in ("swapper", "swapper_fp16"):
        assert routed[role].emap.shape == (512, 512) and routed[role].input_names == ["target", "source"]
    import onnxruntime

    enhancer = onnxruntime.InferenceSession(str(paths["enhancer"]), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in enhancer.get_inputs()] == [("input", [1, 3, 512, 512])]


def test_manifest_lists_the_face_swap_files_where_the_runner_looks():
    manifest = load_manifest()
    required = [manifest[name] for name in FaceSwapRunner.weights]
    assert all(item.modes == ("face_swap",) for item in required)
    assert {item.path for item in required} == {
        face_analysis.DETECTOR_FILE,
        face_analysis.RECOGNITION_FILE,
        face_analysis.LANDMARKS_FILE,
        face_analysis.SWAPPER_FILES["fp32"],
    }
    assert manifest["inswapper_128_fp16"].path == face_analysis.SWAPPER_FILES["fp16"]
    assert manifest["inswapper_128_fp16"].modes == ("face_swap_fp16",)
    assert manifest["gfpgan_1.4"].path == face_analysis.ENHANCER_FILE
    assert manifest["gfpgan_1.4"].modes == ("face_enhance",)
    assert manifest["inswapper_128"].size == 554_253_681 and manifest["buffalo_l-det_10g"].size == 16_923_827
    assert all(item.path.startswith("insightface/models/") for item in required), "insightface's root layout"


# -- blending ---------------------------------------------------------------------------------------------------


def test_paste_back_writes_only_where_the_warped_mask_is_positive():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    original = frame.copy()
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    angle, scale = np.deg2rad(20), 128 / 90
    matrix = np.array(
        [[scale * np.cos(angle), -scale * np.sin(angle), -120.0], [scale * np.sin(angle), scale * np.cos(angle), -40.0]]
    )
    mask = crop_mask(128, 0.1)
    box = paste_back(frame, crop, matrix, mask)
    assert box is not None
    changed = np.any(frame != original, axis=2)
    x1, y1, x2, y2 = box
    outside = np.ones_like(changed)
    outside[y1:y2, x1:x2] = False
    assert changed.sum() > 1000 and not changed[outside].any(), "nothing outside the warped crop's box changes"
    weight = cv2.warpAffine(mask, cv2.invertAffineTransform(matrix), (300, 200), flags=cv2.INTER_LINEAR)
    assert not changed[weight == 0].any(), "pixels the mask does not cover keep their exact value"
    assert paste_back(frame, crop, matrix + np.array([[0, 0, 5000], [0, 0, 0]]), mask) is None, "a crop off the frame"


def test_crop_mask_is_zero_at_the_border_and_feathers_inwards():
    hard, soft = crop_mask(128, 0.0), crop_mask(128, 0.2)
    for mask in (hard, soft):
        assert mask[:2].max() == mask[-2:].max() == mask[:, :2].max() == mask[:, -2:].max() == 0.0
        assert mask[64, 64] == pytest.approx(1.0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    ramp = soft[64, :64]
    assert np.all(np.diff(ramp) >= -1e-6) and 0.05 < ramp[20] < 0.95, "a smooth ramp from the edge inwards"


def test_colour_transfer_takes_the_reference_statistics_inside_the_mask():
    rng = np.random.default_rng(2)
    crop = np.clip(rng.normal(90, 20, (128, 128, 3)), 0, 255).astype(np.uint8)
    reference = np.clip(rng.normal((170, 120, 100), 15, (128, 128, 3)), 0, 255).astype(np.uint8)
    mask = crop_mask(128, 0.1)
    corrected = transfer_colour(crop, reference, mask)
    inside = mask > 0.5
    for channel in range(3):
        assert abs(corrected[..., channel][inside].mean() - reference[..., channel][inside].mean()) < 4


def test_mouth_mask_covers_the_lips():
    lips = mean_face_68()[48:60, :2] * 40 + 64
    mask = mouth_mask(lips, 128)
    centre = np.round(lips.mean(axis=0)).astype(int)
    assert mask[centre[1], centre[0]] == pytest.approx(1.0) and mask[5, 5] == 0.0


# -- the runner, called directly --------------------------------------------------------------------------------


def test_largest_reference_face_and_index_choice(face_swap_runner, tmp_path):
    video = FrameArray(read_frames(Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi"), 20, 2))
    largest, _ = direct_run(
        face_swap_runner, tmp_path / "a", {"video": video, "reference": ImageSequence([GROUP_PHOTO])}
    )
    faces = largest.summary["source_face"]["faces_in_reference"]
    assert faces >= 3, "the tiny detector finds several blobs in the group photo"
    first, _ = direct_run(
        face_swap_runner,
        tmp_path / "b",
        {"video": video, "reference": ImageSequence([GROUP_PHOTO])},
        source_face_index=0,
    )
    assert first.summary["source_face"]["index"] == 0
    box = first.summary["source_face"]["box"]
    assert box[0] <= min(largest.summary["source_face"]["box"][0], box[0]), "index 0 is the leftmost face"
    assert not np.array_equal(output_frames(tmp_path / "a", 2), output_frames(tmp_path / "b", 2)), (
        "another source identity gives another result"
    )
    with pytest.raises(InvalidInput) as err:
        direct_run(
            face_swap_runner,
            tmp_path / "c",
            {"video": video, "reference": ImageSequence([GROUP_PHOTO])},
            source_face_index=40,
        )
    assert err.value.field == "source_face_index" and f"has {faces} face(s)" in err.value.message


def test_detection_runs_every_n_frames_and_again_after_a_cut(face_swap_runner, sample_video, tmp_path):
    shot_a = read_frames(sample_video, 60, 6)
    shot_b = read_frames(sample_video, 150, 4)
    clip = FrameArray(np.concatenate([shot_a, shot_b]))
    reference = ImageSequence([TOM_HANKS])
    result, _ = direct_run(
        face_swap_runner, tmp_path / "cut", {"video": clip, "reference": reference}, detect_every=100
    )
    detected, tracked, face_frame = (result.arrays[k] for k in ("detected", "face_tracked", "face_frame"))
    assert detected.tolist() == [True] + [False] * 5 + [True] + [False] * 3, "tracked, found again at the cut"
    assert np.array_equal(tracked, ~detected[face_frame]), "faces of frames without detection are tracked ones"
    sides = result.arrays["face_box"][:, 2:] - result.arrays["face_box"][:, :2]
    assert np.all((sides > 0.8 * 144) & (sides < 1.25 * 144)), "tracked boxes keep the detected size (144 px)"

    every, _ = direct_run(
        face_swap_runner, tmp_path / "every", {"video": FrameArray(shot_a), "reference": reference}, detect_every=2
    )
    assert every.arrays["detected"][::2].all(), "at least every second frame"
    assert every.summary["detections"] < 6 and every.arrays["face_tracked"].any()


def test_scene_cuts_are_told_from_motion(sample_video):
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in read_frames(sample_video, 196, 6)]
    thumbs = [face_analysis.thumbnail(g) for g in grey]
    changes = [face_analysis.scene_changed(a, b) for a, b in itertools.pairwise(thumbs)]
    assert changes == [False, False, False, True, False], "Megamind.avi cuts between its frames 199 and 200"


def test_mouth_mask_keeps_the_original_mouth_and_the_enhancer_changes_only_faces(
    face_swap_runner, sample_video, tmp_path
):
    frames = read_frames(sample_video, 30, 3)
    inputs = {"video": FrameArray(frames), "reference": ImageSequence([TOM_HANKS])}
    plain, _ = direct_run(face_swap_runner, tmp_path / "plain", inputs)
    mouth, _ = direct_run(face_swap_runner, tmp_path / "mouth", inputs, mouth_mask=True)
    enhanced, _ = direct_run(face_swap_runner, tmp_path / "enhanced", inputs, enhance=True, enhance_strength=1.0)
    plain_out, mouth_out = output_frames(tmp_path / "plain", 3), output_frames(tmp_path / "mouth", 3)
    enhanced_out = output_frames(tmp_path / "enhanced", 3)

    # The tiny 1k3d68 returns insightface's mean face in the crop around each box: lip centre known in advance.
    lip_centre = mean_face_68()[48:60, :2].mean(axis=0)
    kept = changed_without = 0
    for index, box in zip(mouth.arrays["face_frame"], mouth.arrays["face_box"], strict=True):
        centre = (box[:2] + box[2:]) / 2 + lip_centre * 0.75 * (box[2:] - box[:2]).max()
        x, y = np.round(centre).astype(int)
        if not (0 <= x < frames.shape[2] and 0 <= y < frames.shape[1]):
            continue
        kept += np.array_equal(mouth_out[index, y, x], frames[index, y, x])
        changed_without += not np.array_equal(plain_out[index, y, x], frames[index, y, x])
    assert kept >= 3 and changed_without >= 2, (kept, changed_without)

    assert enhanced.summary["enhanced"] and not plain.summary["enhanced"]
    differs = np.any(enhanced_out != plain_out, axis=3)
    assert differs.sum() > 1000, "the enhancer's blur shows"
    faces = plain.arrays
    for index in range(3):
        kps = faces["face_kps"][faces["face_frame"] == index]
        region = np.zeros(frames.shape[1:3], bool)
        for points in kps:
            matrix, _ = cv2.estimateAffinePartial2D(points, face_analysis.FFHQ_TEMPLATE_512, method=cv2.LMEDS)
            inverse = cv2.invertAffineTransform(matrix)
            corners = np.array([[0, 0, 1], [512, 0, 1], [512, 512, 1], [0, 512, 1]], np.float64) @ inverse.T
            polygon = np.zeros_like(region, np.uint8)
            cv2.fillConvexPoly(polygon, np.round(corners).astype(np.int32), 1)
            region |= cv2.dilate(polygon, np.ones((5, 5), np.uint8)).astype(bool)
        assert not differs[index][~region].any(), "the enhancer touches nothing outside its face crops"


def test_fp16_swapper_and_missing_optional_weights(face_swap_runner, tiny_face_models, sample_video, tmp_path):
    inputs = {"video": FrameArray(read_frames(sample_video, 40, 2)), "reference": ImageSequence([TOM_HANKS])}
    half, _ = direct_run(face_swap_runner, tmp_path, inputs, swapper_precision="fp16")
    assert half.summary["swapper"] == "inswapper_128_fp16" and half.summary["faces_swapped"] > 0
    auto, _ = direct_run(face_swap_runner, tmp_path / "auto", inputs)
    assert auto.summary["swapper"] == "inswapper_128", "fp32 off CUDA"

    # On a CUDA device (described as the daemon describes it; the sessions still run on the CPU here) auto
    # takes the fp16 swapper when it is installed.
    on_cuda = FaceSwapRunner()
    on_cuda.models_dir = tiny_face_models
    on_cuda.load(Device(kind="cuda", name="test", dtype="float16", onnx_providers=["CPUExecutionProvider"]))
    cuda_auto, _ = direct_run(on_cuda, tmp_path / "cuda", inputs)
    assert cuda_auto.summary["swapper"] == "inswapper_128_fp16"
    on_cuda.unload()

    bare = FaceSwapRunner()
    bare.models_dir = tmp_path / "only-required"
    install_tiny_models(bare.models_dir, REQUIRED_ROLES)
    with pytest.raises(InvalidInput) as err:
        bare.validate({"enhance": True})
    assert err.value.field == "enhance"
    assert "gfpgan_1.4.onnx" in err.value.message and "python -m daemon fetch-models face_enhance" in err.value.message
    with pytest.raises(InvalidInput) as err:
        bare.validate({"swapper_precision": "fp16"})
    assert "inswapper_128_fp16.onnx" in err.value.message and "fetch-models face_swap_fp16" in err.value.message
    with pytest.raises(InvalidInput, match="multiple of 32"):
        bare.validate({"det_size": 500})
    assert bare.validate({})["swapper_precision"] == "auto"


def test_cancel_stops_between_frames(face_swap_runner, sample_video, tmp_path):
    inputs = {"video": VideoFile(sample_video, 10, 40), "reference": ImageSequence([TOM_HANKS])}
    ctx = RecordingContext(tmp_path, cancel_after=6, device=None)
    with pytest.raises(JobCancelled):
        face_swap_runner.run(inputs, face_swap_runner.validate({}), ctx)
    written = sorted((tmp_path / "frames").glob("*.png"))
    assert 0 < len(written) < 30 and ctx.progress_calls[-1][0] < 1.0


def test_unload_then_load_again(tiny_face_models, sample_video, tmp_path):
    swap = FaceSwapRunner()
    swap.models_dir = tiny_face_models
    swap.load(None)
    swap.unload()
    with pytest.raises(RuntimeError, match="before load"):
        swap.run({}, swap.validate({}), RecordingContext(tmp_path, device=None))
    swap.load(None)
    inputs = {"video": FrameArray(read_frames(sample_video, 50, 1)), "reference": ImageSequence([TOM_HANKS])}
    result, _ = direct_run(swap, tmp_path, inputs)
    assert result.frame_count == 1
    swap.unload()


# -- through the daemon -----------------------------------------------------------------------------------------


def test_face_swap_job_on_the_sample_video(face_client, sample_video):
    spec = {"path": str(sample_video), "frame_start": 0, "frame_end": CLIP_FRAMES}
    face_client.submit(
        "swap-megamind",
        "face_swap",
        {"detect_every": 4},
        {"video": spec, "reference": {"path": str(TOM_HANKS)}},
        subscribe=True,
    )
    job, events = follow_job(face_client, "swap-megamind")
    assert job["state"] == "succeeded", job["error"]
    summary, arrays = face_client.result("swap-megamind")
    assert job["frame_count"] == summary["frame_count"] == CLIP_FRAMES
    assert (summary["width"], summary["height"]) == (720, 528)

    frames = read_frames(sample_video, 0, CLIP_FRAMES)
    outputs = np.stack([face_client.frame("swap-megamind", i) for i in range(CLIP_FRAMES)])
    assert outputs.shape == frames.shape and outputs.dtype == np.uint8
    assert len(list(Path(job["output_dir"], "frames").glob("*.png"))) == CLIP_FRAMES

    # Frame 0 is black: no face, written back bit for bit.
    assert not frames[0].any() and np.array_equal(outputs[0], frames[0])
    assert not np.any(arrays["face_frame"] == 0)

    # Every other frame has faces; pixels outside their swap crops are untouched, inside some changed.
    assert summary["frames_swapped"] == CLIP_FRAMES - 1 and arrays["face_swapped"].all()
    for index in range(1, CLIP_FRAMES):
        kps = arrays["face_kps"][arrays["face_frame"] == index]
        region = swap_regions(frames.shape[1:], kps)
        assert np.array_equal(outputs[index][~region], frames[index][~region]), f"frame {index} changed elsewhere"
        assert np.any(outputs[index][region] != frames[index][region]), f"frame {index} was not swapped"

    # Detection reuse: the detector ran on the first frames (frame 0 has nothing to track), then every 4th.
    assert arrays["detected"][:2].all() and summary["detections"] == int(arrays["detected"].sum()) < CLIP_FRAMES
    assert arrays["face_tracked"].any()
    assert np.all(np.isnan(arrays["face_similarity"])), "no identity comparison with target=all"

    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["fraction"] == pytest.approx(1.0)
    previews = [e["preview_jpeg"] for e in progress if e.get("preview_jpeg")]
    assert previews, "progress events carry previews"
    preview = cv2.imdecode(np.frombuffer(previews[-1], np.uint8), cv2.IMREAD_COLOR)
    assert preview is not None and max(preview.shape[:2]) <= 256


def test_matching_swaps_only_the_chosen_identity(face_client):
    face_client.submit(
        "swap-matching",
        "face_swap",
        {"target": "matching", "similarity_threshold": 0.99},
        {
            "video": {"path": str(GROUP_PHOTO)},
            "reference": {"path": str(TOM_HANKS)},
            "target_face": {"path": str(GROUP_PHOTO)},
        },
    )
    job = face_client.wait("swap-matching", timeout=60)
    assert job["state"] == "succeeded", job["error"]
    _, arrays = face_client.result("swap-matching")
    similarity, swapped = arrays["face_similarity"], arrays["face_swapped"]
    assert len(similarity) >= 3 and np.all(np.isfinite(similarity))
    assert np.array_equal(swapped, similarity >= 0.99) and swapped.sum() == 1, similarity
    boxes = arrays["face_box"]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas[swapped][0] == areas.max(), "the target face is the photo's largest face"
    photo = read_rgb(GROUP_PHOTO)
    output = face_client.frame("swap-matching", 0)
    region = swap_regions(photo.shape, arrays["face_kps"][swapped])
    assert np.array_equal(output[~region], photo[~region]) and np.any(output[region] != photo[region])


def test_bad_inputs_are_rejected_naming_the_field(face_client, sample_video, tmp_path):
    video = {"path": str(sample_video), "frame_end": 3}
    reference = {"path": str(TOM_HANKS)}
    refused = [
        ({}, {"video": video}, "inputs.reference", "required"),
        (
            {"similarity_threshold": 1.5},
            {"video": video, "reference": reference},
            "params.similarity_threshold",
            "at most 1",
        ),
        ({"det_size": 500}, {"video": video, "reference": reference}, "params.det_size", "multiple of 32"),
        ({"target": "everyone"}, {"video": video, "reference": reference}, "params.target", "one of all, matching"),
        ({"target": "matching"}, {"video": video, "reference": reference}, "inputs.target_face", "needs a target_face"),
        (
            {"target": "all"},
            {"video": video, "reference": reference, "target_face": reference},
            "inputs.target_face",
            "only used with target=matching",
        ),
    ]
    for index, (params, inputs, field, words) in enumerate(refused):
        with pytest.raises(RemoteError) as err:
            face_client.submit(f"bad-{index}", "face_swap", params, inputs)
        assert err.value.code == "invalid_input" and err.value.detail["field"] == field and words in err.value.message
    assert not any(job["job_id"].startswith("bad-") for job in face_client.jobs()), "refused before queueing"

    black = tmp_path / "black.png"
    cv2.imwrite(str(black), cv2.cvtColor(read_frames(sample_video, 0, 1)[0], cv2.COLOR_RGB2BGR))
    failing = [
        ({}, {"video": video, "reference": {"path": str(black)}}, "inputs.reference", "no face was found"),
    ]
    for index, (params, inputs, field, words) in enumerate(failing):
        face_client.submit(f"fails-{index}", "face_swap", params, inputs)
        job = face_client.wait(f"fails-{index}", timeout=60)
        assert job["state"] == "failed" and job["error"]["code"] == "invalid_input"
        assert job["error"]["detail"]["field"] == field and words in job["error"]["message"]


def test_missing_weights_fail_at_submit_naming_files_and_command(sample_video, tmp_path):
    models = tmp_path / "models"
    install_tiny_models(models, ("detector",))
    manifest = tmp_path / "manifest.toml"
    write_test_manifest(manifest, models, roles=("detector",))
    proc = DaemonProcess(
        extra_args=("--manifest", str(manifest), "--models-dir", str(models), "--device", "cpu"), plugin=False
    ).start()
    try:
        with proc.client() as c:
            readiness = c.health()["modes"]["face_swap"]
            assert readiness["ready"] is False
            (fix,) = readiness["fix"]
            assert f"-m vfx_mocap fetch-models face_swap --models-dir {models}" in fix, "this daemon's folder"
            inputs = {"video": {"path": str(sample_video), "frame_end": 2}, "reference": {"path": str(TOM_HANKS)}}
            started = time.monotonic()
            with pytest.raises(RemoteError) as err:
                c.submit("no-weights", "face_swap", {}, inputs)
            assert time.monotonic() - started < 2.0, "refused at submit, before anything loads"
            assert err.value.code == "weights_missing"
            for path in ("buffalo_l/w600k_r50.onnx", "buffalo_l/1k3d68.onnx", "insightface/models/inswapper_128.onnx"):
                assert path in err.value.message
            assert "det_10g" not in err.value.message, "the file that is there is not reported"
            assert "-m vfx_mocap fetch-models face_swap" in err.value.message
            with pytest.raises(RemoteError) as err:
                c.submit("no-enhancer", "face_swap", {"enhance": True}, inputs)
            assert err.value.detail["field"] == "params.enhance"
            assert "fetch-models face_enhance" in err.value.message
    finally:
        proc.cleanup()


def test_detector_geometry_matches_the_documented_box(tmp_path):
    """The tests above reason about the tiny detector's boxes; keep its documented geometry honest."""
    from insightface.model_zoo import model_zoo

    assert BOX_STRIDES * DETECTOR_STRIDE == 128
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[288:320, 288:320] = (90, 150, 230)  # a warm, bright square filling one 32x32 cell, BGR
    path = tmp_path / "det_10g.onnx"
    onnx.save(BUILDERS["detector"](), str(path))
    detector = model_zoo.get_model(str(path), providers=["CPUExecutionProvider"])
    detector.prepare(0, input_size=(640, 640), det_thresh=0.5)
    boxes, kps = detector.detect(canvas)
    assert boxes.shape[0] == 1
    x1, y1, x2, y2 = boxes[0, :4]
    assert x2 - x1 == pytest.approx(128) and y2 - y1 == pytest.approx(128)
    assert (x1 + x2) / 2 == pytest.approx(304) and (y1 + y2) / 2 == pytest.approx(304), "centred on the blob"
    assert np.all((kps[0] > [x1, y1]) & (kps[0] < [x2, y2]))


def test_health_names_insightfaces_non_commercial_licence(face_client):
    licences = face_client.health()["modes"]["face_swap"]["licences"]
    assert {item["model"] for item in licences} >= {"buffalo_l-det_10g", "inswapper_128"}
    assert all("non-commercial" in item["licence"] for item in licences)
