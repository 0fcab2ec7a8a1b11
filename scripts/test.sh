#!/usr/bin/env bash
# Install everything the tests need (the daemon's venv, the sample media, Blender 4.2/4.5/5.0/5.2 as bpy
# modules), then lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
scripts/setup_blender_envs.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
