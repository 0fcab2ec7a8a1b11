"""A few threads for requests that wait on files (storing an upload, reading results and frames), so that the
socket thread never does. They are daemon threads: a read stuck on a dead network drive cannot keep the daemon
from exiting."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("daemon.io_pool")

Work = Callable[[], Any]
Done = Callable[[Any], None]
"""Called on the pool's thread with the work's return value, or with the exception it raised."""


class IoPool:
    def __init__(self, threads: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Work, Done] | None] = queue.SimpleQueue()
        self._busy = 0
        self._idle = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{index}", daemon=True) for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Work, done: Done) -> None:
        """Run ``work()`` on a pool thread, then ``done(its result or the exception it raised)`` there."""
        with self._idle:
            if self._closed:
                raise RuntimeError("the I/O pool is closed")
            self._busy += 1
        self._queue.put((work, done))

    def close(self, timeout: float) -> bool:
        """Take no more work; wait up to ``timeout`` seconds for the work already given. Returns whether all of it
        finished (what did not is abandoned to its thread)."""
        with self._idle:
            self._closed = True
            finished = self._idle.wait_for(lambda: self._busy == 0, timeout)
        for _ in self._threads:
            self._queue.put(None)
        return finished

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            work, done = item
            try:
                outcome = work()
            except BaseException as exc:  # handed to done(), which answers the request with it
                outcome = exc
            try:
                done(outcome)
            except Exception:  # done() only publishes; never let it end the thread
                log.exception("an I/O request's completion failed")
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()
