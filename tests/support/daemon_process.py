"""A real daemon in a subprocess, for tests and benchmarks: ``python -m daemon serve`` with short paths."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.client import Client
from shared.connection import ConnectionInfo, read_connection_file

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPPORT_DIR = Path(__file__).resolve().parent


class DaemonProcess:
    """Start/stop/kill a daemon. ``base`` is kept short because ipc:// paths are limited to ~100 bytes."""

    def __init__(self, base: Path | None = None, extra_args: tuple[str, ...] = (), plugin: bool = True) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="vfx-"))
        self.runtime_dir = self.base / "run"
        self.data_dir = self.base / "data"
        self.extra_args = list(extra_args)
        if plugin:
            self.extra_args += ["--plugin", "vfx_test_runners"]
        self.proc: subprocess.Popen[str] | None = None
        self.preexec: Any = None
        """Run in the child before the daemon starts (resource limits, a umask)."""
        self.ready_line = ""
        self.start_seconds = 0.0

    @property
    def connection_file(self) -> Path:
        return self.runtime_dir / "daemon.json"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(SUPPORT_DIR), env.get("PYTHONPATH", "")])
        return env

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        cmd = [
            sys.executable,
            "-m",
            "daemon",
            "serve",
            "--runtime-dir",
            str(self.runtime_dir),
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
        ]
        self._close_handles()
        started = time.monotonic()
        self.log = open(self.base / f"daemon-{int(time.time() * 1000)}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=self.env(),
            cwd=self.base,
            preexec_fn=self.preexec,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready "):
                self.ready_line = line.strip()
                self.start_seconds = time.monotonic() - started
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"daemon did not become ready; its log:\n{self.read_log()}")

    def read_log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.base.glob("daemon-*.log")))

    def info(self) -> ConnectionInfo:
        return read_connection_file(self.connection_file)

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("timeout", 10.0)
        return Client.from_file(self.connection_file, **kwargs)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def _close_handles(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
        if hasattr(self, "log"):
            self.log.close()

    def cleanup(self) -> None:
        self.stop()
        self._close_handles()
        shutil.rmtree(self.base, ignore_errors=True)
