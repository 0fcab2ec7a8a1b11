"""Parts of the add-on that need no Blender (its bridge package): how a dead daemon's cause is found in its log,
and what the data folder move and the results kept beside a .blend do on disk."""

from __future__ import annotations

import sqlite3
import stat
import sys
from types import ModuleType

from support.addon_modules import load_addon_package


def bridge_module(name: str) -> ModuleType:
    """``addon/bridge/<name>.py``, imported as the extension imports it but without Blender."""
    return getattr(load_addon_package("bridge", "vfx_bridge"), name)


def test_a_daemon_that_dies_is_explained_by_its_exception_not_by_unrelated_log_lines(tmp_path):
    daemon_process = bridge_module("daemon_process")
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        "echo '2026-01-01 10:00:00 INFO daemon: loading vace_pose' >&2\n"
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo '  File \"models/vace.py\", line 1, in load' >&2\n"
        "echo 'MemoryError: out of memory while loading the transformer' >&2\n"
        "echo '2026-01-01 10:00:01 INFO daemon: live session abc stopped' >&2\n"
        "exit 3\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    process = daemon_process.DaemonProcess(str(fake), tmp_path / "run", tmp_path / "data", "cpu", tmp_path / "logs")
    assert process.wait(10)
    process.stop()  # closes its pipe
    text = process.failure_text()
    assert text.startswith("The daemon exited with code 3: MemoryError: out of memory while loading the transformer")
    assert "live session" not in text and str(tmp_path / "logs" / "daemon.stderr.log") in text


def test_an_older_store_is_moved_once_and_never_merged(tmp_path):
    data_folder = bridge_module("data_folder")
    old, new = tmp_path / "extension" / "daemon", tmp_path / "share" / "vfx-mocap"
    (old / "jobs" / "a" / "outputs").mkdir(parents=True)
    sqlite3.connect(old / "jobs.sqlite3").close()
    message = data_folder.move_old_store(old, new)
    assert message.startswith("Moved the job history") and (new / "jobs" / "a" / "outputs").is_dir()
    assert not old.exists() and data_folder.move_old_store(old, new) == "", "once"
    (old / "jobs").mkdir(parents=True)
    sqlite3.connect(old / "jobs.sqlite3").close()
    kept = data_folder.move_old_store(old, new)
    assert "was left in" in kept and (old / "jobs.sqlite3").is_file(), "two stores are never merged"
    assert data_folder.remapped(str(old / "jobs" / "a" / "outputs" / "frames"), old, new) == str(
        new / "jobs" / "a" / "outputs" / "frames"
    )
    assert data_folder.remapped("/elsewhere/x", old, new) is None


def test_results_kept_beside_a_blend_are_complete_or_absent(tmp_path):
    data_folder = bridge_module("data_folder")
    frames = tmp_path / "jobs" / "j1" / "outputs" / "frames"
    frames.mkdir(parents=True)
    for i in range(3):
        (frames / f"{i:06d}.png").write_bytes(b"png%d" % i)
    kept = data_folder.keep_beside_blend(frames, tmp_path / "project", "j1")
    assert kept == tmp_path / "project" / "vfx_results" / "j1"
    assert sorted(p.name for p in kept.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert (kept / "000001.png").read_bytes() == b"png1"
    assert not list((tmp_path / "project" / "vfx_results").glob(".*partial")), "no half-made folder"


def test_a_fetch_reads_the_commands_progress_bar_and_reports_its_last_error():
    """*Fetch* runs the daemon's ``fetch-models`` as a child: its carriage-return progress bar (stderr) becomes
    the run's progress, and a failure is explained by the command's last ``error:`` line."""
    model_fetch = bridge_module("model_fetch")
    bar = "import sys; sys.stderr.write('[1/2] unet: 42.5% \\r[1/2] unet: 80.0% \\rerror: disk full\\n'); sys.exit(2)"
    run = model_fetch.FetchRun("vace_pose", [sys.executable, "-c", bar]).start()
    assert run.wait(30) and run.state == "failed", run.progress
    assert (run.fraction, run.error) == (0.8, "error: disk full")
    done = model_fetch.FetchRun("vace_pose", [sys.executable, "-c", "import sys; sys.stderr.write('[1/1] a: 5%')"])
    assert done.start().wait(30) and (done.state, done.fraction, done.progress) == ("done", 1.0, "Fetched and verified")
