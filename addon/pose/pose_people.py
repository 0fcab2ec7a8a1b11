"""Which person of a pose job a bake follows, and one armature per person.

A pose job follows people as tracks (``models/person_tracks.py``): its main arrays are the largest person's, and
``track_*`` arrays hold every track. Person 0 means "the largest" (the main arrays); person k the track numbered
k (1, 2, ... in the order people were first found, as the skeleton overlay numbers them). Jobs made before tracks
existed have no ``track_*`` arrays: they have one person, the main one.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np

from ..common.errors import UserError

TRACK_ARRAYS = {
    "world_landmarks": "track_world_landmarks",
    "visibility": "track_visibility",
    "present": "track_present",
    "image_landmarks": "track_image_landmarks",
}
"""Main array -> the array holding it per track."""


PERSON_PROP = "vfx_mocap_person"
"""Object custom property: the track number an armature made by :func:`person_armature` follows."""


class PersonError(UserError):
    """The chosen person is not in the pose job; the message says which numbers are."""


def track_count(summary: dict) -> int:
    """How many people (tracks) the job followed: 1 for jobs made before tracks existed."""
    tracks = summary.get("tracks")
    return len(tracks) if isinstance(tracks, list) else 1


def load_track_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The job's ``track_*`` arrays that exist (none for older jobs)."""
    out = {}
    for name in TRACK_ARRAYS.values():
        path = folder / "arrays" / f"{name}.npy"
        if path.is_file():
            out[name] = np.load(path, allow_pickle=False)
    return out


def person_arrays(arrays: dict[str, np.ndarray], summary: dict, person: int) -> dict[str, np.ndarray]:
    """The main arrays of person ``person`` (0: the largest, k: track k). Raises PersonError naming the range."""
    if is_main_person(summary, person):
        return arrays  # the main arrays follow the largest person (the only one, in jobs made before tracks)
    count = track_count(summary)
    if not 1 <= person <= count or not all(name in arrays for name in TRACK_ARRAYS.values()):
        raise PersonError(
            f"Person {person} is not in this pose job: it followed {count} "
            f"{'person' if count == 1 else 'people'}; set Person to 0 (the largest) or 1 to {count} "
            "(the numbers the skeleton overlay shows)"
        )
    return {main: arrays[track][person - 1] for main, track in TRACK_ARRAYS.items()}


def is_main_person(summary: dict, person: int) -> bool:
    """Whether ``person`` (0: the largest, k: track k) is the one the job's main arrays follow, the only one whose
    hands and face the pose mode tracks."""
    return person in (0, default_person(summary))


def default_person(summary: dict) -> int:
    """The track number (1-based) the main arrays follow; 1 for jobs without tracks."""
    chosen = summary.get("default_track")
    return int(chosen) + 1 if isinstance(chosen, int) and chosen >= 0 else 1


def read_summary(output_dir: str) -> dict:
    """The pose job's summary, or {} when it cannot be read (the bake then reports what is missing)."""
    try:
        return json.loads((Path(output_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def person_armature(obj: bpy.types.Object, number: int) -> bpy.types.Object:
    """The armature following person ``number`` next to ``obj``: ``"<obj> person <number>"``, made as a copy of
    ``obj`` (sharing its bones, with an animation of its own) in ``obj``'s collections when it does not exist."""
    name = f"{obj.name} person {number}"
    existing = bpy.data.objects.get(name)
    if existing is not None and existing.type == "ARMATURE":
        return existing
    copy = obj.copy()
    copy.name = name
    copy.animation_data_clear()
    copy[PERSON_PROP] = number
    for collection in obj.users_collection:
        collection.objects.link(copy)
    return copy
