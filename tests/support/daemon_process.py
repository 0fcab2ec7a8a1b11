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
        self.command_prefix: list[str] = []
        """Runs the daemon's command (see :func:`data_folder_hidden`)."""
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
            *self.command_prefix,
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


def data_folder_hidden(data_dir: Path) -> list[str]:
    """A command prefix that runs a daemon as if on another machine: in its own mount namespace, with a fresh,
    empty file system (tmpfs) mounted at ``data_dir``. What the daemon writes there (its job store, job folders,
    results) exists for the daemon alone; every other process sees an empty ``data_dir``. The network is shared, so
    clients reach it as usual. Raises RuntimeError, saying what is missing, where this machine cannot do it."""
    if shutil.which("unshare") is None:
        raise RuntimeError("a daemon 'on another machine' needs util-linux's unshare (apt-get install util-linux)")
    # as root, a mount namespace of its own; otherwise one inside a user namespace where this user is root
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = 'mkdir -p "$0" && mount -t tmpfs vfx-elsewhere "$0" && exec "$@"'
    prefix = ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", script, str(data_dir)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise RuntimeError(
            f"cannot give a daemon a file system of its own ({' '.join(prefix[:5])}... failed: {probe.stderr.strip()}):"
            " run the tests as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        )
    return prefix


def daemon_elsewhere(
    folder: Path, plugin: bool = True, allow_paths: tuple[Path, ...] = ()
) -> tuple[DaemonProcess, Path]:
    """A started daemon "on another machine" (:func:`data_folder_hidden`) that takes only encrypted connections on
    loopback TCP, and the key file (in ``python -m daemon keygen``'s form) of the one client it allows; that client
    may give input files inside ``allow_paths`` (``--allow-path``). The caller cleans the daemon up."""
    import zmq

    public, secret = (key.decode("ascii") for key in zmq.curve_keypair())
    key_file = folder / "client.key"
    key_file.write_text(f"public={public}\nsecret={secret}\n", encoding="ascii")
    (folder / "authorized").write_text(public + "\n", encoding="ascii")
    listen = ("--listen", "tcp://127.0.0.1:0", "--curve", "--authorized-keys", str(folder / "authorized"))
    allowed = tuple(arg for path in allow_paths for arg in ("--allow-path", str(path)))
    proc = DaemonProcess(extra_args=(*listen, *allowed), plugin=plugin)
    proc.command_prefix = data_folder_hidden(proc.data_dir)
    return proc.start(), key_file
