"""Installing, enabling, starting, killing, restarting and unregistering the add-on in real Blender."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def lifecycle(blender, daemon_python: str, sample_video, tmp_path_factory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp(f"lifecycle-{blender.line}") / "data"
    return blender.run(
        "lifecycle.py", "--daemon-python", daemon_python, "--data-dir", str(data_dir), "--video", str(sample_video)
    )


def test_blender_installer_enables_the_extension_with_its_timer_handler_panels_and_thread(lifecycle):
    registered = lifecycle["registered"]
    assert registered["timer"] and registered["operator"] and registered["scene_state"]
    assert registered["handlers"] == ["load_post", "redo_post", "undo_post"]
    assert {
        "VFXMOCAP_PT_sequencer_daemon",
        "VFXMOCAP_PT_sequencer_generate",
        "VFXMOCAP_PT_sequencer_jobs",
        "VFXMOCAP_PT_view3d_daemon",
        "VFXMOCAP_PT_view3d_generate",
        "VFXMOCAP_PT_view3d_jobs",
    } <= set(registered["panels"])
    assert registered["threads"] == ["vfx-mocap-connection"]
    assert lifecycle["status_before_start"] == "stopped"


def test_start_operator_starts_the_daemon_and_connects(lifecycle):
    connected = lifecycle["connected"]
    assert connected["owned"] is True
    assert connected["pid"] > 0
    assert {"device", "modes", "queue", "loaded_models", "memory"} <= set(connected["health_keys"])
    assert lifecycle["connection_file_while_running"] is True


def test_a_killed_daemon_shows_as_an_error_with_the_real_reason(lifecycle):
    after_kill = lifecycle["after_kill"]
    assert after_kill["state"] == "error"
    assert "killed (signal 9)" in after_kill["message"]
    assert "daemon.stderr.log" in after_kill["message"]  # where to read more
    assert lifecycle["error_seen_s"] < 2.0


def test_generate_reports_that_the_daemon_is_not_running(lifecycle):
    generate = lifecycle["generate_while_dead"]
    assert generate["result"] == []
    assert "The daemon is not running" in generate["error"]
    assert "start it in the Motion Capture panel" in generate["error"]


def test_restart_recovers_with_a_new_daemon(lifecycle):
    assert lifecycle["restarted"]["owned"] is True
    assert lifecycle["restarted"]["pid"] not in (None, lifecycle["connected"]["pid"])
    assert lifecycle["restart_s"] < 10.0


def test_unregister_leaves_no_timer_handler_thread_socket_or_daemon(lifecycle):
    left = lifecycle["after_disable"]
    assert left == {
        "timer_registered": False,
        "our_handlers": [],
        "threads": [],
        "daemon_gone": True,
        "connection_file_left": False,
        "extra_sockets": 0,
        "scene_state": False,
    }


def test_auto_start_starts_the_daemon_on_enable_and_unregister_stops_it(lifecycle):
    assert lifecycle["auto_start_s"] < 30.0
    assert lifecycle["after_auto_start_disable"] == {"daemon_gone": True, "threads": [], "timer_registered": False}


def test_daemon_panel_shows_the_state_the_health_and_the_error_text(lifecycle):
    assert lifecycle["panel_before_start"] == ["Stopped", "<Start>", "<Stop>", "<Restart>"]
    connected = lifecycle["panel_connected"]
    assert connected[0] == f"Connected (pid {lifecycle['connected']['pid']}, started here)"
    assert any(line.startswith("Device: ") for line in connected)
    assert any(line.startswith("Memory: ") and "GiB free of" in line for line in connected)
    assert "Loaded models: none" in connected and "Queue: 0 waiting, 0 running" in connected
    after_kill = lifecycle["panel_after_kill"]
    assert after_kill[0] == "Error"
    assert "The daemon was killed (signal 9)." in " ".join(after_kill)
    last_error = " ".join(after_kill[after_kill.index("Last error") :])
    assert "The daemon is not running (it failed: the Daemon panel says why)" in last_error
    assert lifecycle["panel_restarted"][0] == f"Connected (pid {lifecycle['restarted']['pid']}, started here)"


def test_preferences_draw_every_setting(lifecycle):
    drawn = lifecycle["preferences_panel"]
    assert drawn[0] == "Daemon: Daemon Python preference", "the configured interpreter wins"
    assert drawn[2:7] == [
        "[Pose capture and live pose (MediaPipe) (about 250 MB)]",
        "[Face swap (insightface, onnxruntime) (about 150 MB)]",
        "[LivePortrait and Wan VACE (torch, diffusers) (about 1 GB, 3-4 GB with CUDA)]",
        "<vfxmocap.setup_daemon>",
        "<Cancel>",
    ]
    assert drawn[7:] == [
        "[daemon_python]",
        "[connection_file]",
        "[client_key_file]",
        "<vfxmocap.create_client_key>",
        "[auto_start]",
        "[keep_jobs_running]",
        "[device]",
        "[output_dir]",
        "[keep_results_with_blend]",
    ]


def test_a_job_running_when_the_add_on_goes_away_finishes_and_the_next_session_takes_the_daemon_over(lifecycle):
    left = lifecycle["left_running"]
    assert left["job_state"] == "running" and left["daemon_alive"] is True and left["exit_when_idle"] is True
    assert left["threads"] == [] and left["timer_registered"] is False, "the add-on itself left nothing behind"
    assert lifecycle["adopted"] == {"same_daemon": True, "owned": True, "exit_when_idle": False}
    assert lifecycle["left_running_job"] == {"state": "succeeded", "attempts": 1, "error": None}
