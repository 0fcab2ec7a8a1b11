"""Packaging: ``daemon``, ``models`` and ``shared`` (with every sub-package) are installed inside ``vfx_mocap``
(see ``vfx_mocap/__init__.py``); everything else is in ``pyproject.toml``."""

from setuptools import find_packages, setup

INNER = find_packages(include=["daemon", "daemon.*", "models", "models.*", "shared", "shared.*"])

setup(
    packages=["vfx_mocap", *(f"vfx_mocap.{name}" for name in INNER)],
    package_dir={"vfx_mocap": "vfx_mocap", **{f"vfx_mocap.{name}": name.replace(".", "/") for name in INNER}},
    package_data={"vfx_mocap.models": ["manifest.toml"]},
)
