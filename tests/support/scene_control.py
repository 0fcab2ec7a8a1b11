"""``addon/bridge/scene_control`` imported without Blender: the extension folder as a package whose ``addon`` part is
an empty namespace, so ``addon/__init__.py`` (which imports bpy) never runs while the relative imports of
``shared`` still resolve."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "vfx_extension"


def load_scene_control() -> types.ModuleType:
    """The ``addon/bridge/scene_control`` package, imported as ``vfx_extension.addon.bridge.scene_control``."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
        addon = types.ModuleType(f"{PACKAGE}.addon")
        addon.__path__ = [str(REPO_ROOT / "addon")]
        sys.modules[addon.__name__] = addon
    return importlib.import_module(f"{PACKAGE}.addon.bridge.scene_control")
