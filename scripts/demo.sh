#!/usr/bin/env bash
# Install what is needed and run the main job on the bundled sample video (no model download needed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
.venv/bin/python scripts/pose_demo.py "$@"
