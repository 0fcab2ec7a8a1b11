"""The add-on's bpy-free packages imported without Blender.

``addon/__init__.py`` imports bpy, so a package under it (``addon/bridge/retarget``) is imported as a submodule of the
extension package (``vfx_extension``, the repository root) with an empty ``addon`` parent: its relative imports
of ``shared`` work as they do inside Blender.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types

from support.scene_control import PACKAGE, load_scene_control


def load_addon_package(name: str, alias: str) -> types.ModuleType:
    """``addon/<name>`` (dotted: ``bridge.retarget``) and its modules, also known as ``alias`` and
    ``alias.<module>``."""
    if alias not in sys.modules:
        load_scene_control()  # creates the extension package and its bpy-free ``addon`` parent
        package = importlib.import_module(f"{PACKAGE}.addon.{name}")
        sys.modules[alias] = package
        for module in pkgutil.iter_modules(package.__path__):
            sys.modules[f"{alias}.{module.name}"] = importlib.import_module(f"{package.__name__}.{module.name}")
    return sys.modules[alias]
