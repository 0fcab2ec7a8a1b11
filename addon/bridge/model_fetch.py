"""*Fetch* in the Generate panel: the daemon's own ``fetch-models`` command, run as a child process. No bpy.

The command is the one the daemon's health gives for the mode (``download.argv``: its Python, models folder and
manifest), so what the button fetches is what that daemon loads. The command's progress bar (stderr, lines ended by
carriage returns) becomes :attr:`FetchRun.progress`; *Cancel* ends the process, and the next *Fetch* resumes the
file that was cut (see ``daemon/fetch.py``). Any thread may read a run's state; only its thread writes it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import threading
from collections import deque
from pathlib import Path

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


class FetchRun:
    """One fetch of one mode on its own thread."""

    def __init__(self, mode: str, argv: list[str]) -> None:
        self.mode, self.argv = mode, list(argv)
        self.state = "running"
        """running, done, failed or cancelled."""
        self.progress = "Starting"
        """The command's latest progress line, e.g. ``[3/16] transformer/...: [####....] 42.0% ...``."""
        self.fraction = 0.0
        """Of the file being downloaded now (the command reports per file)."""
        self.error = ""
        self._lines: deque[str] = deque(maxlen=50)
        self._process: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vfx-mocap-fetch-{mode}", daemon=True)

    def start(self) -> FetchRun:
        if not Path(self.argv[0]).is_file():
            self.state = "failed"
            self.error = (
                f"The daemon's Python {self.argv[0]} is not on this machine (a daemon elsewhere): run "
                f"`{' '.join(self.argv)}` where the daemon runs"
            )
            return self
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _line(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self._lines.append(text)
        self.progress = text
        match = _PERCENT.search(text)
        if match:
            self.fraction = min(1.0, float(match.group(1)) / 100.0)

    def _run(self) -> None:
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        stderr = self._process.stderr
        assert isinstance(stderr, io.BufferedReader), "a pipe with the default buffering"
        pending = b""
        while block := stderr.read1(4096):
            pending += block
            *complete, pending = re.split(rb"[\r\n]", pending)
            for raw in complete:
                self._line(raw.decode("utf-8", "replace"))
        self._line(pending.decode("utf-8", "replace"))
        stderr.close()
        code = self._process.wait()
        if self._cancelled.is_set():
            self.state, self.error = "cancelled", "Cancelled: the next Fetch resumes where this one stopped"
        elif code == 0:
            self.state, self.fraction, self.progress = "done", 1.0, "Fetched and verified"
        else:
            errors = [line for line in self._lines if line.startswith("error:")]
            self.state = "failed"
            self.error = (errors[-1] if errors else (self._lines[-1] if self._lines else f"exit code {code}")).strip()
