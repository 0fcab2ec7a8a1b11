"""VFX Motion Capture, a Blender extension. The add-on lives in ``addon/``; the protocol in ``shared/``.

``bpy`` is imported only when Blender registers the extension, so tools that import this folder as a package
(pytest collects the repository root) do not need Blender.
"""


def register() -> None:
    from .addon import register as register_addon

    register_addon()


def unregister() -> None:
    from .addon import unregister as unregister_addon

    unregister_addon()
