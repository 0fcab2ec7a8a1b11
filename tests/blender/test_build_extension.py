"""The extension zip: what it holds, and that Blender's own validator accepts it (see conftest)."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

PLATFORM_TAGS = {"linux-x64": "manylinux", "macos-arm64": "macosx", "windows-x64": "win_amd64"}
PYTHON_TAGS = {"3.11": ("cp311",), "3.13": ("cp313", "abi3")}


@pytest.fixture(scope="module")
def manifest(extension_zip: Path) -> dict:
    with zipfile.ZipFile(extension_zip) as archive:
        return tomllib.loads(archive.read("blender_manifest.toml").decode())


def test_zip_holds_the_manifest_the_thin_init_the_addon_the_protocol_and_every_listed_wheel(extension_zip, manifest):
    with zipfile.ZipFile(extension_zip) as archive:
        names = set(archive.namelist())
    assert {
        "blender_manifest.toml",
        "__init__.py",
        "addon/__init__.py",
        "addon/common/pump.py",
        "shared/client.py",
    } <= names
    assert {wheel.removeprefix("./") for wheel in manifest["wheels"]} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    daemon_source = {"pyproject.toml", "setup.py", "vfx_mocap/__init__.py", "daemon/cli.py", "models/manifest.toml"}
    assert {f"daemon_source/{name}" for name in daemon_source} <= names, "what Set Up Daemon installs"
    assert "daemon_source/models/liveportrait/__init__.py" in names and "daemon_source/shared/wire.py" in names


def test_manifest_declares_blender_42_three_platforms_and_permission_reasons(manifest):
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "vfx_motion_capture"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["platforms"] == list(PLATFORM_TAGS)
    assert set(manifest["permissions"]) == {"files", "network", "camera"}
    assert all(reason.strip() for reason in manifest["permissions"].values())


@pytest.mark.parametrize("package", ["pyzmq", "msgpack"])
@pytest.mark.parametrize("python", sorted(PYTHON_TAGS))
@pytest.mark.parametrize("platform", sorted(PLATFORM_TAGS))
def test_a_wheel_serves_each_platform_and_blender_python(manifest, package, python, platform):
    names = [Path(wheel).name for wheel in manifest["wheels"]]
    matching = [
        name
        for name in names
        if name.startswith(f"{package}-")
        and PLATFORM_TAGS[platform] in name
        and any(f"-{tag}-" in name for tag in PYTHON_TAGS[python])
    ]
    assert len(matching) == 1, (package, python, platform, names)
