"""Live pose in real Blender through the daemon: the sample video, played at its frame rate, stands in for a
camera. Start, record, stop; a camera that does not exist; a driven bone renamed, another file opened and the
add-on disabled while live runs.

The bpy module fires no timers: the scenario runs the add-on's pump and the live timer itself, as Blender would.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import bpy
import harness
import mocap_common as mc
import numpy as np


def pump_live(addon: Any, predicate: Any, what: str, timeout: float = 60.0) -> float:
    def step() -> bool:
        addon.pose.live_pose.tick()
        return predicate()

    return harness.pump_until(addon, step, what, timeout=timeout)


def live_threads() -> list[str]:
    return [name for name in harness.vfx_threads() if name == "vfx-mocap-live-pose"]


def daemon_live_sessions(addon: Any) -> int:
    client_module = __import__(f"{harness.MODULE}.shared.client", fromlist=["Client"])
    with client_module.Client.from_file(
        addon.bridge.live_client.daemon_connection_file(
            addon.common.preferences.daemon_settings(), addon.common.runtime.get().status
        )
    ) as client:
        return int(client.health()["live_sessions"])


def turned_degrees(obj: Any, bones: list[str]) -> float:
    """The largest rotation of ``bones`` away from rest, in degrees."""
    w = np.array([abs(obj.pose.bones[b].rotation_quaternion[0]) for b in bones])
    return float(np.degrees(2 * np.arccos(np.clip(w, 0, 1))).max())


def rename_while_live(addon: Any, metarig: Any) -> dict[str, Any]:
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    driver = addon.pose.live_pose.current()
    pump_live(addon, lambda: driver.applied >= 5, "live poses before the rename", timeout=60)
    metarig.data.bones["forearm.L"].name = "forearm.L.renamed"
    pump_live(addon, lambda: not driver.session.alive, "live pose to stop", timeout=30)
    out = {
        "error": driver.error,
        "last_error": addon.common.runtime.get().last_error,
        "panel": mc.draw_panels(("_livepose",))["labels"],
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(addon),
        "timer_registered": bpy.app.timers.is_registered(addon.pose.live_pose.tick),
    }
    metarig.data.bones["forearm.L.renamed"].name = "forearm.L"
    return out


def open_file_while_live(addon: Any, metarig: Any, path: Path) -> dict[str, Any]:
    metarig.animation_data_clear()
    for pose_bone in metarig.pose.bones:
        pose_bone.rotation_quaternion = (1, 0, 0, 0)
        pose_bone.location = (0, 0, 0)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    driver = addon.pose.live_pose.current()
    pump_live(addon, lambda: driver.applied >= 5, "live poses before opening a file", timeout=60)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reopened = bpy.data.objects["metarig"]
    applied = driver.applied
    started = time.monotonic()
    pump_live(addon, lambda: time.monotonic() - started > 1.0, "a second after opening the file", timeout=10)
    driven = addon.bridge.retarget.bone_maps.detect_map(addon.pose.armature_io.read_rig(reopened)).driven_bones()
    applied_after_open, turned_deg = driver.applied - applied, turned_degrees(reopened, driven)
    # The thread winds down on its own (its poll, then stopping the daemon's session): wait for it, then count.
    pump_live(addon, lambda: not driver.session.alive, "the live thread to end", timeout=15)
    return {
        "running": driver.running,
        "error": driver.error,
        "applied_after_open": applied_after_open,
        "turned_deg": turned_deg,
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(addon),
    }


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    harness.configure(args.daemon_python, args.data_dir)
    rt = harness.start_daemon(addon)

    scene = bpy.context.scene
    scene.vfx_mocap_parts.use_hands = False  # the body alone here; hands and face: mocap_hands_face.py
    metarig = mc.add_metarig()
    settings = scene.vfx_mocap_pose
    settings.armature = metarig
    settings.live_source = "FILE"
    settings.video_path = args.video
    driven = addon.bridge.retarget.bone_maps.detect_map(addon.pose.armature_io.read_rig(metarig)).driven_bones()
    record["turned_before_deg"] = turned_degrees(metarig, driven)

    # 1. Start: poses arrive and move the armature.
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    driver = addon.pose.live_pose.current()
    record["threads_running"] = live_threads()
    record["start_s"] = pump_live(addon, lambda: driver.applied >= 30, "30 live poses", timeout=90)
    record["applied"] = driver.applied
    record["session"] = {"state": driver.session.state, "fps": driver.session.daemon_fps}
    record["latency_ms_p50"] = float(np.median(driver.latencies_ms))
    record["solve_ms_p50"] = float(np.median(driver.solve_ms))
    record["turned_live_deg"] = turned_degrees(metarig, driven)
    record["daemon_sessions_running"] = daemon_live_sessions(addon)
    record["panels_while_live"] = mc.draw_panels()

    # 2. Record for about two seconds: keys on the mapped bones from the current frame on.
    scene.frame_set(20)
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_record)
    assert result == {"FINISHED"}, error
    record["recording"] = driver.recording
    recorded_from = driver.applied
    started = time.monotonic()
    # Enough poses, not a fixed time: on a loaded machine the daemon may track fewer frames per second.
    pump_live(
        addon,
        lambda: time.monotonic() - started > 2.0 and driver.applied - recorded_from >= 36,
        "two seconds and 36 poses of recording",
        timeout=90,
    )
    record["recorded_poses"] = driver.applied - recorded_from
    record["recorded_s"] = time.monotonic() - started
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_record)
    assert result == {"FINISHED"}, error
    channels = mc.action_channels(metarig)
    record["record"] = {
        "recording_after": driver.recording,
        "fcurves": len(channels),
        "keyed_bones": sorted({mc.bone_of(path) for path, _ in channels}),
        "keys_per_channel": sorted({len(keys) for keys in channels.values()}),
        "first_frame": float(min(keys[0, 0] for keys in channels.values())),
        "last_frame": float(max(keys[-1, 0] for keys in channels.values())),
        "nan": int(sum(np.isnan(keys).sum() for keys in channels.values())),
        "report": [driver.last_bake.frame_start, driver.last_bake.frame_end, driver.last_bake.keys],
        "fps": scene.render.fps / scene.render.fps_base,
    }
    record["driven"] = driven

    # 3. Stop: the operator returns at once; then the thread and the daemon's session go. The thread's last step
    # (stopping the daemon's session) waits until the operator has returned, so a Stop that waited would show.
    clicked = threading.Event()
    stop_remote = driver.session._stop_remote
    driver.session._stop_remote = lambda client: (clicked.wait(30), stop_remote(client))
    started = time.perf_counter()
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_stop)
    record["stop_operator_ms"] = (time.perf_counter() - started) * 1000
    record["alive_after_stop"] = driver.session.alive
    clicked.set()
    assert result == {"FINISHED"}, error
    pump_live(addon, lambda: not driver.session.alive, "the live thread to end", timeout=15)
    record["after_stop"] = {
        "threads": live_threads(),
        "running": driver.running,
        "state": driver.session.state,
        "daemon_sessions": daemon_live_sessions(addon),
        "error": driver.error,
    }

    # 4. A camera that is not there: the error reaches the panel; nothing is left running.
    settings.live_source = "CAMERA"
    settings.camera_index = 7
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    camera = addon.pose.live_pose.current()
    pump_live(addon, lambda: not camera.session.alive, "the camera error", timeout=30)
    record["camera"] = {
        "state": camera.session.state,
        "error": camera.error,
        "last_error": rt.last_error,
        "threads": live_threads(),
        "daemon_sessions": daemon_live_sessions(addon),
    }

    # 5. A driven bone renamed while live runs: posing fails, live pose stops and says why, nothing keeps running.
    settings.live_source = "FILE"
    record["bone_renamed"] = rename_while_live(addon, metarig)

    # 6. Opening a file while live runs stops it first: nothing drives the armature of the same name in it (the
    # file is this one, saved at rest before live starts).
    record["file_opened"] = open_file_while_live(addon, metarig, Path(args.data_dir) / "at_rest.blend")

    # 7. Disabling the add-on while live runs stops the session (and the daemon this Blender started).
    result, error = harness.operator_report(bpy.ops.vfxmocap.live_start)
    assert result == {"FINISHED"}, error
    last = addon.pose.live_pose.current()
    pump_live(addon, lambda: last.applied >= 5, "live poses before disabling", timeout=60)
    session_prefix = last.session.session_id[:8]
    pid = rt.status.pid
    harness.disable_extension()
    record["after_disable"] = {
        "threads": live_threads(),
        "daemon_gone": harness.wait_gone(pid),
        "timer_registered": bpy.app.timers.is_registered(addon.pose.live_pose.tick),
        "load_pre_handler": addon.pose.live_pose.stop_before_file_load in bpy.app.handlers.load_pre,
    }
    log = (Path(args.data_dir) / "logs" / "daemon.log").read_text(encoding="utf-8", errors="replace")
    record["daemon_log_session"] = [line for line in log.splitlines() if f"live session {session_prefix}" in line]


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(), main)
