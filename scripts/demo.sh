#!/usr/bin/env bash
# Install what is needed and run the main job headless in real Blender (5.0, as a Python module): start the
# daemon from the add-on, load the sample video into the sequencer, extract poses through the add-on's
# operators, insert the result strip, save a .blend and a picture. No model download is needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
scripts/setup_blender_envs.sh 50
.venv-bpy50/bin/python scripts/blender_demo.py "$@"
