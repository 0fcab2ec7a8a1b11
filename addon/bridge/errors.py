"""The one base class of the errors a user can fix."""

from __future__ import annotations


class UserError(Exception):
    """The selection, a setting or the daemon's state cannot do what was asked; the message says what to change.

    Every error the add-on shows as the user's to fix derives from it (the bridge's ``LiveError``,
    ``BoneMapError``, ``FaceError``; the Blender side's ``ArmatureError``, ``BakeError`` ...), so an operator
    catches this one class and fails with :func:`addon.common.errors.fail`.
    """
