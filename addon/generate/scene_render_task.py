"""The scene pass render in progress: one at a time, one frame per :meth:`SceneRenderTask.step`, cancellable
between frames, shown in the Generate from Scene panel (progress line, Cancel button, how the last one ended).

The operators of :mod:`.scene_generate` drive it: a modal operator steps it on a window timer, so Blender
redraws and takes Esc between frames; in background mode (no event loop) their ``execute`` steps it to the end
at once. When the pass is complete, ``finish`` (given by the operator) inserts the strip and, for Generate from
Scene, submits the job; a cancelled or failed render does neither and leaves no pass folder behind.

Main thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..common import runtime
from ..common.errors import UserError
from .scene_passes import PassRender, RenderedPass

RENDERING, FINISHED, CANCELLED, FAILED = "rendering", "finished", "cancelled", "failed"


@dataclass(eq=False)
class SceneRenderTask:
    """A pass render and what to do with the pass once complete. ``state`` is RENDERING until it ends as FINISHED,
    CANCELLED or FAILED; ``message`` then says how (the operator's report, also shown in the panel)."""

    render: PassRender
    finish: Callable[[RenderedPass], str]
    """Called once with the complete pass (main thread): inserts it, submits; returns the report. UserError from
    it fails the task (the pass stays on disk and in the sequencer: it is complete)."""
    what: str
    """What is being done, in the artist's words: "Rendering the pose pass", "Generating from the depth pass"."""
    state: str = RENDERING
    message: str = ""
    progress_seen: list[float] = field(default_factory=list)
    """Every progress value reported so far, in order (0 first)."""

    def __post_init__(self) -> None:
        self.progress_seen.append(self.progress)

    @property
    def progress(self) -> float:
        return self.render.progress

    @property
    def rendering(self) -> bool:
        return self.state == RENDERING

    def status_text(self) -> str:
        """One line for the status bar and the panel: what, how far, how to stop."""
        shot = self.render.rendered.shot
        return f"{self.what}: frame {self.render.frames_rendered}/{shot.frame_count} ({self.progress:.0%})"

    def step(self) -> bool:
        """Render the next frame; on the last, call ``finish``. True once the task has ended (any way)."""
        if not self.rendering:
            return True
        try:
            complete = self.render.step()
        except UserError as exc:
            self._fail(str(exc))
            return True
        except ReferenceError:  # undo or another file replaced the scene's data between two frames
            self._fail(f"{self.what} stopped: the scene was replaced (undo, or another file opened) while it rendered")
            return True
        except Exception as exc:  # a bug must reach the panel, not strand the modal operator
            self._fail(runtime.report_internal_error(f"{self.what} (frame {self.render.frames_rendered + 1})", exc))
            return True
        self.progress_seen.append(self.progress)
        if complete:
            try:
                self.message = self.finish(self.render.rendered)
                self.state = FINISHED
            except UserError as exc:
                self._fail(str(exc))
            except Exception as exc:
                self._fail(runtime.report_internal_error(f"{self.what} (after the last frame)", exc))
        return not self.rendering

    def cancel(self) -> None:
        """Stop between frames: settings and frame put back, the partial pass folder removed, nothing inserted or
        submitted. Does nothing once the task has ended."""
        if not self.rendering:
            return
        self.render.cancel()
        self.state = CANCELLED
        self.message = (
            f"{self.what} cancelled after {self.render.frames_rendered} of {self.render.rendered.shot.frame_count} "
            "frames: the partial pass was removed, nothing was inserted or submitted"
        )

    def _fail(self, message: str) -> None:
        self.render.cancel()
        self.state = FAILED
        self.message = message
        runtime.get().last_error = message


_current: SceneRenderTask | None = None
"""The running task, or the last one (to show how it ended) until the next starts."""


def current() -> SceneRenderTask | None:
    return _current


def busy() -> bool:
    return _current is not None and _current.rendering


def start(render: PassRender, finish: Callable[[RenderedPass], str], what: str) -> SceneRenderTask:
    """Make ``render`` the current task. The caller checked :func:`busy` before creating the render."""
    global _current
    _current = SceneRenderTask(render, finish, what)
    return _current


def cancel_current() -> bool:
    """Cancel the running task (the panel's Cancel button); False if none is running."""
    if not busy():
        return False
    assert _current is not None
    _current.cancel()
    return True


def forget() -> None:
    """Cancel a running task and forget the last one (add-on unregistered)."""
    global _current
    cancel_current()
    _current = None
