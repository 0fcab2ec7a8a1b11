"""How an operator fails: one class for what the user can fix, one way to say so.

An operator catches :class:`UserError` (defined in the bridge, which raises some too) and returns
:func:`fail`, which shows the message as Blender's error report and as the panel's last error. Main thread only.
"""

from __future__ import annotations

import bpy

from ..bridge.errors import UserError as UserError
from . import runtime


def fail(operator: bpy.types.Operator, error: UserError | str, where: str = "") -> set[str]:
    """Report ``error`` in the UI and keep it as the panel's last error; ``where`` (``generate`` or a job id)
    also shows it next to the button that failed. Returns ``{'CANCELLED'}`` for the operator to return."""
    message = str(error)
    rt = runtime.get()
    rt.last_error = message
    if where:
        rt.action_errors[where] = message
    operator.report({"ERROR"}, message)
    return {"CANCELLED"}
