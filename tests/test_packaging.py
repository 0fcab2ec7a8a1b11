"""``pip install .``: a ``vfx-mocap`` command, and no top-level ``daemon``/``models``/``shared`` in site-packages.

The wheel is built by pip from a copy of the sources and installed (without dependencies: they come from the test
environment through a ``.pth`` file) into a fresh venv, where the command runs from an unrelated folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shared import PROTOCOL_VERSION, __version__

pytestmark = pytest.mark.timeout(300)
REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("daemon", "models", "shared", "vfx_mocap", "setup.py", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(work)], check=True)
    (wheel,) = work.glob("vfx_motion_capture-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    dependencies = [path for path in sys.path if path.endswith("site-packages")]  # not the checkout itself
    (site / "test-deps.pth").write_text("\n".join(dependencies) + "\n")
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)], check=True)
    return {"wheel": wheel, "venv": venv, "site": site, "cwd": work}


def test_the_wheel_holds_one_private_package_and_the_console_command(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {name.split("/")[0] for name in names} == {"vfx_mocap", f"vfx_motion_capture-{__version__}.dist-info"}
    assert {"vfx_mocap/daemon/cli.py", "vfx_mocap/models/manifest.toml", "vfx_mocap/shared/wire.py"} <= set(names)
    assert "models/liveportrait/__init__.py" in {n.removeprefix("vfx_mocap/") for n in names}, "sub-packages too"
    assert "vfx-mocap = vfx_mocap:main" in entry_points
    assert not [p.name for p in installed["site"].iterdir() if p.name in ("daemon", "models", "shared")]


def test_the_command_runs_from_any_folder_on_the_installed_code(installed):
    command = installed["venv"] / "bin" / "vfx-mocap"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, cwd=installed["cwd"])
    assert (
        version.returncode == 0 and version.stdout.strip() == f"vfx-mocap {__version__} (protocol {PROTOCOL_VERSION})"
    )
    fetch = subprocess.run(
        [str(command), "fetch-models", "pose", "--models-dir", str(installed["cwd"] / "models")],
        capture_output=True,
        text=True,
        cwd=installed["cwd"],
    )
    assert fetch.returncode == 0 and "mediapipe wheel" in fetch.stdout, fetch.stderr
    where = subprocess.run(
        [
            str(installed["venv"] / "bin" / "python"),
            "-c",
            "import vfx_mocap; vfx_mocap.use_bundled_packages(); import daemon.cli, models.manifest; "
            "print(daemon.cli.__file__); print(models.manifest.MANIFEST_PATH.is_file())",
        ],
        capture_output=True,
        text=True,
        cwd=installed["cwd"],
    )
    file, manifest_found = where.stdout.split()
    assert Path(file).is_relative_to(installed["site"] / "vfx_mocap") and manifest_found == "True", where.stderr
