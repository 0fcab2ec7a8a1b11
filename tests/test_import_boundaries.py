"""What importing a package pulls in: the daemon starts fast because heavy libraries load with their runner."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "cv2", "mediapipe", "diffusers", "transformers", "insightface", "onnxruntime")


def imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    check = f"import sys\n{code}\nprint(' '.join(sorted(set({list(names)!r}) & set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_the_daemon_and_every_runner_class_import_no_heavy_library():
    code = (
        "import daemon.app, daemon.cli\n"
        "from models.catalog import BUILTIN_RUNNERS, import_runner\n"
        "runners = [import_runner(target) for target in BUILTIN_RUNNERS.values()]\n"
        "assert len(runners) == len(BUILTIN_RUNNERS)"
    )
    assert imported_after(code, HEAVY) == []


def test_the_protocol_package_needs_zmq_only_for_the_client():
    assert imported_after("import shared.wire, shared.messages, shared.errors, shared.connection", ("zmq",)) == []
    assert imported_after("import shared.client", ("zmq",)) == ["zmq"]
