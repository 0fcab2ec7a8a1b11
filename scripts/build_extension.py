"""Build the Blender extension zip: ``python scripts/build_extension.py [--output-dir dist] [--validate]``.

The zip holds ``blender_manifest.toml`` and the thin ``__init__.py`` at its root, the add-on (``addon/``),
the protocol package (``shared/``), the wheels the manifest lists (``wheels/``) and the daemon's source
(``daemon_source/``: ``pyproject.toml``, ``setup.py``, ``README.md``, ``vfx_mocap/``, ``daemon/``, ``models/``,
``shared/``), which *Set Up Daemon* installs into the daemon's own environment. The manifest is the one
source of truth for the wheels: each listed file is fetched once with ``pip download`` into
``.cache/wheels`` (reused afterwards) and must come back with exactly the listed name.

``--validate`` runs Blender's own validator (``blender_ext.py validate`` from a bpy venv of this checkout,
or ``blender --command extension validate``) on the finished zip.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEEL_CACHE = ROOT / ".cache" / "wheels"
PACKAGES = ("addon", "shared")
ROOT_FILES = ("blender_manifest.toml", "__init__.py")
DAEMON_SOURCE = "daemon_source"
DAEMON_PACKAGES = ("vfx_mocap", "daemon", "models", "shared")
DAEMON_FILES = ("pyproject.toml", "setup.py", "README.md")

# Wheel platform tag -> the --platform pip needs to select that very wheel.
PIP_PLATFORMS = {
    "manylinux": "manylinux_2_28_x86_64",
    "macosx": "macosx_11_0_arm64",
    "win_amd64": "win_amd64",
}
# Wheel python tag -> the interpreter version pip should pretend to be.
PIP_PYTHONS = {"cp311": "3.11", "cp312": "3.13", "cp313": "3.13"}


class BuildError(Exception):
    """The extension cannot be built; the message says what to fix."""


def read_manifest() -> dict:
    with (ROOT / "blender_manifest.toml").open("rb") as file:
        return tomllib.load(file)


def wheel_request(filename: str) -> tuple[str, str | None, str | None]:
    """``(requirement, python version, platform)`` for pip, from a wheel file name (PEP 427); a pure-Python wheel
    (``py3-none-any``) needs neither."""
    name, version, python_tag, _abi, platform_tag = filename[: -len(".whl")].split("-")
    if (python_tag, platform_tag) == ("py3", "any"):
        return f"{name}=={version}", None, None
    platform = next((pip for prefix, pip in PIP_PLATFORMS.items() if platform_tag.startswith(prefix)), None)
    python = PIP_PYTHONS.get(python_tag)
    if platform is None or python is None:
        raise BuildError(f"{filename}: no pip platform/python known for tags {python_tag}, {platform_tag}")
    return f"{name}=={version}", python, platform


def fetch_wheel(filename: str) -> Path:
    """Return the cached wheel, downloading it with pip first if it is not in the cache yet."""
    cached = WHEEL_CACHE / filename
    if cached.is_file():
        return cached
    requirement, python, platform = wheel_request(filename)
    staging = WHEEL_CACHE / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--no-deps",
        *(["--python-version", python, "--platform", platform] if python and platform else []),
        "--dest",
        str(staging),
        requirement,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    got = sorted(path.name for path in staging.glob("*.whl")) if staging.is_dir() else []
    if done.returncode != 0 or filename not in got:
        raise BuildError(
            f"pip did not deliver {filename} (got {got or 'nothing'}): {done.stderr.strip()[-800:]}\n"
            "Update the wheels list in blender_manifest.toml to the file names pip downloads now."
        )
    (staging / filename).replace(cached)
    shutil.rmtree(staging)
    return cached


def package_files(package: str) -> list[Path]:
    """Source files of a package, without caches."""
    files = sorted(
        path
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    if not files:
        raise BuildError(f"{ROOT / package} is empty or missing")
    return files


def build(output_dir: Path) -> Path:
    """Write ``<id>-<version>.zip`` into ``output_dir`` and return its path."""
    manifest = read_manifest()
    wheels = manifest.get("wheels", [])
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    fetched = {entry: fetch_wheel(Path(entry).name) for entry in wheels}
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ROOT_FILES:
            archive.write(ROOT / name, name)
        for package in PACKAGES:
            for path in package_files(package):
                archive.write(path, path.relative_to(ROOT).as_posix())
        for entry, path in fetched.items():
            archive.write(path, Path(entry).as_posix().removeprefix("./"))
        for name in DAEMON_FILES:
            archive.write(ROOT / name, f"{DAEMON_SOURCE}/{name}")
        for package in DAEMON_PACKAGES:
            for path in package_files(package):
                archive.write(path, f"{DAEMON_SOURCE}/{path.relative_to(ROOT).as_posix()}")
    partial.replace(target)
    return target


def find_validator() -> list[str]:
    """The command prefix of Blender's extension validator, or raise BuildError saying how to get one."""
    scripts = sorted(
        glob.glob(
            str(ROOT / ".venv-bpy*/lib/python*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
        )
    )
    if scripts:
        return [sys.executable, scripts[-1], "validate"]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension", "validate"]
    raise BuildError(
        "no Blender to validate with: run scripts/setup_blender_envs.sh (bpy venvs) or put `blender` on PATH"
    )


def validate(zip_path: Path) -> str:
    """Run Blender's validator on the zip; return its output or raise BuildError with it."""
    done = subprocess.run([*find_validator(), str(zip_path)], capture_output=True, text=True, check=False)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise BuildError(f"Blender's validator rejected {zip_path}:\n{output}")
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zip goes")
    parser.add_argument("--validate", action="store_true", help="check the zip with Blender's validator")
    args = parser.parse_args()
    try:
        zip_path = build(args.output_dir.resolve())
        print(zip_path)
        if args.validate:
            print(validate(zip_path))
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
