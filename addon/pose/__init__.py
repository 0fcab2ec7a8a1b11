"""Pose to armature: solving a pose job's landmarks onto a rig and baking them (body, hands, face shape keys),
live pose from a camera or a video, and their panel, operators and properties."""
