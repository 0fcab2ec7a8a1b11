"""*Set Up Daemon*: the daemon's own environment, made from the source inside the extension. No bpy.

The environment is a venv in ``<data folder>/env`` made with a Python that MediaPipe 0.10.21 supports (3.11 or
3.12) found on this machine (:func:`find_python`). Into it go, with pip: torch from the index that fits the machine
when a feature set needs it (:func:`torch_index`), then the daemon from the extension's ``daemon_source/`` folder
with the feature sets ticked (pip extras). A marker file written last (:data:`MARKER_NAME`) says the environment is
complete; it is removed when a run starts, so a run that was cancelled or failed leaves nothing that *Start* would
use (:func:`ready_python`). A run whose marker already matches the source and the feature sets does nothing.

:class:`SetupRun` runs the steps on its own thread; its state is read by the preferences panel (any thread may read
it; only the run's thread writes it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

MARKER_NAME = "vfx-mocap-env.json"
"""Written into the environment when it is complete: the source digest and the feature sets installed."""
SUPPORTED_PYTHONS = ((3, 11), (3, 12))
"""What MediaPipe 0.10.21 (the pose mode) has wheels for."""
LOG_LINES = 400
SOURCE_PARTS = ("pyproject.toml", "setup.py", "README.md", "vfx_mocap", "daemon", "models", "shared")
"""What the daemon is installed from, inside the source folder (the extension's ``daemon_source/`` or a checkout)."""


@dataclass(frozen=True)
class FeatureSet:
    extra: str
    """The pip extra (``pyproject.toml``)."""
    label: str
    download: str
    """About how much it downloads, as the preferences show it."""


FEATURE_SETS = (
    FeatureSet("pose", "Pose capture and live pose (MediaPipe)", "about 250 MB"),
    FeatureSet("faceswap", "Face swap (insightface, onnxruntime)", "about 150 MB"),
    FeatureSet("generative", "LivePortrait and Wan VACE (torch, diffusers)", "about 1 GB, 3-4 GB with CUDA"),
)


def env_dir(data_dir: Path) -> Path:
    return data_dir / "env"


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ready_python(data_dir: Path) -> str:
    """The set-up environment's interpreter if a run completed it, else ""."""
    env = env_dir(data_dir)
    return str(env_python(env)) if (env / MARKER_NAME).is_file() and env_python(env).is_file() else ""


def checkout_python(extension_dir: Path) -> str:
    """A repository checkout's ``.venv`` interpreter when the extension runs from the checkout itself, else ""."""
    python = env_python(extension_dir / ".venv")
    return str(python) if (extension_dir / "pyproject.toml").is_file() and python.is_file() else ""


def python_version(python: str) -> tuple[int, int] | None:
    """``(major, minor)`` of the interpreter ``python``, or None if it does not run."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        major, minor = (int(part) for part in done.stdout.split())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return (major, minor) if done.returncode == 0 else None


def _candidates() -> list[str]:
    found: list[str] = []
    names = [f"python{major}.{minor}" for major, minor in reversed(SUPPORTED_PYTHONS)] + ["python3", "python"]
    found += [path for name in names if (path := shutil.which(name))]
    if sys.platform == "win32" and (launcher := shutil.which("py")):
        for major, minor in reversed(SUPPORTED_PYTHONS):
            done = subprocess.run(
                [launcher, f"-{major}.{minor}", "-c", "import sys; print(sys.executable)"],
                capture_output=True,
                text=True,
                timeout=20,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
            if done.returncode == 0 and done.stdout.strip():
                found.append(done.stdout.strip())
    if sys.platform == "darwin":
        for major, minor in reversed(SUPPORTED_PYTHONS):
            found += [
                f"/Library/Frameworks/Python.framework/Versions/{major}.{minor}/bin/python{major}.{minor}",
                f"/opt/homebrew/bin/python{major}.{minor}",
            ]
    found.append(sys.executable)  # Blender's own Python (3.11 up to Blender 5.1)
    return found


def find_python() -> str | None:
    """An interpreter of a supported version (:data:`SUPPORTED_PYTHONS`): on PATH, the Windows launcher, the
    python.org and Homebrew places on macOS, then Blender's own Python. None if there is none."""
    seen: set[str] = set()
    for candidate in _candidates():
        if candidate in seen or not os.path.isfile(candidate):
            continue
        seen.add(candidate)
        if python_version(candidate) in SUPPORTED_PYTHONS:
            return candidate
    return None


def torch_index() -> str | None:
    """The pip index for torch on this machine: CUDA where an NVIDIA driver answers (Linux, Windows), PyPI's
    default build on macOS (None), the CPU build otherwise."""
    if sys.platform == "darwin":
        return None
    if shutil.which("nvidia-smi"):
        return "https://download.pytorch.org/whl/cu128"
    return "https://download.pytorch.org/whl/cpu"


def _source_files(source: Path) -> list[Path]:
    files = [source / name for name in SOURCE_PARTS if (source / name).is_file()]
    for name in SOURCE_PARTS:
        if (source / name).is_dir():
            files += (p for p in (source / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(files)


def source_digest(source: Path) -> str:
    """A digest of the daemon's source (every file's path and bytes): a changed source means a reinstall."""
    digest = hashlib.sha256()
    for path in _source_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def copy_source(source: Path, target: Path) -> None:
    """Copy the daemon's source (and nothing else of the folder) to ``target``."""
    for path in _source_files(source):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


class SetupCancelled(Exception):
    pass


class SetupRun:
    """One *Set Up Daemon* run on its own thread. Read ``state``, ``step``, ``fraction``, ``message`` and
    :meth:`log_tail` from any thread; :meth:`cancel` from any thread."""

    def __init__(self, data_dir: Path, source: Path, extras: list[str], log_path: Path, python: str = "") -> None:
        self.data_dir, self.source, self.extras, self.log_path = data_dir, source, sorted(extras), log_path
        self.python = python
        self.state = "running"
        """running, done, failed or cancelled."""
        self.step = "Starting"
        self.fraction = 0.0
        self.message = ""
        self.did_nothing = False
        """True when the environment was already complete for this source and these feature sets."""
        self._lines: deque[str] = deque(maxlen=LOG_LINES)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        """Held while a step's process is started or looked up: a cancel never falls between two steps."""
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, name="vfx-mocap-setup", daemon=True)

    def start(self) -> SetupRun:
        self._thread.start()
        return self

    def cancel(self) -> None:
        with self._lock:
            self._cancel.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def log_tail(self, lines: int = 8) -> list[str]:
        return list(self._lines)[-lines:]

    # -- the run's thread -----------------------------------------------------------------------------------

    def _log(self, line: str) -> None:
        self._lines.append(line)
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _run(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("", encoding="utf-8")
        try:
            self._set_up()
        except SetupCancelled:
            self.state, self.message = "cancelled", "Cancelled: the environment is not used until a run completes"
        except Exception as exc:  # shown in the preferences with the log; the environment stays unused
            self.state, self.message = "failed", f"{exc} (log: {self.log_path})"
        else:
            self.state = "done"
        self._log(f"-- {self.state}: {self.message}")

    def _command(self, step: str, fraction: float, command: list[str], cwd: Path | None = None) -> None:
        self.step, self.fraction = step, fraction
        self._log(f"-- {step}: {' '.join(command)}")
        with self._lock:  # a cancel now either stops this step before it starts or terminates its process
            if self._cancel.is_set():
                raise SetupCancelled
            process = self._process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=cwd,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"},
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        assert process.stdout is not None
        for line in process.stdout:
            self._log(line.rstrip())
        code = process.wait()
        if self._cancel.is_set():
            raise SetupCancelled
        if code != 0:
            raise RuntimeError(f"{step} failed (exit code {code}): {' '.join(self.log_tail(2))}")

    def _set_up(self) -> None:
        env = env_dir(self.data_dir)
        marker = env / MARKER_NAME
        python = env_python(env)
        digest = source_digest(self.source)
        wanted = {"source": digest, "extras": self.extras}
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = None
        complete = isinstance(done, dict) and done.get("source") == digest
        if (
            complete
            and set(self.extras) <= set(done.get("extras", []))
            and python_version(str(python)) in SUPPORTED_PYTHONS  # the environment still runs
        ):
            self.did_nothing, self.fraction = True, 1.0
            self.step = self.message = f"Already set up in {env}; nothing to do"
            return
        marker.unlink(missing_ok=True)  # from here on the environment is incomplete until the end
        if python_version(str(python)) not in SUPPORTED_PYTHONS:
            base = self.python or find_python()
            if base is None:
                raise RuntimeError(
                    "no Python 3.11 or 3.12 found (on PATH, or Blender's own): install one from python.org "
                    "(Windows, macOS) or your package manager, then press Set Up Daemon again"
                )
            shutil.rmtree(env, ignore_errors=True)
            self._command("Creating the environment", 0.05, [base, "-m", "venv", str(env)])
        pip = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
        if "generative" in self.extras:
            index = torch_index()
            self._command("Installing torch", 0.2, [*pip, "torch", *(["--index-url", index] if index else [])])
        with tempfile.TemporaryDirectory(prefix="vfx-mocap-source-") as scratch:
            copy = Path(scratch) / "source"  # pip builds in the source folder: never inside the extension
            copy_source(self.source, copy)
            extras = f"[{','.join(self.extras)}]" if self.extras else ""
            self._command("Installing the daemon", 0.4, [*pip, f"{copy}{extras}"])
        check = "import vfx_mocap; vfx_mocap.use_bundled_packages(); import daemon.app, models.catalog"
        self._command("Checking the environment", 0.95, [str(python), "-c", check])
        marker.write_text(json.dumps(wanted, indent=1), encoding="utf-8")
        self.fraction, self.step = 1.0, "Done"
        self.message = f"Set up in {env}: press Start"
