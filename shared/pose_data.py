"""The pose data contract: what a ``pose`` job (or live pose session) returns, read by the add-on's retargeting.

Both sides import these names; the daemon (``models.pose``, ``models.skeleton``) writes the arrays, the add-on
(``addon/retarget``, the mocap tasks, live pose) reads them. Pure data: importable anywhere, Blender included.

Result arrays (N = frames; one row per frame of the input):

- ``image_landmarks`` float32 (N, 33, 3): x and y normalised to the frame (0..1, x right, y down), z MediaPipe's
  relative depth;
- ``world_landmarks`` float32 (N, 33, 3): metres, origin at the hips' midpoint, y down;
- ``visibility`` float32 (N, 33): 0..1 likelihood that the landmark is visible;
- ``present`` bool (N,): a person was found; where False the landmarks are NaN;
- with hands and face asked for: ``hand_landmarks`` (N, 2, 21, 3), ``hand_present`` (N, 2), ``face_landmarks``
  (N, 478, 3), ``face_present`` (N,) (see ``models.hands_face``);
- with the face asked for and MediaPipe's blendshape model fetched: ``face_blendshapes`` float32 (N, 51), the
  model's 0..1 scores under :data:`FACE_SHAPE_NAMES`, NaN where it gave none (see ``models.face_blendshapes``);
  the summary's ``face_source`` says ``model`` then, else ``landmarks``.

Frames a job draws are ``<output_dir>/frames/NNNNNN.png`` (six digits, from 0): :func:`frame_file_name`.
"""

from __future__ import annotations

LANDMARK_NAMES = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
"""MediaPipe Pose's 33 landmarks, in the order of its output. Left and right are the person's own."""

LANDMARK_COUNT = len(LANDMARK_NAMES)
LANDMARK = {name: index for index, name in enumerate(LANDMARK_NAMES)}
"""Landmark name -> its index in the (33, ...) arrays."""

IMAGE_LANDMARKS = "image_landmarks"
WORLD_LANDMARKS = "world_landmarks"
VISIBILITY = "visibility"
PRESENT = "present"
BODY_ARRAYS = (WORLD_LANDMARKS, VISIBILITY, PRESENT, IMAGE_LANDMARKS)
"""The arrays every pose result has (the add-on asks for these when it bakes a result)."""
HAND_LANDMARKS = "hand_landmarks"
HAND_PRESENT = "hand_present"
FACE_LANDMARKS = "face_landmarks"
FACE_PRESENT = "face_present"
FACE_BLENDSHAPES = "face_blendshapes"

FACE_SHAPE_NAMES = (
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
)
"""The columns of ``face_blendshapes``: MediaPipe's blendshape categories in its order, less ``_neutral``. They are
ARKit's names (same spelling, ``Left`` the person's own left); ARKit's ``tongueOut`` is the one the model lacks."""

FRAMES_FOLDER = "frames"


def frame_file_name(index: int) -> str:
    """The name of drawn frame ``index`` (0-based) inside ``<output_dir>/frames/``."""
    return f"{index:06d}.png"
