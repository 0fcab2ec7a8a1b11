"""Landmarks to armature rotations, in plain numpy: no ``bpy`` here, so it runs on a worker thread, in the live
loop's thread and in plain-Python tests.

- :mod:`.frames`: MediaPipe's world frame to Blender's, and the landmark names.
- :mod:`.rig_data`: the plain-data rest pose of an armature (what the solver consumes).
- :mod:`.bone_maps`: which bone plays which body part (built-in maps, detection, JSON presets).
- :mod:`.rotations`: batched rotation maths (matrices and quaternions, Blender's w, x, y, z order).
- :mod:`.filters`: the One Euro filter and quaternion sign continuity.
- :mod:`.solver`: the rest-pose-aware, parent-first solve, for a whole clip or one live frame at a time.
- :mod:`.finger_maps` and :mod:`.fingers`: which bones are the fingers, and hands onto wrists and fingers.
- :mod:`.face_shapes`: the face mesh onto the 52 ARKit shape values, relative to the take's neutral.
- :mod:`.head`: the head bone's rotation from the face mesh.
"""
