#!/usr/bin/env bash
# Install what the daemon and its tests need, idempotently:
#   - the real sample media (Debian's opencv-doc: Megamind.avi and friends) when apt-get is available;
#   - .venv: Python 3.11 with the daemon (editable), MediaPipe 0.10.21 and the dev tools.
# Re-running it is fast: everything already in place is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SAMPLE=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
if [[ ! -f "$SAMPLE" ]]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "installing the sample media (Debian package opencv-doc)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq opencv-doc >/dev/null
  else
    echo "note: $SAMPLE is missing and apt-get is not available; tests that use it will say so" >&2
  fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "Python 3.11 is needed (MediaPipe 0.10.21 and Blender 4.2-5.0 use it); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# torch is pinned here (a CPU build of 2.13.0 installs quickly); the project itself accepts any 2.x >= 2.4, so a
# user with a CUDA or MPS build keeps theirs. TORCH_SPEC overrides the pin.
.venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}" -e ".[pose,generative,faceswap,ray,dev]" 2>&1 |
  grep -v "^WARNING: Location" || true
.venv/bin/python -c "import daemon, mediapipe, zmq, msgpack, torch, diffusers, insightface, onnxruntime, ray" ||
  { echo "the .venv install failed" >&2; exit 1; }
