"""Fixtures for the tests that run real Blender (the PyPI ``bpy`` module) against the real daemon.

Each Blender line has its own venv, made by ``scripts/setup_blender_envs.sh``. A test runs a script from
``blender_side/`` in a subprocess of that venv, with HOME (Blender's user folders) in a temporary folder and
a short runtime folder for the daemon's sockets; the script installs the built extension zip with Blender's
installer and writes what it observed as JSON. Missing prerequisites fail with the command that fixes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BLENDER_SIDE = Path(__file__).resolve().parent / "blender_side"
TESTS_DIR = BLENDER_SIDE.parents[1]
DAEMON_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
BLENDER_LINES = {"5.0": ".venv-bpy50", "4.5": ".venv-bpy45", "4.2": ".venv-bpy42", "5.2": ".venv-bpy52"}
"""Blender line -> the venv holding its bpy wheel (see scripts/setup_blender_envs.sh)."""
TESTED_LINES = os.environ.get("VFX_BLENDER_LINES", ",".join(BLENDER_LINES)).split(",")
"""The lines to test: all by default; ``VFX_BLENDER_LINES=5.0,4.5`` narrows a run."""
SCENARIO_TIMEOUT_S = 240


@dataclass(frozen=True)
class Blender:
    """One Blender line, able to run a ``blender_side`` scenario script."""

    line: str
    python: Path
    zip_path: Path
    work_dir: Path

    def run(
        self,
        script: str,
        *args: str,
        runtime_dir: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = SCENARIO_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Run ``blender_side/<script>`` in a fresh HOME and return its record; fail the test if it failed.

        ``runtime_dir`` is where the daemon's connection file goes; runs that share a daemon share it. ``env``
        adds environment variables.
        """
        home = Path(tempfile.mkdtemp(prefix="home-", dir=self.work_dir))
        runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="rt-", dir=self.work_dir))
        handle, name = tempfile.mkstemp(prefix=f"{Path(script).stem}-", suffix=".json", dir=self.work_dir)
        os.close(handle)
        result = Path(name)
        env = {
            **os.environ,
            "HOME": str(home),
            "VFXMOCAP_RUNTIME_DIR": str(runtime_dir / "run"),
            "PYTHONPATH": os.pathsep.join([str(BLENDER_SIDE), str(TESTS_DIR)]),  # scenarios import support/ too
            "PYTHONWARNINGS": "default::DeprecationWarning",  # shown, so the check below sees them
            **(env or {}),
        }
        env.pop("VIRTUAL_ENV", None)
        command = [str(self.python), str(BLENDER_SIDE / script), "--result", str(result), "--zip", str(self.zip_path)]
        done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
        record = json.loads(result.read_text()) if result.stat().st_size else {}
        if done.returncode != 0:
            pytest.fail(
                f"Blender {self.line} scenario {script} failed (exit {done.returncode}):\n"
                f"{record.get('traceback', '')}\n--- stdout ---\n{done.stdout[-3000:]}\n"
                f"--- stderr ---\n{done.stderr[-3000:]}",
                pytrace=False,
            )
        deprecated = [
            line
            for line in done.stderr.splitlines()
            if "DeprecationWarning" in line and ("vfx_motion_capture" in line or str(BLENDER_SIDE) in line)
        ]
        assert not deprecated, f"Blender {self.line} warns about API the add-on or its tests use:\n" + "\n".join(
            deprecated
        )
        return record


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    """A short temporary folder: ipc:// socket paths inside it must stay under ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vfxbl-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def extension_zip(work_dir: Path) -> Path:
    """The extension zip, built by scripts/build_extension.py and checked by Blender's validator."""
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "build_extension.py"),
            "--output-dir",
            str(work_dir / "dist"),
            "--validate",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"building the extension failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return Path(done.stdout.splitlines()[0])


@pytest.fixture(scope="session")
def daemon_python() -> str:
    """The interpreter the add-on starts the daemon with: the repository's venv, with the project installed."""
    if not DAEMON_PYTHON.is_file():
        pytest.fail(f"{DAEMON_PYTHON} is missing: create it and run `pip install -e '.[pose,dev]'`", pytrace=False)
    done = subprocess.run(
        [str(DAEMON_PYTHON), "-c", "import vfx_mocap; vfx_mocap.use_bundled_packages(); import daemon, models, shared"],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"the daemon is not importable from {DAEMON_PYTHON}: run `{DAEMON_PYTHON} -m pip install -e '.[pose]'` "
            f"in {REPO_ROOT}\n{done.stderr[-1500:]}",
            pytrace=False,
        )
    return str(DAEMON_PYTHON)


@pytest.fixture(scope="module", params=TESTED_LINES, ids=lambda line: f"blender{line}")
def blender(request: pytest.FixtureRequest, extension_zip: Path, work_dir: Path) -> Blender:
    if request.param not in BLENDER_LINES:
        pytest.fail(
            f"VFX_BLENDER_LINES names {request.param!r}; known lines: {', '.join(BLENDER_LINES)}", pytrace=False
        )
    venv = REPO_ROOT / BLENDER_LINES[request.param]
    python = venv / "bin" / "python"
    if not python.is_file():
        pytest.fail(
            f"Blender {request.param} is not set up ({python} is missing): run scripts/setup_blender_envs.sh",
            pytrace=False,
        )
    return Blender(request.param, python, extension_zip, work_dir)
