# mypy: disable-error-code="valid-type"
# Blender defines properties from class annotations such as ``name: bpy.props.StringProperty(...)``: calls, which
# mypy cannot read as types. Only that error code is off here; the rest of this module is checked.
"""Scene-level state saved in the .blend: the chosen mode and its options, the reference, and the job list.

Jobs live in the file so that a job outlives the Blender session that submitted it: after reopening the
file its record is fetched again and its result can still be inserted. Main thread only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import bpy

from ...shared.messages import FINAL_STATES, JOB_STATES, JobView

STATE_TEXTS = {
    "submitting": "is being submitted",
    "queued": "is waiting in the queue",
    "running": "is running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "was cancelled",
    "interrupted": "was interrupted",
}

_choice_items_cache: dict[str, list[tuple[str, str, str, int]]] = {}
"""Blender requires the strings of dynamic enum items to stay referenced from Python."""


def _choice_items(param: MocapParam, _context: bpy.types.Context | None) -> list[tuple[str, str, str, int]]:
    key = param.choices
    if key not in _choice_items_cache:
        names = [name for name in key.split("|") if name]
        _choice_items_cache[key] = [(name, name.replace("_", " ").title(), "", i) for i, name in enumerate(names)]
    return _choice_items_cache[key]


def _get_choice(param: MocapParam) -> int:
    names = param.choices.split("|")
    return names.index(param.text_value) if param.text_value in names else 0


def _set_choice(param: MocapParam, index: int) -> None:
    param.text_value = param.choices.split("|")[index]


class MocapParam(bpy.types.PropertyGroup):
    """One option of one mode, as the daemon describes it (``name`` is the option's name)."""

    mode: bpy.props.StringProperty()
    kind: bpy.props.StringProperty(description="bool, int, float, str or choice")
    choices: bpy.props.StringProperty(description="Allowed values of a choice, separated by |")
    bool_value: bpy.props.BoolProperty()
    int_value: bpy.props.IntProperty()
    float_value: bpy.props.FloatProperty()
    text_value: bpy.props.StringProperty()
    choice_value: bpy.props.EnumProperty(items=_choice_items, get=_get_choice, set=_set_choice)

    @property
    def value_attr(self) -> str:
        """The property holding this option's value, for ``layout.prop``."""
        return {"bool": "bool_value", "int": "int_value", "float": "float_value", "choice": "choice_value"}.get(
            self.kind, "text_value"
        )

    @property
    def value(self) -> Any:
        return self.text_value if self.kind == "choice" else getattr(self, self.value_attr)

    def set_value(self, value: Any) -> None:
        if self.kind == "choice":
            self.text_value = str(value)
        else:
            setattr(self, self.value_attr, value)


class MocapJob(bpy.types.PropertyGroup):
    """A job this scene submitted; ``name`` is its job id. Mirrors the daemon's job record.

    ``state`` is one of the protocol's job states, or ``submitting`` until the daemon acknowledged the job.
    """

    mode: bpy.props.StringProperty()
    state: bpy.props.StringProperty(default="submitting")
    fraction: bpy.props.FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    stage: bpy.props.StringProperty()
    eta_s: bpy.props.FloatProperty(default=-1.0, description="Seconds left, -1 when unknown")
    error: bpy.props.StringProperty()
    params_json: bpy.props.StringProperty(default="{}")
    inputs_json: bpy.props.StringProperty(default="{}", description="The inputs as sent, to submit again")
    refused_at_submit: bpy.props.BoolProperty(description="The daemon refused the job: Retry submits it again")
    output_dir: bpy.props.StringProperty(subtype="DIR_PATH")
    frame_count: bpy.props.IntProperty()
    source_strip: bpy.props.StringProperty(description="Name of the strip the job was made from")
    source_channel: bpy.props.IntProperty()
    source_frame_start: bpy.props.IntProperty(description="First visible frame of the source at submission")
    source_frame_count: bpy.props.IntProperty(description="Visible frames of the source at submission")
    source_content_offset: bpy.props.FloatProperty(
        description="Frames from the source's content start to its first visible frame"
    )
    result_strip: bpy.props.StringProperty(description="Name of the inserted result strip")
    licences: bpy.props.StringProperty(description="Licences of the mode's models, as the daemon listed them")
    strip_props_json: bpy.props.StringProperty(
        default="{}", description="Custom properties the result strip gets besides the job's own (a JSON object)"
    )
    warning: bpy.props.StringProperty(description="What the daemon warns about a finished job (e.g. a truncated clip)")

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def state_text(self) -> str:
        """The state in words, for messages: "Job 1a2b3c4d <state_text>"."""
        return STATE_TEXTS.get(self.state, f"is {self.state}")

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    def apply_view(self, view: JobView) -> None:
        """Copy the daemon's view of this job (from a reply or a state event) into this item. Raises
        ValueError for a state this add-on does not know (a newer daemon's)."""
        if view.state not in JOB_STATES:
            raise ValueError(f"job {view.job_id} has an unknown state {view.state!r}; update the add-on")
        self.state = view.state
        self.fraction = view.fraction
        self.stage = "" if self.is_final else view.stage  # a finished job has no stage
        self.eta_s = view.eta_s if view.eta_s is not None else -1.0
        self.error = view.error_message
        self.output_dir = view.output_dir or self.output_dir
        self.frame_count = view.frame_count
        warnings = view.summary.get("warnings") if isinstance(view.summary, Mapping) else None
        self.warning = "; ".join(str(w) for w in warnings) if isinstance(warnings, list) else ""


class MocapSceneState(bpy.types.PropertyGroup):
    mode: bpy.props.StringProperty(name="Mode", default="pose")
    params: bpy.props.CollectionProperty(type=MocapParam)
    reference_source: bpy.props.EnumProperty(
        name="Reference",
        items=(
            ("NONE", "None", "No reference image"),
            ("FILE", "File", "An image file"),
            ("STRIP", "Strip", "An image strip of this scene's sequencer"),
        ),
        default="NONE",
    )
    reference_path: bpy.props.StringProperty(name="Reference Image", subtype="FILE_PATH")
    reference_strip: bpy.props.StringProperty(name="Reference Strip")
    auto_insert: bpy.props.BoolProperty(
        name="Insert When Done",
        description="Insert a job's result into the sequencer as soon as it succeeds",
        default=True,
    )
    jobs: bpy.props.CollectionProperty(type=MocapJob)
    active_job_index: bpy.props.IntProperty()

    def mode_params(self, mode: str) -> list[MocapParam]:
        return [param for param in self.params if param.mode == mode]

    def sync_params(self, modes: Mapping[str, Mapping[str, Any]]) -> None:
        """Add the options the daemon describes and do not exist yet (at their defaults); keep values."""
        known = {(param.mode, param.name) for param in self.params}
        for mode, info in modes.items():
            for schema in info.get("params", ()):
                if (mode, schema["name"]) in known:
                    continue
                param = self.params.add()
                param.mode, param.name, param.kind = mode, schema["name"], schema["kind"]
                param.choices = "|".join(schema.get("choices") or ())
                if schema.get("default") is not None:
                    param.set_value(schema["default"])


CLASSES = (MocapParam, MocapJob, MocapSceneState)


def register() -> None:
    bpy.types.Scene.vfx_mocap = bpy.props.PointerProperty(type=MocapSceneState)


def unregister() -> None:
    del bpy.types.Scene.vfx_mocap
    _choice_items_cache.clear()
