"""Helpers for the scripts that tests/blender runs inside real Blender (the ``bpy`` module).

A scenario script is run as ``<bpy venv python> scenario.py --result FILE [options]``. It records what it
observed into a dict that :func:`run_scenario` writes to ``FILE`` as JSON; the pytest side asserts on it.
An exception ends the script with exit code 1 after writing what was recorded so far.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy

EXTENSION_ID = "vfx_motion_capture"
MODULE = f"bl_ext.user_default.{EXTENSION_ID}"


def parse_args(*extra: tuple[str, dict[str, Any]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--daemon-python", default="")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--video", default="")
    for name, options in extra:
        parser.add_argument(name, **options)
    return parser.parse_args()


def run_scenario(args: argparse.Namespace, scenario: Callable[[argparse.Namespace, dict[str, Any]], None]) -> None:
    """Run ``scenario(args, record)``, write ``record`` (plus a traceback on failure), exit accordingly."""
    record: dict[str, Any] = {"blender": bpy.app.version_string, "version": list(bpy.app.version)}
    code = 0
    try:
        scenario(args, record)
    except Exception:  # the scenario failed: keep what it saw and the traceback for the pytest report
        record["traceback"] = traceback.format_exc()
        traceback.print_exc()
        code = 1
    args.result.write_text(json.dumps(record, indent=2, default=str))
    # Leave without finalizing, after running the exit handlers (they stop a daemon the add-on started): the bpy
    # module's own shutdown is not Blender's. bpy 4.2 crashes while finalizing Python once an extension has
    # registered property groups from a submodule; bpy 4.5 can deadlock in a static destructor once a movie
    # strip's file was closed (its delayed-close thread waits on the condition the destructor destroys).
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def install_extension(zip_path: Path) -> ModuleType:
    """Install the zip with Blender's extension installer, enabled; return the add-on package."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}, result
    assert MODULE in bpy.context.preferences.addons, "the extension installed but is not enabled"
    return sys.modules[f"{MODULE}.addon"]


def disable_extension() -> None:
    """Disable (unregister) the add-on, keeping its preferences for the next enable."""
    import addon_utils  # only importable once bpy has set up Blender's script paths

    addon_utils.disable(MODULE, default_set=False)


def enable_extension() -> ModuleType:
    """Enable (register) the add-on again; return the freshly imported add-on package."""
    import addon_utils

    addon_utils.enable(MODULE, default_set=True)
    return sys.modules[f"{MODULE}.addon"]


def preferences() -> bpy.types.AddonPreferences:
    return bpy.context.preferences.addons[MODULE].preferences


def configure(daemon_python: str = "", data_dir: str = "", connection_file: str = "") -> None:
    prefs = preferences()
    prefs.daemon_python = daemon_python
    prefs.output_dir = data_dir
    prefs.connection_file = connection_file
    prefs.device = "cpu"


def pump_until(addon: ModuleType, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Run the add-on's timer pump (timers do not fire in the bpy module) until ``predicate`` holds.

    Returns the seconds it took; raises AssertionError naming ``what`` and the daemon status on timeout.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        addon.common.pump.tick()
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    status = addon.common.runtime.get().status
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; daemon {status.state}: {status.message}")


def start_daemon(addon: ModuleType, what: str = "the daemon to connect") -> Any:
    """Press Start Daemon (it starts one, or connects to the preferences' connection file) and pump until the add-on
    is connected; return the add-on's runtime (``rt.status``, ``rt.modes``)."""
    rt = addon.common.runtime.get()
    bpy.ops.vfxmocap.daemon_start()
    pump_until(addon, lambda: rt.status.state == "connected", what)
    return rt


def operator_report(operator: Callable[..., set[str]], **kwargs: Any) -> tuple[set[str] | None, str]:
    """Call an operator; return (result, error report). Blender raises RuntimeError for ERROR reports."""
    try:
        return operator(**kwargs), ""
    except RuntimeError as exc:
        return None, str(exc)


def vfx_threads() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("vfx-mocap"))


def open_sockets() -> int:
    """Sockets this process holds (Linux)."""
    fd_dir = Path("/proc/self/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # the fd closed while we looked (the listing's own fd, for one)
    return count


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait for a process to be gone. An unreaped child (zombie) still counts as there: reaping is the
    add-on's job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


_ICONS = frozenset(
    item.identifier for item in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items
)


class _OperatorProperties:
    """What ``layout.operator()`` returns: only the operator's own properties may be set."""

    def __init__(self, idname: str) -> None:
        category, name = idname.split(".")
        object.__setattr__(
            self, "_names", set(getattr(getattr(bpy.ops, category), name).get_rna_type().properties.keys())
        )

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._names, f"the operator has no property {name!r}"


def _check_options(function: str, options: dict[str, Any]) -> None:
    """Blender refuses keywords its UILayout function does not have (some came in later versions: the
    ``placeholder`` of ``prop`` in 4.1, say); check them against the running Blender's own definition."""
    known = set(bpy.types.UILayout.bl_rna.functions[function].parameters.keys())
    unknown = sorted(set(options) - known)
    assert not unknown, f"UILayout.{function} of Blender {bpy.app.version_string} has no {', '.join(unknown)}"


class LayoutRecorder:
    """Stands in for a ``UILayout`` so panel draw functions can run headless (the bpy module draws no UI).

    It records the text a panel shows, one line per label, property, operator and progress bar, and checks
    that every property, operator and icon named exists, which Blender would only log at draw time.
    """

    def __init__(self, lines: list[str] | None = None) -> None:
        self.lines = [] if lines is None else lines
        self.enabled = True
        self.scale_y = 1.0

    def row(self, **options: Any) -> LayoutRecorder:
        _check_options("row", options)
        return LayoutRecorder(self.lines)

    def column(self, **options: Any) -> LayoutRecorder:
        _check_options("column", options)
        return LayoutRecorder(self.lines)

    def box(self) -> LayoutRecorder:
        return LayoutRecorder(self.lines)

    def _icon(self, icon: str) -> None:
        assert icon in _ICONS, f"no icon {icon!r}"

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self._icon(icon)
        self.lines.append(text)

    def prop(self, data: Any, name: str, text: str | None = None, **options: Any) -> None:
        _check_options("prop", options)
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.lines.append(f"[{text if text is not None else name}]")

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **options: Any) -> None:
        _check_options("prop_search", options)
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.lines.append(f"[{name}]")

    def operator(self, idname: str, text: str | None = None, icon: str = "NONE", **options: Any) -> _OperatorProperties:
        _check_options("operator", options)
        self._icon(icon)
        self.lines.append(f"<{text if text is not None else idname}>")
        return _OperatorProperties(idname)

    def template_list(
        self, list_type: str, _list_id: str, data: Any, name: str, active: Any, active_name: str, **options: Any
    ) -> None:
        _check_options("template_list", options)
        assert hasattr(bpy.types, list_type), f"no UIList {list_type}"
        assert name in data.bl_rna.properties and active_name in active.bl_rna.properties
        self.lines.extend(f"* {item.mode} {item.state}" for item in getattr(data, name))

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.lines.append(f"progress {factor:.2f} {text}")

    def template_icon(self, icon_value: int = 0, scale: float = 1.0) -> None:
        self.lines.append("preview")


def draw_preferences() -> list[str]:
    """The lines the add-on's preferences show (their ``draw`` method, on a recording layout)."""
    prefs = preferences()

    class Drawing:
        layout = LayoutRecorder()

        def __getattr__(self, name: str) -> Any:
            return getattr(prefs, name)

    drawing = Drawing()
    type(prefs).draw(drawing, bpy.context)
    return drawing.layout.lines


def draw_panel(draw: Callable[[Any, Any], None]) -> list[str]:
    """The lines a panel draw function (``addon.generate.panels.draw_*``) shows in the current context."""
    layout = LayoutRecorder()
    draw(layout, bpy.context)
    return layout.lines
