"""The plain-data rest pose of an armature: what the solver needs to know about a rig, and nothing of Blender.

Made on Blender's main thread by ``addon.armature_io.read_rig`` (or by tests, from numbers), then handed to a
worker thread. Everything is in armature space (the armature object's own frame, in its units), at rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .rotations import orthonormalize


class RigError(ValueError):
    """The rig description is inconsistent; the message names the bone."""


@dataclass(frozen=True)
class RigData:
    """An armature's bones at rest, parents before children.

    - ``bones``: bone names;
    - ``parents``: index of each bone's parent in ``bones``, -1 for a root;
    - ``rest``: (B, 4, 4) armature-space rest matrices (Blender's ``Bone.matrix_local``): columns are the bone's
      X, Y (head to tail), Z axes and its head position;
    - ``lengths``: (B,) head-to-tail lengths.
    """

    name: str
    bones: tuple[str, ...]
    parents: tuple[int, ...]
    rest: np.ndarray
    lengths: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        count = len(self.bones)
        if len(set(self.bones)) != count:
            raise RigError(f"rig '{self.name}' has duplicate bone names")
        if len(self.parents) != count or self.rest.shape != (count, 4, 4) or self.lengths.shape != (count,):
            raise RigError(
                f"rig '{self.name}': {count} bones but {len(self.parents)} parents, rest {self.rest.shape}, "
                f"lengths {self.lengths.shape}"
            )
        for index, parent in enumerate(self.parents):
            if not -1 <= parent < index:
                raise RigError(f"rig '{self.name}': bone '{self.bones[index]}' comes before its parent")
        if not np.all(np.isfinite(self.rest)):
            raise RigError(f"rig '{self.name}' has a rest matrix that is not finite")
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.bones)})

    @classmethod
    def from_bones(
        cls,
        name: str,
        bones: Sequence[str],
        parents: Sequence[str | None],
        rest: np.ndarray,
        lengths: Sequence[float] | np.ndarray,
    ) -> RigData:
        """Build from bones in any order, each with its parent's name (None for a root); sorts parents first."""
        rest = np.asarray(rest, dtype=np.float64)
        lengths = np.asarray(lengths, dtype=np.float64)
        position = {bone: i for i, bone in enumerate(bones)}
        for bone, parent in zip(bones, parents, strict=True):
            if parent is not None and parent not in position:
                raise RigError(f"rig '{name}': the parent '{parent}' of '{bone}' is not one of its bones")
        order: list[int] = []
        placed: set[str] = set()
        pending = list(range(len(bones)))
        while pending:
            remaining = [i for i in pending if parents[i] is not None and parents[i] not in placed]
            ready = [i for i in pending if parents[i] is None or parents[i] in placed]
            if not ready:
                raise RigError(f"rig '{name}': bones {[bones[i] for i in remaining[:5]]} form a parent cycle")
            order += ready
            placed.update(bones[i] for i in ready)
            pending = remaining
        new_index = {bones[old]: new for new, old in enumerate(order)}
        return cls(
            name=name,
            bones=tuple(bones[i] for i in order),
            parents=tuple(-1 if (parent := parents[i]) is None else new_index[parent] for i in order),
            rest=rest[order],
            lengths=lengths[order],
        )

    def __contains__(self, bone: object) -> bool:
        return bone in self._index

    def index(self, bone: str) -> int:
        try:
            return self._index[bone]
        except KeyError:
            raise RigError(f"rig '{self.name}' has no bone '{bone}'") from None

    def rotation(self, bone: str) -> np.ndarray:
        """The bone's rest orientation (3, 3) in armature space, without scale."""
        return orthonormalize(self.rest[self.index(bone), :3, :3])

    def head(self, bone: str) -> np.ndarray:
        return self.rest[self.index(bone), :3, 3].copy()

    def tail(self, bone: str) -> np.ndarray:
        i = self.index(bone)
        axis = self.rest[i, :3, 1] / max(np.linalg.norm(self.rest[i, :3, 1]), 1e-12)
        return self.rest[i, :3, 3] + axis * self.lengths[i]

    def point(self, bone: str, where: str) -> np.ndarray:
        """A rest position on ``bone``: its ``head``, ``tail`` or ``mid`` point."""
        if where == "head":
            return self.head(bone)
        if where == "tail":
            return self.tail(bone)
        if where == "mid":
            return (self.head(bone) + self.tail(bone)) / 2.0
        raise RigError(f"'{where}' is not a point of a bone: use head, tail or mid")

    def ancestors(self, bone: str) -> list[str]:
        """The bone's parent, grandparent, ... up to its root."""
        chain = []
        parent = self.parents[self.index(bone)]
        while parent >= 0:
            chain.append(self.bones[parent])
            parent = self.parents[parent]
        return chain
