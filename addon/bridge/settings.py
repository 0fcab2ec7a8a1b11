"""The preferences as plain data: what the connection thread needs to start or find the daemon.

Made on the main thread by ``common/preferences.py`` (``daemon_settings``) so that the bridge reads no Blender data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DaemonSettings:
    """What the connection thread needs to start or find the daemon. Paths are absolute."""

    python: str
    """Interpreter to run ``-m daemon serve`` with; empty when not configured."""
    connection_file: str
    """A running daemon's connection file to use instead of starting one; empty for none."""
    device: str
    runtime_dir: Path
    data_dir: Path
    log_dir: Path
    """Where the daemon's logs go (its own ``daemon.log`` and what it printed, ``daemon.stderr.log``)."""
    keep_jobs_running: bool = True
    """When Blender quits with jobs queued or running, let a daemon it started finish them, then exit."""
    client_key_file: str = ""
    """This client's CURVE key pair (``python -m daemon keygen``) for an encrypted daemon; empty for none."""
