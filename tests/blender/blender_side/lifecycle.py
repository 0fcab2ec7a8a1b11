"""Install, start the daemon from the add-on, kill it, restart, auto-start, and unregister.

Records what the add-on registered, the status after a kill, and what is left after unregistering.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import bpy
import harness


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    sockets_before = harness.open_sockets()
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python, args.data_dir)
    rt = addon.common.runtime.get()
    record["registered"] = {
        "timer": bpy.app.timers.is_registered(addon.common.pump.tick),
        "handlers": sorted(
            name
            for name in ("load_post", "undo_post", "redo_post")
            if addon.common.pump.resync_jobs in getattr(bpy.app.handlers, name)
        ),
        "operator": hasattr(bpy.types, "VFXMOCAP_OT_generate"),
        "panels": sorted(name for name in dir(bpy.types) if name.startswith("VFXMOCAP_PT_")),
        "scene_state": hasattr(bpy.context.scene, "vfx_mocap"),
        "threads": harness.vfx_threads(),
    }
    record["status_before_start"] = rt.status.state
    record["preferences_panel"] = harness.draw_preferences()
    record["panel_before_start"] = harness.draw_panel(addon.generate.panels.draw_daemon)

    bpy.ops.vfxmocap.daemon_start()
    record["start_s"] = harness.pump_until(addon, lambda: rt.status.state == "connected", "the daemon to connect")
    first = rt.status
    record["connected"] = {"pid": first.pid, "owned": first.owned, "health_keys": sorted(first.health or {})}
    connection_file = Path(os.environ["VFXMOCAP_RUNTIME_DIR"]) / "daemon.json"
    record["connection_file_while_running"] = connection_file.is_file()
    record["panel_connected"] = harness.draw_panel(addon.generate.panels.draw_daemon)

    os.kill(first.pid, signal.SIGKILL)
    record["error_seen_s"] = harness.pump_until(addon, lambda: rt.status.state == "error", "the kill to be noticed")
    record["after_kill"] = {"state": rt.status.state, "message": rt.status.message, "pid": rt.status.pid}
    generate_result, generate_error = harness.operator_report(bpy.ops.vfxmocap.generate)
    record["generate_while_dead"] = {"result": sorted(generate_result or ()), "error": generate_error}
    record["panel_after_kill"] = harness.draw_panel(addon.generate.panels.draw_daemon)

    bpy.ops.vfxmocap.daemon_restart()
    record["restart_s"] = harness.pump_until(addon, lambda: rt.status.state == "connected", "the restart")
    record["restarted"] = {"pid": rt.status.pid, "owned": rt.status.owned}
    record["panel_restarted"] = harness.draw_panel(addon.generate.panels.draw_daemon)
    second_pid = rt.status.pid

    # Kept while the add-on is disabled (default_set=False keeps its preferences), used by the next enable.
    harness.preferences().auto_start = True
    harness.disable_extension()
    record["after_disable"] = {
        "timer_registered": bpy.app.timers.is_registered(addon.common.pump.tick),
        "our_handlers": [
            f"{name}:{handler.__name__}"
            for name in ("load_post", "undo_post", "redo_post")
            for handler in getattr(bpy.app.handlers, name)
            if handler.__module__.startswith(harness.MODULE)
        ],
        "threads": harness.vfx_threads(),
        "daemon_gone": harness.wait_gone(second_pid),
        "connection_file_left": connection_file.exists(),
        "extra_sockets": harness.open_sockets() - sockets_before,
        "scene_state": hasattr(bpy.context.scene, "vfx_mocap"),
    }

    addon = harness.enable_extension()
    rt = addon.common.runtime.get()
    record["auto_start_s"] = harness.pump_until(addon, lambda: rt.status.state == "connected", "auto-start")
    auto_pid = rt.status.pid

    # A job still running when the add-on goes away (as when Blender quits) is finished by the daemon, which
    # then exits by itself; enabling the add-on again (reopening Blender) takes that daemon over.
    job_id = "left-running"
    rt.connection.submit(job_id, "pose", {"render_skeleton": True}, {"video": {"path": args.video}})
    with direct_client(connection_file) as client:
        deadline = time.monotonic() + 60
        while job_state(client, job_id) in ("submitting", "queued") and time.monotonic() < deadline:
            addon.common.pump.tick()
            time.sleep(0.05)
        harness.disable_extension()
        record["left_running"] = {
            "job_state": client.job(job_id)["state"],
            "daemon_alive": harness.pid_alive(auto_pid),
            "exit_when_idle": client.health()["exit_when_idle"],
            "threads": harness.vfx_threads(),
            "timer_registered": bpy.app.timers.is_registered(addon.common.pump.tick),
        }
        addon = harness.enable_extension()
        rt = addon.common.runtime.get()
        harness.pump_until(addon, lambda: rt.status.state == "connected", "auto-start to find the daemon")
        record["adopted"] = {
            "same_daemon": rt.status.pid == auto_pid,
            "owned": rt.status.owned,
            "exit_when_idle": client.health()["exit_when_idle"],
        }
        deadline = time.monotonic() + 120
        while client.job(job_id)["state"] not in ("succeeded", "failed", "cancelled", "interrupted"):
            assert time.monotonic() < deadline, "the left-running job did not finish"
            addon.common.pump.tick()
            time.sleep(0.1)
        job = client.job(job_id)
        record["left_running_job"] = {"state": job["state"], "attempts": job["attempts"], "error": job["error"]}

    harness.disable_extension()
    record["after_auto_start_disable"] = {
        "daemon_gone": harness.wait_gone(auto_pid),
        "threads": harness.vfx_threads(),
        "timer_registered": bpy.app.timers.is_registered(addon.common.pump.tick),
    }


def job_state(client: Any, job_id: str) -> str:
    """The job's state in the daemon; "submitting" while the add-on's submission is on its way."""
    try:
        return str(client.job(job_id)["state"])
    except Exception as exc:  # the bundled package's RemoteError (not found yet)
        if getattr(exc, "code", "") != "not_found":
            raise
        return "submitting"


def direct_client(connection_file: Path) -> Any:
    """A protocol client of the test's own, beside the add-on's (from the extension's bundled package)."""
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    return client_module.Client.from_file(connection_file)


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(), main)
