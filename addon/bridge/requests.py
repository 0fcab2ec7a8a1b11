"""What the add-on asks of the daemon, checked before it is sent: the one builder of job requests and the one of
live-session requests.

Both check what the user can fix, in one order: the daemon's state and the mode (:func:`mode_info`, first, so the
Blender side can read the mode's input slots), then each input spec, parsed with the protocol's own parser
(:func:`shared.inputs.parse_input`) so that a malformed spec is refused here naming its field
(``inputs.video: ...``) instead of travelling to the daemon, then whether the mode is ready. Plain data in and out:
``common/requests.py`` reads the panel and passes the values.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...shared.errors import InvalidInput
from ...shared.inputs import parse_input
from .connection_thread import DaemonStatus
from .errors import UserError
from .live_client import LiveRequest, daemon_connection_file
from .settings import DaemonSettings


@dataclass(frozen=True)
class StripSource:
    """A strip turned into an input spec, with where it sat in the timeline at that moment."""

    spec: dict[str, Any]
    strip_name: str
    channel: int
    frame_start: int
    """First visible timeline frame."""
    frame_count: int
    """Visible timeline frames."""
    content_offset: float
    """Timeline frames from the strip's content start to its first visible frame (its left handle)."""


@dataclass(frozen=True)
class JobRequest:
    """Everything ``Connection.submit`` sends, plus where the source strip was."""

    job_id: str
    mode: str
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    source: StripSource | None
    licences: str = ""
    """The mode's models and their licences, ``"model: licence; ..."``, from the daemon's health."""


def licences_text(mode_info: Mapping[str, Any]) -> str:
    """``"model: licence; ..."`` of a mode, from its entry in the daemon's health."""
    return "; ".join(f"{item['model']}: {item['licence']}" for item in mode_info.get("licences") or ())


def mode_info(status: DaemonStatus, mode: str, live: bool = False) -> dict[str, Any]:
    """The daemon's description of ``mode`` (its entry in the health: inputs, params, live options, readiness).
    Raises UserError when the daemon is not connected, has no such mode, or (``live``) no live variant of it."""
    if status.state == "starting":
        raise UserError("The daemon is still starting: try again in a moment")
    if status.state != "connected":
        reason = " (it failed: the Daemon panel says why)" if status.state == "error" else ""
        raise UserError(f"The daemon is not running{reason}: start it in the Motion Capture panel")
    modes = (status.health or {}).get("modes", {})
    info = modes.get(mode)
    if info is None:
        raise UserError(f"The daemon has no mode '{mode}'; it offers: {', '.join(sorted(modes)) or 'none'}")
    if live and info.get("live") is None:
        raise UserError(f"Mode '{mode}' has no live variant in this daemon")
    return dict(info)


def require_ready(mode: str, info: Mapping[str, Any]) -> None:
    """UserError naming what ``mode`` lacks (and the fix, when the daemon gives one) unless it is ready."""
    if not info.get("ready", False):
        missing = "; ".join(info.get("missing") or ()) or "the daemon did not say what"
        fix = "; ".join(info.get("fix") or ())
        raise UserError(f"Mode '{mode}' is not ready. Missing: {missing}" + (f". Fix: {fix}" if fix else ""))


def checked_inputs(inputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``inputs`` after parsing each spec as the daemon will. Raises UserError naming the field
    (``inputs.<name>``) and what the spec must look like."""
    for name, spec in inputs.items():
        try:
            parse_input(name, spec)
        except InvalidInput as exc:
            raise UserError(f"{exc.under('inputs').path}: {exc.message}") from None
    return {name: dict(spec) for name, spec in inputs.items()}


def job_request(
    mode: str,
    info: Mapping[str, Any],
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    source: StripSource | None = None,
) -> JobRequest:
    """A new job (fresh id) of ``mode`` (``info``: from :func:`mode_info`). Raises UserError for a malformed
    input spec, then for a mode that is not ready: input problems first, as the panel can fix them."""
    checked = checked_inputs(inputs)
    require_ready(mode, info)
    return JobRequest(uuid.uuid4().hex, mode, dict(params), checked, source, licences_text(info))


def live_request(
    settings: DaemonSettings,
    status: DaemonStatus,
    mode: str,
    info: Mapping[str, Any],
    source: Mapping[str, Any],
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> LiveRequest:
    """A live session of ``mode`` (``info``: from :func:`mode_info` with ``live``) on ``source``
    (``{"camera": index}`` or ``{"path": video, "loop": True}``), to the daemon ``settings`` and ``status``
    describe. Raises UserError as :func:`job_request` does, or when the daemon's connection file is unusable."""
    checked = checked_inputs(inputs)
    require_ready(mode, info)
    connection_file: Path = daemon_connection_file(settings, status)
    return LiveRequest(connection_file, mode, dict(source), dict(params), checked, settings.client_key_file)
