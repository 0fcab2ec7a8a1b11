"""A Mixamo-named skeleton in a T-pose, for the tests that build Mixamo rigs as an FBX import leaves them (in Blender,
and as rig data without it). Plain data: Blender-side scenario scripts import it too."""

from __future__ import annotations

MIXAMO_JOINTS = [  # (bone, parent, head): Z-up centimetres, proportions unlike the metarig's; the left side only
    ("Hips", None, (0, 0, 95)),
    ("Spine", "Hips", (0, 1, 105)),
    ("Spine1", "Spine", (0, 1, 117)),
    ("Spine2", "Spine1", (0, 0, 130)),
    ("Neck", "Spine2", (0, -1, 148)),
    ("Head", "Neck", (0, -2, 157)),
    ("HeadTop_End", "Head", (0, -2, 178)),
    ("LeftShoulder", "Spine2", (6, 0, 142)),
    ("LeftArm", "LeftShoulder", (17, 1, 141)),
    ("LeftForeArm", "LeftArm", (44, 1, 141)),
    ("LeftHand", "LeftForeArm", (68, 1, 141)),
    ("LeftHandIndex1", "LeftHand", (77, -2, 141)),
    ("LeftHandPinky1", "LeftHand", (76, 4, 141)),
    ("LeftUpLeg", "Hips", (10, 0, 90)),
    ("LeftLeg", "LeftUpLeg", (10, 0, 50)),
    ("LeftFoot", "LeftLeg", (10, 2, 9)),
    ("LeftToeBase", "LeftFoot", (10, -11, 2)),
    ("LeftToe_End", "LeftToeBase", (10, -18, 2)),
]
"""The right side mirrors the left (x negated, ``Left`` -> ``Right`` in the names)."""
