"""Fixtures shared by the test modules: real media that Debian packages ship, the tiny face-swap models, random
LivePortrait weights, real daemons."""

from __future__ import annotations

from pathlib import Path

import pytest

OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def _opencv_doc_file(name: str) -> Path:
    path = OPENCV_DOC_DATA / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: install the Debian package opencv-doc (apt-get install opencv-doc)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def sample_video() -> Path:
    """Megamind.avi: 270 frames of 720x528 at 23.976 fps, two animated characters talking, upper bodies.
    Its first frame is black."""
    return _opencv_doc_file("Megamind.avi")


@pytest.fixture(scope="session")
def vtest_video() -> Path:
    """vtest.avi: 795 frames of 768x576 at 10 fps, a fixed camera above a yard, several pedestrians at once."""
    return _opencv_doc_file("vtest.avi")


@pytest.fixture(scope="session")
def sample_image() -> Path:
    """messi5.jpg: a 548x342 photo of a footballer running, full body."""
    return _opencv_doc_file("messi5.jpg")


@pytest.fixture(scope="session")
def black_video(tmp_path_factory) -> Path:
    """A second of black 320x240 frames at 24 fps: a camera that sees no face."""
    import cv2
    import numpy as np

    path = tmp_path_factory.mktemp("black") / "black.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (320, 240))
    for _ in range(24):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def tiny_face_models(tmp_path_factory) -> Path:
    """A models folder with every tiny face-swap model (``support/tiny_onnx_faces.py``, optional ones included)
    where the manifest puts the real files. Built once a session: tests read it, never change it."""
    from support.tiny_onnx_faces import BUILDERS, install_tiny_models

    root = tmp_path_factory.mktemp("tiny-face-models")
    install_tiny_models(root, tuple(BUILDERS))
    return root


@pytest.fixture(scope="module")
def face_swap_runner(tiny_face_models):
    """The face-swap runner loaded in this process on the tiny models (one a test module)."""
    from support.tiny_face_swap import loaded_face_swap_runner

    with loaded_face_swap_runner(tiny_face_models) as runner:
        yield runner


@pytest.fixture(scope="module")
def face_swap_daemon(tiny_face_models, tmp_path_factory):
    """A real daemon (one a test module) whose manifest lists the face-swap files with the tiny models' sizes and
    checksums."""
    from support.tiny_face_swap import running_face_swap_daemon

    with running_face_swap_daemon(tiny_face_models, tmp_path_factory.mktemp("face-swap-manifest")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def liveportrait_daemon(tmp_path_factory):
    """A real daemon on the CPU (one a test module) serving random LivePortrait weights at the official shapes
    (``support/liveportrait_weights.py``), with a manifest that lists their sizes and checksums."""
    from support.daemon_process import DaemonProcess
    from support.liveportrait_weights import write_liveportrait_weights
    from test_liveportrait import write_test_manifest

    root = tmp_path_factory.mktemp("live-lp")
    models = root / "models"
    write_liveportrait_weights(models / "liveportrait", seed=0)
    manifest = root / "manifest.toml"
    write_test_manifest(manifest, models, "https://huggingface.co/KwaiVGI/LivePortrait/resolve/main")
    served = ("--manifest", str(manifest), "--models-dir", str(models), "--device", "cpu")
    daemon = DaemonProcess(extra_args=served, plugin=False).start()
    yield daemon
    daemon.cleanup()


@pytest.fixture
def daemon():
    """A real daemon (subprocess) with the test runners plugged in; stopped and removed afterwards."""
    from support.daemon_process import DaemonProcess

    proc = DaemonProcess().start()
    yield proc
    proc.cleanup()


@pytest.fixture
def client(daemon):
    with daemon.client() as c:
        yield c
