#!/usr/bin/env bash
# Create the Blender-as-a-Python-module venvs that tests/blender runs real Blender in.
#
#   scripts/setup_blender_envs.sh [50] [45] [42] [52]     (default: all four)
#
#   .venv-bpy50  Blender 5.0      bpy==5.0.1   Python 3.11  numpy<2
#   .venv-bpy45  Blender 4.5 LTS  bpy==4.5.*   Python 3.11  numpy<2
#   .venv-bpy42  Blender 4.2 LTS  bpy==4.2.*   Python 3.11  numpy<2  (the oldest the extension supports)
#   .venv-bpy52  Blender 5.2 LTS  bpy==5.2.3   Python 3.13  (numpy 2, as Blender 5.2 embeds)
#
# Idempotent: a venv whose bpy already imports at the wanted version is left as it is. The Python
# interpreters come from pyenv (PYENV_ROOT or `pyenv root`); override with PYTHON311 / PYTHON313.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYENV_ROOT="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
PYTHON311="${PYTHON311:-$(ls -d "$PYENV_ROOT"/versions/3.11.*/bin/python3.11 2>/dev/null | tail -1)}"
PYTHON313="${PYTHON313:-$PYENV_ROOT/versions/3.13.0/bin/python3.13}"

make_env() {  # name python bpy-spec version-prefix [extra requirement...]
  local name="$1" python="$2" spec="$3" prefix="$4"
  shift 4
  local venv="$ROOT/$name"
  if [[ -x "$venv/bin/python" ]] &&
     "$venv/bin/python" -c "import bpy, sys; sys.exit(not bpy.app.version_string.startswith('$prefix'))" \
       >/dev/null 2>&1; then
    echo "$name: ready ($("$venv/bin/python" -c 'import bpy; print(bpy.app.version_string)' 2>/dev/null))"
    return
  fi
  if [[ -z "$python" || ! -x "$python" ]]; then
    echo "$name: no interpreter at '$python' (install it with pyenv, or set PYTHON311/PYTHON313)" >&2
    exit 1
  fi
  local started=$SECONDS
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "$spec" "$@"
  echo "$name: installed $spec in $((SECONDS - started)) s"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(50 45 42 52)
for target in "${targets[@]}"; do
  case "$target" in
    50) make_env .venv-bpy50 "$PYTHON311" "bpy==5.0.1" "5.0" "numpy<2" ;;
    45) make_env .venv-bpy45 "$PYTHON311" "bpy==4.5.*" "4.5" "numpy<2" ;;
    42) make_env .venv-bpy42 "$PYTHON311" "bpy==4.2.*" "4.2" "numpy<2" ;;
    52) make_env .venv-bpy52 "$PYTHON313" "bpy==5.2.3" "5.2" ;;
    *) echo "unknown target '$target' (use 50, 45, 42 or 52)" >&2; exit 2 ;;
  esac
done
