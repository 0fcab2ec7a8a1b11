"""The daemon as a child process of Blender: start it, notice when it is ready or has died, stop it.

Used by the connection thread only (never blocks the main thread). Contract with the daemon: it is started as
``<python> -m vfx_mocap serve --runtime-dir R --data-dir D --log-dir L --device X``, prints ``ready <connection file>``
on stdout when it accepts requests, stops gracefully on a ``shutdown`` request or SIGTERM, and writes its log to
stderr, which goes to ``<log dir>/daemon.stderr.log`` so that a failure can be shown with its real text.

After the ready line the daemon sends its stdout to its stderr (the log), so nothing here reads the pipe
afterwards, and a daemon left to finish its jobs when Blender quits (see :mod:`.connection_thread`) never
writes into a pipe nobody reads.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

STDERR_LOG_NAME = "daemon.stderr.log"
"""Beside the daemon's own ``daemon.log``: what it printed to stderr, tracebacks of a crash included."""
READY_PREFIX = "ready "
_LEFT_RUNNING: list[DaemonProcess] = []
"""Daemons left to finish their jobs (:meth:`DaemonProcess.leave_running`): kept so that one can be reclaimed
when the add-on comes back (and Popen never warns about a child collected while it runs)."""


class DaemonProcess:
    """One daemon child process. Methods may be called from one thread at a time."""

    def __init__(self, python: str, runtime_dir: Path, data_dir: Path, device: str, log_dir: Path) -> None:
        """Spawn the daemon; return at once. Raises OSError if ``python`` cannot be executed."""
        data_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / STDERR_LOG_NAME
        self._ready_file: Path | None = None
        command = [
            python,
            "-m",
            "vfx_mocap",  # the installed daemon's entry point (daemon, models and shared live inside it)
            "serve",
            "--runtime-dir",
            str(runtime_dir),
            "--data-dir",
            str(data_dir),
            "--log-dir",
            str(log_dir),
            "--device",
            device,
        ]
        with self.log_path.open("wb") as log:  # one start per file: it stays small
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=data_dir,  # never pick up a stray "daemon" folder from Blender's working directory
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        self._reader = threading.Thread(target=self._read_stdout, name="vfx-mocap-daemon-stdout", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def _read_stdout(self) -> None:
        """Reader thread: wait for the ready line (or the end of the output, if the daemon dies first)."""
        assert self._popen.stdout is not None
        try:
            for raw in self._popen.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith(READY_PREFIX):
                    self._ready_file = Path(line[len(READY_PREFIX) :])
                    return
        except (OSError, ValueError):
            return  # stop() closed the pipe while a grandchild process still held its other end

    def ready_file(self) -> Path | None:
        """The connection file the daemon announced, or None while it is still starting."""
        return self._ready_file

    def exit_code(self) -> int | None:
        """The exit code once the process has ended (negative: killed by that signal), else None."""
        return self._popen.poll()

    def failure_text(self) -> str:
        """Why the daemon ended (once :meth:`exit_code` is not None): how it ended and the cause its log gives (the
        exception that ended a traceback, else the last error line), with where the whole log is."""
        code = self._popen.returncode
        how = f"exited with code {code}" if code >= 0 else f"was killed (signal {-code})"
        cause = self.cause()
        return f"The daemon {how}{': ' + cause if cause else '.'} (log: {self.log_path})"

    def cause(self) -> str:
        """The line of the log that says why the daemon ended: the last traceback's exception line, else the last
        ERROR or CRITICAL line, else "" (lines about other things are not a cause)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        traceback_at = max((i for i, line in enumerate(lines) if line.startswith("Traceback")), default=None)
        if traceback_at is not None:
            after = [line for line in lines[traceback_at + 1 :] if line and not line.startswith((" ", "\t"))]
            if after:
                return after[0].strip()
        errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line or line.startswith("error:")]
        return errors[-1].strip() if errors else ""

    def log_tail(self, lines: int = 8) -> str:
        """The last ``lines`` lines of the daemon's log, or a note where to find it."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
                tail = log.read().decode("utf-8", "replace").splitlines()[-lines:]
        except OSError as exc:
            return f"(its log {self.log_path} cannot be read: {exc})"
        return "\n".join(tail) + f"\n(log: {self.log_path})"

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process to end; True if it has."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def leave_running(self) -> None:
        """Stop looking after the process: it finishes its work and exits on its own (it was asked to)."""
        self._reader.join(timeout=1.0)
        if self._popen.stdout is not None:
            self._popen.stdout.close()
        _LEFT_RUNNING.append(self)  # kept: it is still our child, to be reclaimed or reaped

    @classmethod
    def reclaim(cls, pid: int) -> DaemonProcess | None:
        """The process ``pid`` if this Python started it and left it running; it is looked after again."""
        for process in _LEFT_RUNNING:
            if process.pid == pid:
                _LEFT_RUNNING.remove(process)
                return process
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """End the process: SIGTERM (graceful), then kill after ``timeout`` seconds. Idempotent."""
        if self._popen.poll() is None:
            self._popen.terminate()
            if not self.wait(timeout):
                self._popen.kill()
                self._popen.wait()
        self._reader.join(timeout=1.0)
        if self._popen.stdout is not None:
            self._popen.stdout.close()
