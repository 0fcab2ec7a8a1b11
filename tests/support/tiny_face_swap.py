"""The face-swap mode on the tiny models of ``tiny_onnx_faces.py``, ready for a test: loaded in this process, or
served by a real daemon whose manifest lists the tiny files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.face_swap.runner import FaceSwapRunner

from .daemon_process import DaemonProcess
from .tiny_onnx_faces import write_test_manifest


@contextmanager
def loaded_face_swap_runner(models_dir: Path) -> Iterator[FaceSwapRunner]:
    """A :class:`FaceSwapRunner` loaded on the CPU from ``models_dir``; unloaded on exit."""
    runner = FaceSwapRunner()
    runner.models_dir = models_dir
    runner.load(None)
    try:
        yield runner
    finally:
        runner.unload()


@contextmanager
def running_face_swap_daemon(models_dir: Path, manifest_dir: Path) -> Iterator[DaemonProcess]:
    """A started daemon on the CPU serving ``models_dir``, with a manifest (written into ``manifest_dir``) that
    lists the face-swap files with the tiny files' sizes and checksums; stopped and removed on exit."""
    manifest = manifest_dir / "manifest.toml"
    write_test_manifest(manifest, models_dir)
    served = ("--manifest", str(manifest), "--models-dir", str(models_dir), "--device", "cpu")
    daemon = DaemonProcess(extra_args=served, plugin=False)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()
