"""The face swap job gives what insightface's own pipeline gives: ``FaceAnalysis`` + ``INSwapper.get``.

The reference is insightface as its examples use it: ``FaceAnalysis`` on the same buffalo_l folder
(detection at 640x640, threshold 0.5), the largest face of the reference image as the source, and
``INSwapper.get(frame, face, source, paste_back=True)`` for every face of every frame. The models are the
tiny ONNX stand-ins of ``support/tiny_onnx_faces.py`` with the real signatures; they are built so that the
colour order and the normalisation show in the pixels: the detector looks for warm (red minus blue) blobs, the
recogniser projects all three channels through a random matrix, and the swapper tints each channel by its own
amount from the source identity (through a random, not an identity, ``emap``).

The two paste-backs blend the edge of the face differently on purpose (ours feathers and can colour-correct),
so pixels are compared where the blend does not matter: away from every swapped face (the original frame in
both) and in the middle of each face (the swapped face in both).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.run_context import RecordingContext
from support.tiny_onnx_faces import install_tiny_models

from daemon.devices import Device
from models.face_swap.runner import FaceSwapRunner
from models.media import FrameArray, ImageSequence

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface")

TOM_HANKS = Path(__import__("insightface").__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
FRAMES = (60, 150, 200)
"""Frames of the sample video with two or three lit "faces" for the tiny detector."""
CROP = 128


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("face-reference")
    install_tiny_models(models)
    return models


def sample_frames(video: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    frames = []
    for index in FRAMES:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = capture.read()
        assert ok, f"could not read frame {index} of {video}"
        frames.append(bgr[..., ::-1])
    capture.release()
    return np.stack(frames)


def insightface_swaps(models_dir: Path, frames_rgb: np.ndarray) -> list[tuple[np.ndarray, list]]:
    """For each frame: (RGB frame with every face swapped by insightface, [(face's own result, M)] per face)."""
    from insightface.app import FaceAnalysis
    from insightface.model_zoo import model_zoo

    app = FaceAnalysis(
        name="buffalo_l",
        root=str(models_dir / "insightface"),
        allowed_modules=["detection", "recognition"],
        providers=["CPUExecutionProvider"],
    )
    app.prepare(ctx_id=-1, det_thresh=0.5, det_size=(640, 640))
    swapper = model_zoo.get_model(
        str(models_dir / "insightface" / "models" / "inswapper_128.onnx"), providers=["CPUExecutionProvider"]
    )
    reference = cv2.imread(str(TOM_HANKS))
    source = max(app.get(reference), key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    results = []
    for rgb in frames_rgb:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        faces = app.get(bgr)
        assert faces, "the tiny detector finds the lit faces of the sample video"
        per_face = []
        for face in faces:
            swapped = swapper.get(bgr, face, source, paste_back=True)
            _, matrix = swapper.get(bgr, face, source, paste_back=False)
            per_face.append((swapped[..., ::-1], matrix))
        results.append((rgb, per_face))
    return results


def footprint(matrix: np.ndarray, shape: tuple[int, ...], inset: int) -> np.ndarray:
    """Frame pixels that the crop's square, shrunk by ``inset`` pixels on each side, covers through ``matrix``."""
    square = np.zeros((CROP, CROP), np.float32)
    square[inset : CROP - inset, inset : CROP - inset] = 1.0
    inverse = cv2.invertAffineTransform(matrix)
    warped = cv2.warpAffine(square, inverse, (shape[1], shape[0]), flags=cv2.INTER_LINEAR)
    return warped >= 1.0 - 1e-6 if inset else warped > 0


def test_each_frame_equals_insightfaces_own_swap_away_from_the_blend(models_dir, sample_video, tmp_path):
    frames = sample_frames(sample_video)
    runner = FaceSwapRunner()
    runner.models_dir = models_dir
    runner.load(Device("cpu", "CPU", "float32", onnx_providers=["CPUExecutionProvider"]))
    try:
        params = runner.validate({"colour_correction": False})
        assert params["detect_every"] == 1, "jobs detect on every frame by default, as insightface does"
        result = runner.run(
            {"video": FrameArray(frames), "reference": ImageSequence([TOM_HANKS])},
            params,
            RecordingContext(tmp_path, device=None),
        )
    finally:
        runner.unload()
    ours = [cv2.imread(str(p))[..., ::-1] for p in sorted((tmp_path / "frames").glob("*.png"))]
    reference = insightface_swaps(models_dir, frames)
    assert result.summary["faces_swapped"] == sum(len(per_face) for _, per_face in reference)
    compared_faces = 0
    for out, (original, per_face) in zip(ours, reference, strict=True):
        anywhere = np.zeros(original.shape[:2], bool)
        for _, matrix in per_face:
            anywhere |= footprint(matrix, original.shape, 0)
        assert np.array_equal(out[~anywhere], original[~anywhere]), "away from the faces: the original frame"
        for index, (theirs, matrix) in enumerate(per_face):
            core = footprint(matrix, original.shape, CROP // 4)
            for other, (_, other_matrix) in enumerate(per_face):
                if other != index:
                    core &= ~footprint(other_matrix, original.shape, 0)
            if core.sum() < 100:
                continue  # this face's middle is covered by another face
            compared_faces += 1
            difference = np.abs(out[core].astype(int) - theirs[core].astype(int))
            assert difference.max() <= 2, f"the middle of face {index} is insightface's swap (max {difference.max()})"
            assert np.abs(theirs[core].astype(int) - original[core]).mean() > 3, "and the swap changed it"
    assert compared_faces >= 3
