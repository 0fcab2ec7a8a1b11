"""Finger maps: which bones of a rig are each finger's three bones, for the built-in rig families, detected.

A finger map names, per side (``L`` / ``R``, the character's own) and per finger (:data:`FINGERS`), the finger's
three bones from the knuckle out. For the thumb that is the metacarpal (from the base of the thumb), then the
proximal and distal phalanges; for the other fingers the proximal, middle and distal phalanges. The hand itself is
the body map's ``hand.L`` / ``hand.R``.

Families, tried in this order for each side:

- Rigify, the human metarig and the rig it generates (whose finger FK controls carry the metarig's names):
  ``thumb.01.L`` .. ``thumb.03.L``, ``f_index.01.L`` .. ``f_pinky.03.L``;
- Mixamo: ``mixamorig:LeftHandThumb1`` .. ``mixamorig:LeftHandPinky3`` (any ``mixamorig*:`` prefix);
- generic humanoid names (Unity/VRM ``LeftThumbProximal``, Unreal ``thumb_01_l``, ``Index1_L`` ...): the bones
  below the mapped hand whose names hold the finger's word, each finger's first three in its own chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .bone_maps import SIDES, BoneMap
from .rig_data import RigData

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FINGER_WORDS = {
    "thumb": ("thumb",),
    "index": ("index",),
    "middle": ("middle",),
    "ring": ("ring",),
    "pinky": ("pinky", "little"),
}
"""The words a generic finger bone's name holds (compared in lower case)."""
_CONTROL_PREFIXES = ("DEF-", "ORG-", "MCH-", "VIS-", "WGT-")
"""Bones that follow others through constraints: never a generic finger."""


@dataclass(frozen=True)
class FingerMap:
    """``bones[side][finger]`` = the finger's three bone names, knuckle first; a side or finger the rig lacks is
    absent."""

    name: str
    bones: Mapping[str, Mapping[str, tuple[str, str, str]]]

    def driven_bones(self) -> list[str]:
        return [bone for side in SIDES for chain in self.bones.get(side, {}).values() for bone in chain]

    def sides(self) -> tuple[str, ...]:
        return tuple(side for side in SIDES if self.bones.get(side))


def _three(stem: str, suffix: str = "") -> tuple[str, str, str]:
    """A finger's three bone names, knuckle first: ``stem``, the bone's number (1 to 3), ``suffix``."""
    return f"{stem}1{suffix}", f"{stem}2{suffix}", f"{stem}3{suffix}"


def _rigify(side: str) -> dict[str, tuple[str, str, str]]:
    names = {finger: finger if finger == "thumb" else f"f_{finger}" for finger in FINGERS}
    return {finger: _three(f"{name}.0", f".{side}") for finger, name in names.items()}


def _mixamo(side: str, prefix: str) -> dict[str, tuple[str, str, str]]:
    word = "Left" if side == "L" else "Right"
    return {finger: _three(f"{prefix}{word}Hand{finger.capitalize()}") for finger in FINGERS}


def _generic(rig: RigData, hand: str) -> dict[str, tuple[str, str, str]]:
    """Each finger's chain below ``hand``: the shallowest bone whose name holds the finger's word, then its child
    that does, and that one's."""
    below = [bone for bone in rig.bones if hand in rig.ancestors(bone) and not bone.startswith(_CONTROL_PREFIXES)]
    out = {}
    for finger, words in FINGER_WORDS.items():
        pattern = re.compile("|".join(words), re.IGNORECASE)
        matching = [bone for bone in below if pattern.search(bone)]
        chain: list[str] = []
        for bone in sorted(matching, key=lambda b: len(rig.ancestors(b))):
            if not chain or rig.ancestors(bone)[:1] == [chain[-1]]:
                chain.append(bone)
            if len(chain) == 3:
                out[finger] = (chain[0], chain[1], chain[2])
                break
    return out


def detect_finger_map(rig: RigData, bone_map: BoneMap) -> FingerMap:
    """The fingers of ``rig`` whose hands ``bone_map`` maps: per side, the first family (Rigify, Mixamo, generic)
    with all five fingers in the rig, else the fingers the generic search found. Empty where nothing fits."""
    bones: dict[str, dict[str, tuple[str, str, str]]] = {}
    families = []
    for side in SIDES:
        hand = bone_map.bones.get(f"hand.{side}")
        if hand is None or hand not in rig:
            continue
        prefix = hand[: hand.index(":") + 1] if ":" in hand else "mixamorig:"
        candidates = [("Rigify", _rigify(side)), ("Mixamo", _mixamo(side, prefix))]
        for family, chains in candidates:
            if all(bone in rig for chain in chains.values() for bone in chain):
                bones[side] = chains
                families.append(family)
                break
        else:
            found = _generic(rig, hand)
            if found:
                bones[side] = found
                families.append("generic")
    name = " / ".join(sorted(set(families))) or "none"
    return FingerMap(f"{name} fingers", bones)
