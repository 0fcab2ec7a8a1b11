"""Bone maps: which bone of a rig plays which part of the body, for the built-in rig families, detected from
bone names, and saved or loaded as JSON presets the user can edit.

Roles (``.L`` / ``.R`` are the character's own left and right):

- ``hips`` (the root: it gets the root's orientation and location), ``chest``, ``head``;
- ``upper_arm``, ``forearm``, ``hand``, ``thigh``, ``shin``, ``foot`` on each side;
- ``toe`` on each side: never rotated (MediaPipe does not see toes bend), only where the toe tip is;
- two chains: ``spine`` (the bones from the hips to the chest, exclusive) and ``neck`` (from the chest to the
  head, exclusive) share the rotation of the chest relative to the hips, and of the head relative to the
  chest, in equal steps.

Anchors say where a landmark sits on the rig at rest when it is not at a mapped bone's head: ``index.L`` and
``pinky.L`` (the knuckles: the hand's direction and twist), ``heel.L`` and ``toe_tip.L`` (the foot's). Each is a
bone and a point on it (``head``, ``tail`` or ``mid``).

Switches are custom properties set on pose bones before posing, so that what is driven is what deforms: a
generated Rigify rig is switched to FK with the neck and head following the chest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .rig_data import RigData

SIDES = ("L", "R")
LIMB_ROLES = ("upper_arm", "forearm", "hand", "thigh", "shin", "foot", "toe")
SINGLE_ROLES = ("hips", "chest", "head", *(f"{limb}.{side}" for side in SIDES for limb in LIMB_ROLES))
CHAIN_ROLES = ("spine", "neck")
ANCHORS = tuple(f"{anchor}.{side}" for side in SIDES for anchor in ("index", "pinky", "heel", "toe_tip"))
POINTS = ("head", "tail", "mid")
ANCHOR_ONLY_ROLES = frozenset(f"toe.{side}" for side in SIDES)
"""Roles that locate a landmark but are never keyed."""
CORE_ROLES = ("hips", "chest", "head", *(f"{limb}.{side}" for side in SIDES for limb in LIMB_ROLES[:6]))
"""What a built-in map needs to find in a rig to be chosen by detection."""
PRESET_FORMAT = "vfx-mocap-bone-map"
PRESET_VERSION = 1


class BoneMapError(UserError, ValueError):
    """A bone map (or preset file) is unusable; the message names the field or the bone."""


@dataclass(frozen=True)
class Switch:
    """Set ``pose.bones[bone][prop] = value`` before posing."""

    bone: str
    prop: str
    value: float


@dataclass(frozen=True)
class BoneMap:
    name: str
    bones: Mapping[str, str]
    """Role (one of SINGLE_ROLES) -> bone name."""
    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``spine`` / ``neck`` -> bone names, the end nearer the hips first."""
    anchors: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Anchor (one of ANCHORS) -> (bone name, point)."""
    switches: tuple[Switch, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.bones) - set(SINGLE_ROLES)
        if unknown:
            raise BoneMapError(f"bone map '{self.name}': unknown roles {sorted(unknown)}; roles are {SINGLE_ROLES}")
        if "hips" not in self.bones:
            raise BoneMapError(f"bone map '{self.name}' maps no 'hips' bone: the root of every solve")
        unknown = set(self.chains) - set(CHAIN_ROLES)
        if unknown:
            raise BoneMapError(f"bone map '{self.name}': unknown chains {sorted(unknown)}; chains are {CHAIN_ROLES}")
        unknown = set(self.anchors) - set(ANCHORS)
        if unknown:
            raise BoneMapError(f"bone map '{self.name}': unknown anchors {sorted(unknown)}; anchors are {ANCHORS}")
        for anchor, (_bone, point) in self.anchors.items():
            if point not in POINTS:
                raise BoneMapError(f"bone map '{self.name}': anchor {anchor} point '{point}' is not one of {POINTS}")
        used = [*self.bones.values(), *(bone for chain in self.chains.values() for bone in chain)]
        repeated = sorted({bone for bone in used if used.count(bone) > 1})
        if repeated:
            raise BoneMapError(f"bone map '{self.name}': bones {repeated} play more than one role")

    def driven_bones(self) -> list[str]:
        """The bones a solve writes rotations to (the keyed ones), hips first."""
        ordered = [self.bones["hips"], *self.chains.get("spine", ())]
        ordered += [self.bones[role] for role in ("chest",) if role in self.bones]
        ordered += [*self.chains.get("neck", ())]
        ordered += [self.bones[role] for role in SINGLE_ROLES[2:] if role in self.bones]
        return [bone for bone in ordered if bone not in {self.bones.get(role) for role in ANCHOR_ONLY_ROLES}]

    def referenced_bones(self) -> set[str]:
        """Every bone the map names (roles, chains, anchors, switches)."""
        names = set(self.bones.values()) | {bone for chain in self.chains.values() for bone in chain}
        names |= {bone for bone, _ in self.anchors.values()} | {switch.bone for switch in self.switches}
        return names

    def missing_in(self, rig: RigData) -> list[str]:
        """Bones the map names that ``rig`` does not have, sorted."""
        return sorted(bone for bone in self.referenced_bones() if bone not in rig)

    def restricted_to(self, rig: RigData) -> BoneMap:
        """This map without the optional parts ``rig`` lacks (chain bones, anchors, switches, toes); the other
        roles are kept, so a missing core bone still shows in :meth:`missing_in`."""
        return BoneMap(
            self.name,
            {role: bone for role, bone in self.bones.items() if bone in rig or role not in ANCHOR_ONLY_ROLES},
            {chain: tuple(b for b in bones if b in rig) for chain, bones in self.chains.items()},
            {anchor: spec for anchor, spec in self.anchors.items() if spec[0] in rig},
            tuple(switch for switch in self.switches if switch.bone in rig),
        )

    # -- presets ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PRESET_FORMAT,
            "version": PRESET_VERSION,
            "name": self.name,
            "bones": dict(self.bones),
            "chains": {chain: list(bones) for chain, bones in self.chains.items()},
            "anchors": {anchor: [bone, point] for anchor, (bone, point) in self.anchors.items()},
            "switches": [[s.bone, s.prop, s.value] for s in self.switches],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "bone map") -> BoneMap:
        """Read what :meth:`to_dict` wrote; raise BoneMapError naming the field that is wrong."""
        if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
            raise BoneMapError(f'{source} is not a bone map preset (no "format": "{PRESET_FORMAT}")')
        if data.get("version") != PRESET_VERSION:
            raise BoneMapError(f"{source}: version {data.get('version')!r} is not supported (this add-on reads 1)")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise BoneMapError(f"{source}: 'name' must be a non-empty string")
        bones = _string_map(data.get("bones"), f"{source}: 'bones'")
        chains_raw = data.get("chains", {})
        if not isinstance(chains_raw, dict):
            raise BoneMapError(f"{source}: 'chains' must map spine/neck to lists of bone names")
        chains = {}
        for chain, names in chains_raw.items():
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise BoneMapError(f"{source}: 'chains.{chain}' must be a list of bone names")
            chains[str(chain)] = tuple(names)
        anchors_raw = data.get("anchors", {})
        if not isinstance(anchors_raw, dict):
            raise BoneMapError(f"{source}: 'anchors' must map anchors to [bone, point]")
        anchors = {}
        for anchor, spec in anchors_raw.items():
            if not (isinstance(spec, list) and len(spec) == 2 and all(isinstance(s, str) for s in spec)):
                raise BoneMapError(f"{source}: 'anchors.{anchor}' must be [bone name, head|tail|mid]")
            anchors[str(anchor)] = (spec[0], spec[1])
        switches = switches_from_list(data.get("switches", []), f"{source}: 'switches'")
        try:
            return cls(name, bones, chains, anchors, switches)
        except BoneMapError as exc:
            raise BoneMapError(f"{source}: {exc}") from None


def switches_from_list(value: Any, what: str) -> tuple[Switch, ...]:
    """Switches from their JSON form, ``[[bone name, property, number], ...]``; BoneMapError naming ``what`` and
    the entry that is wrong."""
    if not isinstance(value, list):
        raise BoneMapError(f"{what} must be a list of [bone name, property, number]")
    switches = []
    for index, spec in enumerate(value):
        if not (
            isinstance(spec, list)
            and len(spec) == 3
            and isinstance(spec[0], str)
            and isinstance(spec[1], str)
            and isinstance(spec[2], int | float)
        ):
            raise BoneMapError(f"{what}[{index}] must be [bone name, property, number], not {json.dumps(spec)}")
        switches.append(Switch(spec[0], spec[1], float(spec[2])))
    return tuple(switches)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise BoneMapError(f"{what} must map role names to bone names")
    return dict(value)


def save_preset(bone_map: BoneMap, path: Path | str) -> Path:
    """Write ``bone_map`` as a JSON preset at ``path`` (atomically); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(bone_map.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def load_preset(path: Path | str) -> BoneMap:
    """Read a JSON preset; raise BoneMapError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BoneMapError(f"cannot read the bone map preset {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BoneMapError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return BoneMap.from_dict(data, str(path))


# -- built-in maps ------------------------------------------------------------------------------------------


def _sided(pattern: Mapping[str, str]) -> dict[str, str]:
    """Expand ``{"upper_arm": "upper_arm.{S}"}`` to both sides (``{S}`` L/R, ``{Side}`` Left/Right)."""
    out = {}
    for side, word in (("L", "Left"), ("R", "Right")):
        for role, bone in pattern.items():
            out[f"{role}.{side}"] = bone.format(S=side, Side=word)
    return out


def _sided_anchors(pattern: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    out = {}
    for side, word in (("L", "Left"), ("R", "Right")):
        for anchor, (bone, point) in pattern.items():
            out[f"{anchor}.{side}"] = (bone.format(S=side, Side=word), point)
    return out


def rigify_metarig() -> BoneMap:
    """Rigify's human metarig (``Add > Armature > Human (Meta-Rig)``), before generation."""
    return BoneMap(
        "Rigify metarig",
        {
            "hips": "spine",
            "chest": "spine.003",
            "head": "spine.006",
            **_sided(
                {
                    "upper_arm": "upper_arm.{S}",
                    "forearm": "forearm.{S}",
                    "hand": "hand.{S}",
                    "thigh": "thigh.{S}",
                    "shin": "shin.{S}",
                    "foot": "foot.{S}",
                    "toe": "toe.{S}",
                }
            ),
        },
        {"spine": ("spine.001", "spine.002"), "neck": ("spine.004", "spine.005")},
        _sided_anchors(
            {
                "index": ("f_index.01.{S}", "head"),
                "pinky": ("f_pinky.01.{S}", "head"),
                "heel": ("heel.02.{S}", "mid"),
            }
        ),
    )


def rigify_generated() -> BoneMap:
    """A rig generated by Rigify from the human metarig. Its FK controls are driven, not its DEF- or ORG- bones:
    those follow the controls through constraints, so keys written on them would be overridden. The torso
    control carries the root motion (hips and chest hang under it); the arms and legs are switched to FK and the
    neck and head to follow the chest, so that the controls form the chain the solver assumes."""
    return BoneMap(
        "Rigify generated rig (FK controls)",
        {
            "hips": "torso",
            "chest": "chest",
            "head": "head",
            **_sided(
                {
                    "upper_arm": "upper_arm_fk.{S}",
                    "forearm": "forearm_fk.{S}",
                    "hand": "hand_fk.{S}",
                    "thigh": "thigh_fk.{S}",
                    "shin": "shin_fk.{S}",
                    "foot": "foot_fk.{S}",
                    "toe": "ORG-toe.{S}",
                }
            ),
        },
        {"neck": ("neck",)},
        _sided_anchors(
            {
                "index": ("ORG-f_index.01.{S}", "head"),
                "pinky": ("ORG-f_pinky.01.{S}", "head"),
                "heel": ("ORG-heel.02.{S}", "mid"),
            }
        ),
        (
            *(Switch(f"{limb}_parent.{side}", "IK_FK", 1.0) for side in SIDES for limb in ("upper_arm", "thigh")),
            Switch("torso", "neck_follow", 1.0),
            Switch("torso", "head_follow", 1.0),
        ),
    )


def mixamo(prefix: str = "mixamorig:") -> BoneMap:
    """A Mixamo-named rig (``mixamorig:Hips`` ...; other prefixes such as ``mixamorig1:`` too). FBX imports
    often leave bone tails meaningless, so every landmark is placed at a bone's head."""
    return BoneMap(
        "Mixamo",
        {
            "hips": f"{prefix}Hips",
            "chest": f"{prefix}Spine2",
            "head": f"{prefix}Head",
            **_sided(
                {
                    "upper_arm": prefix + "{Side}Arm",
                    "forearm": prefix + "{Side}ForeArm",
                    "hand": prefix + "{Side}Hand",
                    "thigh": prefix + "{Side}UpLeg",
                    "shin": prefix + "{Side}Leg",
                    "foot": prefix + "{Side}Foot",
                    "toe": prefix + "{Side}ToeBase",
                }
            ),
        },
        {"spine": (f"{prefix}Spine", f"{prefix}Spine1"), "neck": (f"{prefix}Neck",)},
        _sided_anchors(
            {
                "index": (prefix + "{Side}HandIndex1", "head"),
                "pinky": (prefix + "{Side}HandPinky1", "head"),
                "toe_tip": (prefix + "{Side}Toe_End", "head"),
            }
        ),
    )


# -- detection ----------------------------------------------------------------------------------------------

GENERIC_SYNONYMS = {
    "hips": ("hips", "hip", "pelvis"),
    "chest": ("chest", "upperchest", "ribcage", "thorax"),
    "head": ("head",),
    "upper_arm": ("upperarm", "arm", "uparm", "armupper"),
    "forearm": ("forearm", "lowerarm", "armlower", "elbow"),
    "hand": ("hand", "wrist"),
    "thigh": ("thigh", "upperleg", "upleg", "legupper", "femur", "leg"),
    "shin": ("shin", "calf", "lowerleg", "leglower", "knee", "leg"),
    "foot": ("foot", "ankle"),
    "toe": ("toe", "toes", "toebase", "ball"),
    "index": ("index1", "index01", "indexproximal", "handindex1", "indexfinger1"),
    "pinky": ("pinky1", "pinky01", "littleproximal", "little1", "handpinky1", "pinkyfinger1", "littlefinger1"),
    "toe_tip": ("toeend", "toetip", "toesend"),
}
"""Generic humanoid names, as compared after :func:`_tokens` (lower case, no side, no separators). A numbered
spine bone (``spine_03``, ``Spine2``) is a chest candidate too. ``leg`` is a thigh if no thigh is above it, else
the shin. ``index``, ``pinky`` and ``toe_tip`` are anchors, at the bone's head (the knuckle, the toe's tip)."""
_NUMBERED_SPINE = re.compile(r"spine\d+")
_SIDED_ROLES = frozenset((*LIMB_ROLES, "index", "pinky", "toe_tip"))
_NOISE = frozenset({"mixamorig", "bip", "bip01", "bip001", "j", "def", "org", "c", "jnt", "joint", "bone", "b"})
_SIDE_TOKENS = {"l": "L", "left": "L", "r": "R", "right": "R"}


def _tokens(name: str) -> tuple[str | None, str]:
    """(side or None, key) of a bone name: ``LeftUpperArm``, ``upper_arm.L``, ``J_Bip_L_UpperArm``,
    ``Bip01 L UpperArm``, ``mixamorig:LeftArm`` all give ("L", "upperarm") or ("L", "arm")."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.split(":")[-1])
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", spaced) if p]
    side = None
    words = []
    for part in parts:
        lower = part.lower()
        if lower in _SIDE_TOKENS and side is None:
            side = _SIDE_TOKENS[lower]
        elif lower not in _NOISE:
            words.append(lower)
    return side, "".join(words)


def _generic_candidates(rig: RigData) -> dict[str, list[str]]:
    """Role (``chest``, ``hand.L``, ``index.L`` ...) -> the bones whose names fit it, in the rig's order (parents
    before children, shallower bones first)."""
    candidates: dict[str, list[str]] = {}
    for bone in rig.bones:
        side, key = _tokens(bone)
        roles = [role for role, names in GENERIC_SYNONYMS.items() if key in names]
        if _NUMBERED_SPINE.fullmatch(key):
            roles.append("chest")
        for role in roles:
            if (role in _SIDED_ROLES) != (side is not None):
                continue
            candidates.setdefault(f"{role}.{side}" if side else role, []).append(bone)
    return candidates


def generic_humanoid(rig: RigData) -> BoneMap:
    """A map built from common humanoid bone names (Unity/VRM, Unreal, 3ds Max Biped, MakeHuman, ...), with
    the spine and neck chains read off the hierarchy between the hips, chest and head.

    Names alone are ambiguous (``spine_02`` and ``spine_03`` both sound like a chest; ``leg`` can be a thigh or a
    shin), so each part is chosen where the hierarchy says it must be: limbs, head and chest under the hips, a
    forearm under its upper arm, a knuckle under its hand, and so on; and the chest is the deepest candidate both
    upper arms and the head hang from. The solver poses a bone from the driven bone above it and keeps the bones
    in between at rest, so a chest lower than that (with the bones above it in the neck chain) would leave the
    arms following the wrong bone.
    """
    candidates = _generic_candidates(rig)
    found: dict[str, str] = {}
    anchors: dict[str, tuple[str, str]] = {}

    def first_under(role: str, ancestor: str | None) -> str | None:
        return next(
            (bone for bone in candidates.get(role, ()) if ancestor is None or ancestor in rig.ancestors(bone)), None
        )

    def place_chain(roles: tuple[str, ...], top: str | None) -> None:
        """Each role's bone under the previous role's (under ``top`` for the first, or when one is missing)."""
        for role in roles:
            bone = first_under(role, top)
            if bone is not None:
                found[role] = top = bone

    hips = first_under("hips", None)
    for side in SIDES:
        place_chain((f"upper_arm.{side}", f"forearm.{side}", f"hand.{side}"), hips)
        place_chain((f"thigh.{side}", f"shin.{side}", f"foot.{side}", f"toe.{side}"), hips)
        hand, foot = found.get(f"hand.{side}"), found.get(f"foot.{side}")
        points = [(f"{k}.{side}", hand) for k in ("index", "pinky")] if hand else []
        points += [(f"toe_tip.{side}", found.get(f"toe.{side}", foot))] if foot else []
        for anchor, ancestor in points:
            bone = first_under(anchor, ancestor)
            if bone is not None:
                anchors[anchor] = (bone, "head")
    head = first_under("head", hips)
    hanging = [found[f"upper_arm.{side}"] for side in SIDES if f"upper_arm.{side}" in found]
    hanging += [head] if head is not None else []
    chests = [
        bone
        for bone in candidates.get("chest", ())
        if (hips is None or hips in rig.ancestors(bone)) and all(bone in rig.ancestors(b) for b in hanging)
    ]
    if chests:
        found["chest"] = max(chests, key=lambda bone: len(rig.ancestors(bone)))
    if head is not None:
        found["head"] = head
    found["hips"] = hips if hips is not None else rig.bones[0]
    chains: dict[str, tuple[str, ...]] = {}
    if "chest" in found:
        chains["spine"] = _between(rig, found["hips"], found["chest"])
    if "head" in found:
        chains["neck"] = _between(rig, found.get("chest", found["hips"]), found["head"])
    return BoneMap("Generic humanoid", found, chains, anchors)


def _between(rig: RigData, ancestor: str, descendant: str) -> tuple[str, ...]:
    """The bones strictly between ``ancestor`` and ``descendant`` on the parent chain, ancestor side first."""
    chain = rig.ancestors(descendant)
    if ancestor not in chain:
        return ()
    return tuple(reversed(chain[: chain.index(ancestor)]))


def _mixamo_prefix(rig: RigData) -> str | None:
    for bone in rig.bones:
        if bone.endswith("Hips") and "mixamo" in bone.lower():
            return bone[: -len("Hips")]
    return None


BUILTIN_MAPS = {
    "RIGIFY_GENERATED": "Rigify generated rig (FK controls)",
    "RIGIFY_METARIG": "Rigify metarig",
    "MIXAMO": "Mixamo",
    "GENERIC": "Generic humanoid",
}
"""Key -> name of the built-in maps, most specific first (the order detection tries them in)."""


def builtin_map(key: str, rig: RigData) -> BoneMap:
    """The built-in map ``key`` (one of BUILTIN_MAPS), restricted to what ``rig`` has."""
    if key == "RIGIFY_GENERATED":
        bone_map = rigify_generated()
    elif key == "RIGIFY_METARIG":
        bone_map = rigify_metarig()
    elif key == "MIXAMO":
        prefix = _mixamo_prefix(rig)
        bone_map = mixamo(prefix if prefix is not None else "mixamorig:")
    elif key == "GENERIC":
        bone_map = generic_humanoid(rig)
    else:
        raise BoneMapError(f"no built-in bone map '{key}'; there are {', '.join(BUILTIN_MAPS)}")
    return bone_map.restricted_to(rig)


def detect_map(rig: RigData) -> BoneMap:
    """The first built-in map whose core bones (hips, chest, head, arms, legs) the rig all has.

    Raises BoneMapError listing, for the closest map, the bones that are missing.
    """
    candidates = [builtin_map(key, rig) for key in BUILTIN_MAPS]
    for candidate in candidates:
        if all(role in candidate.bones and candidate.bones[role] in rig for role in CORE_ROLES):
            return candidate
    best = max(candidates, key=lambda m: sum(m.bones.get(role) in rig for role in CORE_ROLES))
    missing = [f"{role} ({best.bones.get(role, '?')})" for role in CORE_ROLES if best.bones.get(role) not in rig]
    raise BoneMapError(
        f"rig '{rig.name}' matches no built-in bone map; the closest, '{best.name}', lacks {', '.join(missing)}. "
        "Map the bones by hand and save the map as a preset"
    )
