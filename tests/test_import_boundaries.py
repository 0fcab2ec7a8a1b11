"""What importing a package pulls in: the daemon starts fast because heavy libraries load with their runner."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "cv2", "mediapipe", "diffusers", "transformers", "insightface", "onnxruntime", "ray")


def imported_after(code: str, names: tuple[str, ...]) -> list[str]:
    check = f"import sys\n{code}\nprint(' '.join(sorted(set({list(names)!r}) & set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_the_daemon_and_every_runner_class_import_no_heavy_library():
    code = (
        "import daemon.app, daemon.cli, daemon.ray_executor, daemon.ray_resources\n"
        "from models.catalog import BUILTIN_RUNNERS, import_runner\n"
        "runners = [import_runner(target) for target in BUILTIN_RUNNERS.values()]\n"
        "assert len(runners) == len(BUILTIN_RUNNERS)"
    )
    assert imported_after(code, HEAVY) == []


def test_the_protocol_package_needs_zmq_only_for_the_client():
    assert imported_after("import shared.wire, shared.messages, shared.errors, shared.connection", ("zmq",)) == []
    assert imported_after("import shared.client", ("zmq",)) == ["zmq"]


def test_blender_version_differences_live_in_compat_only():
    """The add-on branches on Blender's version (or uses an API one version renamed) in ``addon/common/compat.py``
    alone, so supporting the next Blender means reading one file."""
    import re
    from pathlib import Path

    versioned = re.compile(r"bpy\.app\.version|\bHAS_[A-Z_]+\b|\.sequences\b|sequences_all|frame_final_|frame_offset_")
    addon = Path(__file__).resolve().parents[1] / "addon"
    offenders = [
        f"{path.relative_to(addon)}:{number}: {line.strip()}"
        for path in sorted(addon.rglob("*.py"))
        if path.name != "compat.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if versioned.search(line)
    ]
    assert offenders == []


def test_the_pose_data_contract_is_written_once_and_both_sides_read_it():
    """The 33 landmark names and the frame file layout live in ``shared.pose_data``: the daemon's skeleton, its
    frame writer and the add-on's retargeting use that one definition, so they cannot drift apart."""
    from pathlib import Path

    from support.addon_modules import load_addon_package

    from models.frame_writer import frame_path
    from models.skeleton import MEDIAPIPE_POSE_LANDMARKS
    from shared import pose_data

    frames = load_addon_package("bridge.retarget", "vfx_retarget").frames
    assert MEDIAPIPE_POSE_LANDMARKS is pose_data.LANDMARK_NAMES and len(pose_data.LANDMARK_NAMES) == 33
    bundled = sys.modules["vfx_extension.shared.pose_data"]  # shared/ as the extension bundles it
    assert frames.LANDMARK_NAMES is bundled.LANDMARK_NAMES and frames.LANDMARK is bundled.LANDMARK
    assert bundled.__file__ == pose_data.__file__ and frames.LANDMARK["left_hip"] == 23
    assert frame_path(Path("/out"), 7) == Path("/out/frames/000007.png")
    assert imported_after("import shared.pose_data, shared.inputs", ("numpy", "zmq")) == []


BLOCK_BLENDER = (
    "import importlib.abc, sys\n"
    "class NoBlender(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.partition('.')[0] in ('bpy', 'mathutils', 'bpy_extras', 'gpu'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name.partition('.')[0])\n"
    "sys.meta_path.insert(0, NoBlender())\n"
)
"""Makes ``import bpy`` (and Blender's other modules) fail even where a stub package of that name is installed."""


def add_on_modules_without_blender() -> tuple[dict[str, str], dict[str, str]]:
    """Every add-on module by file (the packages' ``__init__`` aside, outside the bridge: they gather their
    package's classes), and those that cannot be imported without Blender, with the Blender module each needs."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    modules = {
        str(path.relative_to(root)): ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for path in sorted((root / "addon").rglob("*.py"))
        if path.name != "__init__.py" or path.is_relative_to(root / "addon" / "bridge")
    }
    code = BLOCK_BLENDER + (
        "import importlib, json\n"
        "from support.scene_control import PACKAGE, load_scene_control\n"
        "load_scene_control()\n"
        "needs = {}\n"
        f"for path, name in {modules!r}.items():\n"
        "    try:\n"
        "        importlib.import_module(f'{PACKAGE}.{name}')\n"
        "    except ModuleNotFoundError as error:\n"
        "        needs[path] = error.name\n"
        "print(json.dumps(needs))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root / "tests")
    assert run.returncode == 0, run.stderr
    return modules, json.loads(run.stdout)


def test_the_bridge_package_imports_no_blender_module():
    """Every module of ``addon/bridge`` (walked, not listed) imports with ``bpy`` and ``mathutils`` blocked, so
    the connection thread, the live client, the recorder, the daemon process and the retarget solver run and are
    tested without Blender; every other add-on module needs Blender."""
    modules, needs = add_on_modules_without_blender()
    bridge = sorted(path for path in modules if path.startswith("addon/bridge/"))
    assert {"addon/bridge/connection_thread.py", "addon/bridge/live_client.py", "addon/bridge/live_record.py"} < set(
        bridge
    )
    assert {"addon/bridge/settings.py", "addon/bridge/daemon_process.py", "addon/bridge/retarget/solver.py"} < set(
        bridge
    )
    assert [path for path in bridge if path in needs] == []
    assert set(needs.values()) <= {"bpy", "mathutils", "bpy_extras", "gpu"}
    bpy_side = [path for path in modules if not path.startswith("addon/bridge/")]
    assert [path for path in bpy_side if path not in needs] == [], "a module that needs no Blender goes in the bridge"


def test_every_add_on_module_that_imports_without_blender_is_type_checked():
    """Each add-on module that imports with no bpy (nor mathutils), the whole bridge package among them, is in
    (or under a folder in) pyproject's ``[tool.mypy] files``."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    entries = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]["files"]
    listed = [root / entry for entry in entries if entry.startswith("addon")]
    checked = {
        str(p.relative_to(root)) for entry in listed for p in (entry.rglob("*.py") if entry.is_dir() else [entry])
    }
    modules, needs = add_on_modules_without_blender()
    without_blender = set(modules) - set(needs)
    assert "addon/bridge/connection_thread.py" in without_blender and "addon/bridge/live_client.py" in without_blender
    assert sorted(without_blender - checked) == []


def test_mypy_checks_every_add_on_module_and_turns_off_only_what_blender_needs(monkeypatch):
    """mypy's own reading of pyproject checks every file of ``addon/``, its bpy side too (Blender's modules are
    Any there). The one error code a module may turn off is ``valid-type``, and only where it declares Blender
    properties (``name: bpy.props.StringProperty(...)``, a call mypy cannot read as a type)."""
    import io
    import re
    from pathlib import Path

    from mypy.config_parser import parse_config_file
    from mypy.find_sources import create_source_list
    from mypy.options import Options

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    options = Options()
    parse_config_file(options, lambda: None, "pyproject.toml", io.StringIO(), io.StringIO())
    checked = {Path(source.path).resolve() for source in create_source_list(options.files, options)}
    add_on = sorted((root / "addon").rglob("*.py"))
    assert len(add_on) > 50 and [str(path) for path in add_on if path not in checked] == []

    inline = re.compile(r"^# mypy: (.*)$", re.MULTILINE)
    turned_off = {
        str(path.relative_to(root)): (inline.findall(text), "bpy.props." in text)
        for folder in ("addon", "daemon", "models", "shared")
        for path in sorted((root / folder).rglob("*.py"))
        if inline.search(text := path.read_text(encoding="utf-8"))
    }
    assert "addon/common/properties.py" in turned_off
    assert {
        path: found for path, found in turned_off.items() if found != (['disable-error-code="valid-type"'], True)
    } == {}
