"""Face values into a mesh's shape-key Action, written in bulk. Main thread only.

The mesh's shape keys (its ``Key`` datablock) get one Action (made and assigned if they have none, named
*<mesh> Face*); each driven shape key's ``value`` is one F-curve written with one ``keyframe_points.add`` and one
``foreach_set``. Only shape keys named as ARKit's (or mapped to an ARKit name) get keys; baking again over the
same frames replaces those keys and keeps the ones outside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import bpy
import numpy as np

from ..bridge.retarget.face_shapes import ARKIT_SHAPES, FaceValues
from ..common import compat
from ..common.errors import UserError


class ShapeKeyBakeError(UserError):
    """The face cannot be written onto this mesh; the message says why and what to do."""


@dataclass(frozen=True)
class ShapeKeyReport:
    action: str
    shape_keys: tuple[str, ...]
    keys: int
    frame_start: int
    frame_end: int


def driven_shape_keys(obj: bpy.types.Object, name_map: Mapping[str, str]) -> dict[str, str]:
    """ARKit name -> the mesh's shape key it drives: the mapped name, else a key of the ARKit name itself."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        return {}
    blocks = keys.key_blocks
    out = {}
    for shape in ARKIT_SHAPES:
        name = name_map.get(shape, shape)
        if name in blocks and name != keys.reference_key.name:
            out[shape] = name
    return out


def bake_face(
    obj: bpy.types.Object,
    face: FaceValues,
    frames: np.ndarray,
    name_map: Mapping[str, str],
    interpolation: str = "BEZIER",
) -> ShapeKeyReport:
    """Write ``face`` onto the shape keys of mesh ``obj``, take frame ``i`` at timeline frame ``frames[i]``.
    Raises ShapeKeyBakeError, before writing anything, when no shape key matches."""
    driven = driven_shape_keys(obj, name_map)
    if not driven:
        raise ShapeKeyBakeError(
            f"Mesh '{obj.name}' has no shape key named as ARKit's (jawOpen, eyeBlinkLeft, ...) or in the Name Map: "
            "nothing to drive. Name its shape keys so, or map them in Hands & Face > Name Map"
        )
    keys = obj.data.shape_keys
    animation = keys.animation_data or keys.animation_data_create()
    if animation.action is None:
        animation.action = bpy.data.actions.new(f"{obj.name} Face")
    action = animation.action
    kind = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[interpolation].value
    frames = np.asarray(frames, dtype=np.float32)
    span = (float(frames[0]) - 0.5, float(frames[-1]) + 0.5)
    total = 0
    for shape, name in driven.items():
        fcurve = compat.fcurve_ensure(action, keys, f'key_blocks["{bpy.utils.escape_identifier(name)}"].value')
        points = fcurve.keyframe_points
        old = np.zeros(len(points) * 2, dtype=np.float32)
        points.foreach_get("co", old)
        old = old.reshape(-1, 2)
        kept = old[(old[:, 0] < span[0]) | (old[:, 0] > span[1])]
        values = face.values[:, ARKIT_SHAPES.index(shape)]
        co = np.concatenate([kept, np.stack([frames, values], axis=1)])
        co = co[np.argsort(co[:, 0], kind="stable")]
        points.clear()
        points.add(len(co))
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", np.full(len(co), kind, dtype=np.int32))
        fcurve.update()
        total += len(frames)
    return ShapeKeyReport(action.name, tuple(driven.values()), total, int(frames[0]), int(frames[-1]))
