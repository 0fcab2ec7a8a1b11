"""Admission: the checks a mode's request passes before it runs, shared by batch jobs and live sessions.

``mode`` -> its runner; ``params`` -> the runner's checked values; ``inputs`` -> specs that name existing files
or stored blobs (:mod:`shared.inputs`), then opened media the runner accepts. Every refusal is an
:class:`~shared.errors.InvalidInput` (or a :class:`~shared.errors.VfxError`) naming the field and the fix.
Readiness (weights, packages) is the registry's :meth:`~daemon.registry.ModelRegistry.check_ready`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.runner import InvalidInput, Media, Runner
from shared import errors as e
from shared.errors import VfxError
from shared.inputs import WIRE_FORMS, parse_input

from .blobs import BlobStore
from .job_inputs import open_inputs
from .registry import ModelRegistry


def _is_file(path: str) -> bool:
    """Whether ``path`` names an existing file; a name the system cannot even look up (too long, a NUL byte)
    names none."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _shortened(path: str, chars: int = 200) -> str:
    """A path as quoted in an error: a 100 000-character one is cut, an error is for people to read."""
    return path if len(path) <= chars else f"{path[: chars // 2]}...{path[-chars // 2 :]} ({len(path)} characters)"


class Admission:
    def __init__(self, registry: ModelRegistry, blobs: BlobStore, max_paths_per_input: int) -> None:
        self.registry = registry
        self.blobs = blobs
        self.max_paths_per_input = max_paths_per_input

    def runner(self, mode: Any, live: bool = False) -> Runner:
        """The runner of ``mode``; with ``live``, one that has a live variant."""
        runner = self.registry.runner(str(mode))
        if live and runner.live_params is None:
            raise VfxError(f"mode {mode} has no live variant", code=e.INVALID_INPUT, detail={"field": "mode"})
        return runner

    def params(self, runner: Runner, raw: Any, live: bool = False) -> dict[str, Any]:
        """``raw`` checked against the runner's parameters (its live options with ``live``), defaults filled."""
        if not isinstance(raw, dict):
            raise VfxError("params must be a map", code=e.INVALID_INPUT, detail={"field": "params"})
        try:
            return runner.validate_live(raw) if live else runner.validate(raw)
        except InvalidInput as exc:
            raise exc.under("params") from None

    def media(self, raw: Any) -> dict[str, Media]:
        """The inputs of ``raw`` opened (metadata only), for a live session."""
        if not isinstance(raw, dict):
            raise VfxError("inputs must be a map", code=e.INVALID_INPUT, detail={"field": "inputs"})
        try:
            return open_inputs(self.blobs, raw)
        except InvalidInput as exc:
            raise exc.under("inputs") from None

    def inputs(self, runner: Runner, raw: dict[str, Any]) -> dict[str, Any]:
        """A job's input specs, checked against the runner's slots: each names a slot, the required ones are
        there, each spec is well formed and names existing absolute files or stored blobs. Returns them as
        sent; refuses with the field path (``inputs.<name>``, ``inputs.<name>.path``)."""
        slots = runner.inputs
        names = {s.name for s in slots}
        for name in raw:
            if name not in names:
                raise VfxError(
                    f"input {name!r} is not taken by this mode (inputs: {', '.join(sorted(names)) or 'none'})",
                    code=e.INVALID_INPUT,
                    detail={"field": f"inputs.{name}"},
                )
        missing_blobs: list[str] = []
        for slot in slots:
            spec = raw.get(slot.name)
            field_name = f"inputs.{slot.name}"
            if spec is None:
                if slot.required:
                    raise VfxError(
                        f"{field_name} is required ({slot.help or slot.kind})",
                        code=e.INVALID_INPUT,
                        detail={"field": field_name},
                    )
                continue
            try:
                parsed = parse_input(slot.name, spec, WIRE_FORMS)
            except InvalidInput as exc:
                raise exc.under("inputs") from None
            if parsed.form == "path":
                if not Path(parsed.value).is_absolute():
                    raise InvalidInput(f"{field_name}.path", "must be an absolute path on the daemon's machine")
                if not _is_file(parsed.value):
                    raise InvalidInput(f"{field_name}.path", f"file not found: {_shortened(parsed.value)}")
            elif parsed.form == "paths":
                paths = parsed.value
                if not paths or len(paths) > self.max_paths_per_input:
                    raise InvalidInput(
                        f"{field_name}.paths",
                        f"must be a non-empty list of at most {self.max_paths_per_input} image files",
                    )
                absent = [p for p in paths if not _is_file(p)]
                if absent:
                    raise InvalidInput(
                        f"{field_name}.paths",
                        f"{len(absent)} file(s) not found, first: {_shortened(str(absent[0]))}",
                    )
            elif not self.blobs.has(parsed.value):
                missing_blobs.append(parsed.value)
        if missing_blobs:
            raise VfxError(
                f"{len(missing_blobs)} input blob(s) are not stored yet; upload them first",
                code=e.NOT_FOUND,
                detail={"missing_blobs": missing_blobs},
            )
        return raw

    def check_media(self, runner: Runner, params: dict[str, Any], inputs: dict[str, Any]) -> None:
        """Open the inputs (metadata only) so an undecodable file, an empty frame range or media that do not
        fit the parameters are refused now, naming the input, instead of failing the job later."""
        try:
            runner.check_media(params, open_inputs(self.blobs, inputs))
        except InvalidInput as exc:
            raise exc.under("inputs") from None
