"""The next shot's pose graph, built on a thread while the current shot's last frames are tracked.

A pose job needs a fresh MediaPipe graph at each shot cut (no tracking or smoothing may cross it). Building one
and running its first frame costs about 80-100 ms of CPU, the time of five tracked frames at 528p, and the job
waited for it at every cut. The cuts are found on the decoding thread, frames ahead of the tracking
(:meth:`models.runner.Media.frames`), so the job can ask for the next graph early (:meth:`GraphAhead.prepare`):
it is built on the other core and warmed with one black frame, which does its first-frame set-up.

Why warming changes nothing: a graph that has seen only frames without anybody holds no tracking or smoothing
state, so its landmarks for the shot are exactly those of a graph built at the cut (the pose tests compare
them). The cost is memory: the warm graph (~120 MB) exists beside the current one from the moment the cut is
seen until the job reaches it, up to :data:`models.media.PREFETCH_FRAMES` frames.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar


class Graph(Protocol):
    def warm(self) -> None:
        """Run the graph's first-frame set-up on a frame that leaves it as fresh as before."""

    def close(self) -> None: ...


G = TypeVar("G", bound=Graph)


class GraphAhead(Generic[G]):
    """Fresh graphs from ``build``: :meth:`take` gives the one prepared ahead, or builds one there and then."""

    def __init__(self, build: Callable[[], G]) -> None:
        self._build = build
        self._executor: ThreadPoolExecutor | None = None
        self._next: Future[G] | None = None

    @property
    def pending(self) -> bool:
        """Whether a graph is being built or waits to be taken."""
        return self._next is not None

    def prepare(self) -> None:
        """Start building and warming the next graph on a thread, unless one is already pending."""
        if self._next is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="pose-graph-ahead")
            self._next = self._executor.submit(self._built_and_warmed)

    def take(self) -> G:
        """The prepared graph (waiting for it to be ready; its build error raises here), else a new one."""
        future, self._next = self._next, None
        return future.result() if future is not None else self._build()

    def close(self) -> None:
        """Close a graph prepared and never taken; wait for the thread to end."""
        future, self._next = self._next, None
        try:
            if future is not None and future.exception() is None:
                future.result().close()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _built_and_warmed(self) -> G:
        graph = self._build()
        try:
            graph.warm()
        except BaseException:
            graph.close()
            raise
        return graph
