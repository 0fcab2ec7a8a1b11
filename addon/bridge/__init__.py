"""The add-on's bridge to the daemon: everything that runs without Blender.

No module here imports ``bpy`` or ``mathutils`` (``tests/test_import_boundaries.py`` walks the package to prove
it), so each is unit-tested with a real daemon and no Blender. The bpy side turns Blender data into the plain
values these modules take (:class:`.settings.DaemonSettings`, :class:`.live_client.LiveRequest`, input specs).
"""
