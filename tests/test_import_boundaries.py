"""What importing a package pulls in: the daemon starts fast because heavy libraries load with their runner."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "cv2", "mediapipe", "diffusers", "transformers", "insightface", "onnxruntime", "ray")


def imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    check = f"import sys\n{code}\nprint(' '.join(sorted(set({list(names)!r}) & set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_the_daemon_and_every_runner_class_import_no_heavy_library():
    code = (
        "import daemon.app, daemon.cli, daemon.ray_executor, daemon.ray_resources\n"
        "from models.catalog import BUILTIN_RUNNERS, import_runner\n"
        "runners = [import_runner(target) for target in BUILTIN_RUNNERS.values()]\n"
        "assert len(runners) == len(BUILTIN_RUNNERS)"
    )
    assert imported_after(code, HEAVY) == []


def test_the_protocol_package_needs_zmq_only_for_the_client():
    assert imported_after("import shared.wire, shared.messages, shared.errors, shared.connection", ("zmq",)) == []
    assert imported_after("import shared.client", ("zmq",)) == ["zmq"]


def test_blender_version_differences_live_in_compat_only():
    """The add-on branches on Blender's version (or uses an API one version renamed) in ``addon/compat.py``
    alone, so supporting the next Blender means reading one file."""
    import re
    from pathlib import Path

    versioned = re.compile(r"bpy\.app\.version|\bHAS_[A-Z_]+\b|\.sequences\b|sequences_all|frame_final_|frame_offset_")
    addon = Path(__file__).resolve().parents[1] / "addon"
    offenders = [
        f"{path.relative_to(addon)}:{number}: {line.strip()}"
        for path in sorted(addon.rglob("*.py"))
        if path.name != "compat.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if versioned.search(line)
    ]
    assert offenders == []
