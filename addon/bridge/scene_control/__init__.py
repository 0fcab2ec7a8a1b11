"""Control passes from a Blender scene, in plain numpy: what ``addon/scene_passes.py`` computes on Blender's data.

- :mod:`.framing`: the generation size, the render size that covers it and the crop, the frame windows;
- :mod:`.projection`: points through a camera's view and projection matrices into pixels;
- :mod:`.body_joints`: an armature's bones (by bone-map role) to the 18 OpenPose keypoints, hidden joints;
- :mod:`.skeleton_drawing`: the OpenPose drawing of :mod:`shared.openpose`, numpy only;
- :mod:`.exr`: the passes of the uncompressed OpenEXR files Blender renders;
- :mod:`.depth`: a shot's Z pass to the depth control's grey pictures.

Nothing here imports ``bpy``: tests run it without Blender, as they do ``addon/retarget``.
"""
