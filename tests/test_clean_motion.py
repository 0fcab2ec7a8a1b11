"""Clean motion for bakes, in plain Python: the zero-phase filter, known smooth motion solved as a clip.

Rigs and the forward-kinematics model come from ``test_retarget`` (``addon/bridge/retarget`` loaded without bpy).
"""

from __future__ import annotations

import numpy as np
from test_retarget import Poser, metarig
from vfx_retarget import bone_maps, feet, filters, frames, offline_filter, root_motion, rotations
from vfx_retarget import solver as solve

FPS = 24.0


def _lag_frames(reference: np.ndarray, filtered: np.ndarray) -> int:
    """The shift (frames) of ``filtered`` against ``reference`` that matches them best."""
    shifts = range(-6, 7)
    errors = [np.abs(np.roll(filtered, -shift) - reference)[10:-10].mean() for shift in shifts]
    return list(shifts)[int(np.argmin(errors))]


def test_zero_phase_filter_smooths_without_lag_where_one_euro_lags():
    rng = np.random.default_rng(3)
    times = np.arange(240) / FPS
    motion = np.sin(2 * np.pi * 0.3 * times)[:, None]
    noisy = motion + rng.normal(scale=0.03, size=motion.shape)
    params = filters.OneEuroParams()
    live = filters.one_euro(noisy, times, params)
    baked = offline_filter.zero_phase(noisy, FPS, params)
    assert _lag_frames(motion[:, 0], live[:, 0]) >= 1, "the causal filter trails the motion"
    assert _lag_frames(motion[:, 0], baked[:, 0]) == 0
    assert np.abs(baked - motion).mean() < 0.7 * np.abs(noisy - motion).mean(), "jitter is removed"
    assert np.abs(baked - motion).mean() < 0.3 * np.abs(live - motion).mean(), "and the motion is kept"


def test_zero_phase_filter_keeps_its_one_euro_meaning():
    rng = np.random.default_rng(4)
    still = 1.0 + rng.normal(scale=0.01, size=(240, 1))
    jitter = [np.std(offline_filter.zero_phase(still, FPS, filters.OneEuroParams(c))) for c in (0.5, 1.0, 4.0)]
    assert jitter[0] < jitter[1] < jitter[2] < np.std(still), "a lower Min Cutoff smooths harder"
    times = np.arange(240) / FPS
    fast = np.sin(2 * np.pi * 2.0 * times)[:, None]
    kept = [np.ptp(offline_filter.zero_phase(fast, FPS, filters.OneEuroParams(1.0, beta))) for beta in (0.0, 1.0)]
    assert kept[0] < kept[1] <= np.ptp(fast) + 1e-9, "a higher Speed Coefficient lets fast moves through"


def test_zero_phase_filter_never_smooths_across_a_segment_start():
    steps = np.concatenate([np.zeros(30), np.ones(30)])[:, None]
    whole = offline_filter.zero_phase(steps, FPS, filters.OneEuroParams())
    split = offline_filter.zero_phase(steps, FPS, filters.OneEuroParams(), segment_starts=np.array([30]))
    assert 0.05 < whole[29, 0] < 0.95, "one segment: the step is smoothed on both sides"
    np.testing.assert_array_equal(split, steps)


def smooth_motion(rig, bone_map, retargeter, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Basis rotations per frame: each bone turns about its own fixed axis, sinusoidally at 0.2-0.7 Hz."""
    rng = np.random.default_rng(seed)
    bones = bone_map.bones
    times = np.arange(count) / FPS
    tracks = []
    for role, amplitude in (("hips", 25), ("head", 15), ("upper_arm", 60), ("hand", 30), ("thigh", 35), ("foot", 20)):
        for side in ("L", "R") if role not in ("hips", "head") else ("",):
            name = bones[f"{role}.{side}" if side else role]
            axis = rotations.normalize(rng.normal(size=3))[0]
            angle = np.radians(amplitude) * np.sin(2 * np.pi * rng.uniform(0.2, 0.7) * times + rng.uniform(0, 6))
            tracks.append((name, rotations.axis_angle_matrix(np.broadcast_to(axis, (count, 3)), angle)))
    for side in "LR":
        for role in (f"forearm.{side}", f"shin.{side}"):
            step = next(s for s in retargeter.steps if retargeter.slots[s.slot].bone == bones[role])
            bend = np.radians(65 + 30 * np.sin(2 * np.pi * rng.uniform(0.2, 0.7) * times + rng.uniform(0, 6)))
            tracks.append((bones[role], rotations.axis_angle_matrix(np.broadcast_to(step.cue_rest, (count, 3)), bend)))
    return [{name: turns[frame] for name, turns in tracks} for frame in range(count)]


def test_a_smooth_known_motion_with_jitter_bakes_within_five_degrees_with_the_default_smoothing():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map)
    assert retargeter.options.smoothing == filters.OneEuroParams(), "the defaults"
    poser = Poser(rig, bone_map)
    rng = np.random.default_rng(5)
    motion = smooth_motion(rig, bone_map, retargeter, 120, seed=6)
    truth = [poser.pose(basis) for basis in motion]
    world = np.array([poser.landmarks(posed, retargeter) for posed in truth]) + rng.normal(
        scale=0.004, size=(120, 33, 3)
    )
    result = retargeter.solve_clip(world, np.ones((120, 33)), np.ones(120, bool), FPS)
    roles = [f"{limb}.{side}" for side in "LR" for limb in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")]
    indices = [rig.index(bone_map.bones[role]) for role in roles]
    solved = []
    for frame in range(120):
        basis = {bone: rotations.matrix_from_quat(result.rotations[frame, i]) for i, bone in enumerate(result.bones)}
        solved.append(poser.pose(basis))
    errors = np.degrees(
        rotations.rotation_angle(np.array(truth)[:, indices, :3, :3], np.array(solved)[:, indices, :3, :3])
    )
    assert errors.mean() <= 5.0, errors.mean(axis=0).round(2)
    assert errors.mean(axis=0).max() <= 10.0, errors.mean(axis=0).round(2)


def test_nothing_crosses_a_shot_cut_and_the_root_goes_on_from_where_it_was():
    """Two shots of one pose each; the second's first frames do not see the elbow. Smoothed: each shot keeps its
    own pose up to the cut (no blend), the unseen elbow takes the second shot's first sighting (not the first
    shot's), and the root, whose hips jump across the image at the cut, does not jump."""
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map)
    poser = Poser(rig, bone_map)
    arm = bone_map.bones["upper_arm.L"]
    poses = [
        poser.landmarks(poser.pose({arm: rotations.axis_angle_matrix(np.array([1.0, 0, 0]), np.array(a))}), retargeter)
        for a in (0.3, 1.2)
    ]
    world = np.array([poses[0]] * 20 + [poses[1]] * 20)
    visibility = np.ones((40, 33))
    visibility[20:24, frames.LANDMARK["left_elbow"]] = 0.0
    image = np.zeros((40, 33, 3))
    image[:, :, 0] = np.where(np.arange(40) < 20, 0.1, -0.1)[:, None] + 0.02 * np.arange(40)[:, None]  # 20 px a frame
    image[:, 11:13, 1], image[:, 23:25, 1] = 0.3, 0.5
    result = retargeter.solve_clip(world, visibility, np.ones(40, bool), FPS, image, (1000.0, 1000.0), [20])
    slot = result.bones.index(arm)
    quats = result.rotations[:, slot]
    np.testing.assert_allclose(np.abs(quats[:20] @ quats[0]), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(quats[20:] @ quats[39]), 1.0, atol=1e-9)
    assert abs(quats[19] @ quats[20]) < 0.95, "the cut is a cut"
    steps = np.linalg.norm(np.diff(result.root_location, axis=0), axis=-1)
    assert steps[19] <= 1.5 * np.median(steps), "no root jump at the cut"


# -- feet and root: a known walk seen by a known camera ------------------------------------------------------------

IMAGE_SIZE = (1280.0, 720.0)
CAMERA = np.array([0.0, -8.0, 1.0])
"""Blender position of the camera: 8 m in front of the rig, 1 m up, looking along +Y at the person facing it."""


def camera_view(points: np.ndarray) -> np.ndarray:
    """Normalised image landmarks (..., 3) of Blender points seen by the camera (pinhole, the solver's assumed
    field of view): x right, y down, z MediaPipe's relative depth (unused by the solve: zero)."""
    camera = frames.blender_to_mediapipe(points - CAMERA)
    focal = root_motion.focal_px(IMAGE_SIZE[0])
    u = IMAGE_SIZE[0] / 2 + focal * camera[..., 0] / camera[..., 2]
    v = IMAGE_SIZE[1] / 2 + focal * camera[..., 1] / camera[..., 2]
    return np.stack([u / IMAGE_SIZE[0], v / IMAGE_SIZE[1], np.zeros_like(u)], axis=-1)


def compass_walk(rig, bone_map, retargeter, steps: int = 6, step_frames: int = 12, half_angle_deg: float = 20.0):
    """A walk with straight legs (a compass gait) towards the camera and to the side (30 degrees off the view):
    each stance foot stays exactly where it landed while its leg pivots over it; the legs ease in and out of each
    step (a careful walk); feet stay level.

    Returns (basis per frame, root offsets (N, 3) armature space, stance side per frame ("L"/"R"))."""
    bones = bone_map.bones
    direction = np.array([np.sin(np.radians(30)), -np.cos(np.radians(30)), 0.0])
    axis = np.cross(direction, [0.0, 0.0, 1.0])
    up = np.array([0.0, 0.0, 1.0])
    rest_rot = {bone: rig.rest[rig.index(bone), :3, :3] for bone in bones.values()}
    hip = {side: rig.rest[rig.index(bones[f"thigh.{side}"]), :3, 3] for side in "LR"}
    ankle = {side: rig.rest[rig.index(bones[f"foot.{side}"]), :3, 3] for side in "LR"}
    leg = {side: hip[side] - ankle[side] for side in "LR"}
    half = np.radians(half_angle_deg)
    planted = dict(ankle)
    planted["R"] = ankle["R"] + np.linalg.norm(leg["R"]) * np.sin(half) * direction  # R lands first, ahead
    basis, offsets, stance_sides = [], [], []
    for step in range(steps):
        stance, swing = ("R", "L") if step % 2 == 0 else ("L", "R")
        for frame in range(step_frames):
            theta = half * np.cos(np.pi * frame / step_frames)  # each leg eases in and out of its swing
            turn = rotations.axis_angle_matrix(axis, np.array(theta))
            hip_now = planted[stance] + turn @ leg[stance]
            offset = hip_now - hip[stance]
            pose = {}
            for side, angle in ((stance, theta), (swing, -theta)):
                world_turn = rotations.axis_angle_matrix(axis, np.array(angle))
                thigh, foot = bones[f"thigh.{side}"], bones[f"foot.{side}"]
                pose[thigh] = rest_rot[thigh].T @ world_turn @ rest_rot[thigh]
                pose[foot] = rest_rot[foot].T @ world_turn.T @ rest_rot[foot]  # the foot stays level
            basis.append(pose)
            offsets.append(offset)
            stance_sides.append(stance)
        hip_end = planted[stance] + rotations.axis_angle_matrix(axis, np.array(-half)) @ leg[stance] - hip[stance]
        planted[swing] = hip_end + hip[swing] - rotations.axis_angle_matrix(axis, np.array(half)) @ leg[swing]
        planted[swing] -= ((planted[swing] - ankle[swing]) @ up) * up  # on the floor (the rest legs lean a little)
    return basis, np.array(offsets), stance_sides


def test_a_known_walk_keeps_planted_feet_in_place_and_the_root_on_its_path():
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map)
    poser = Poser(rig, bone_map)
    root_rest = rig.rest[0, :3, :3]
    basis, offsets, stance = compass_walk(rig, bone_map, retargeter)
    count = len(basis)
    truth = [poser.pose(b, root_rest.T @ o) for b, o in zip(basis, offsets, strict=True)]
    world = np.array([poser.landmarks(posed, retargeter) for posed in truth])
    hips = np.array(
        [
            (p[rig.index(bone_map.bones["thigh.L"]), :3, 3] + p[rig.index(bone_map.bones["thigh.R"]), :3, 3]) / 2
            for p in truth
        ]
    )
    image = camera_view(frames.mediapipe_to_blender(world) + hips[:, None])
    result = retargeter.solve_clip(world, np.ones((count, 33)), np.ones(count, bool), FPS, image, IMAGE_SIZE)

    solved = []
    for frame in range(count):
        rotations_now = {b: rotations.matrix_from_quat(result.rotations[frame, i]) for i, b in enumerate(result.bones)}
        solved.append(poser.pose(rotations_now, result.root_location[frame]))
    heel = {side: retargeter.rest_points[f"{word}_heel"] for side, word in solve.SIDE_WORDS.items()}
    drift = []
    for side in "LR":
        foot = bone_map.bones[f"foot.{side}"]
        on_floor = np.array([s == side for s in stance])
        for start, end in feet.spans(on_floor):
            inner = range(start + 1, end - 1)  # the frames a contact can be seen in (speed needs neighbours)
            places = np.array([poser.attached(solved[f], foot, heel[side]) for f in inner])
            drift.append(np.linalg.norm(places - places[0], axis=-1).max())
    assert max(drift) <= 0.02, np.round(drift, 3)
    assert result.contacts is not None and result.contacts.any(axis=1).mean() > 0.6

    solved_hips = np.array([s[0, :3, 3] for s in solved]) - solved[0][0, :3, 3]
    true_hips = np.array([t[0, :3, 3] for t in truth]) - truth[0][0, :3, 3]
    path = np.linalg.norm(np.diff(true_hips, axis=0), axis=-1).sum()
    assert np.linalg.norm(solved_hips - true_hips, axis=-1).max() <= 0.05 * path
    assert abs(true_hips[-1, 1]) > 2.0, "the walk goes towards the camera by metres: depth is measured"


def test_a_jump_lifts_the_root_and_standing_keeps_it_on_the_ground():
    """The person stands, jumps 30 cm (half a second in the air, a parabola), lands, stands: the world landmarks
    (hip-centred) never change, only where the camera sees the body does."""
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map)
    poser = Poser(rig, bone_map)
    posed = poser.pose({})
    count, flight = 60, np.arange(24, 37)
    height = np.zeros(count)
    height[flight] = 0.3 * (1 - ((flight - 30) / 6.0) ** 2)
    world = np.repeat(poser.landmarks(posed, retargeter)[None], count, 0)
    hips = (posed[rig.index(bone_map.bones["thigh.L"]), :3, 3] + posed[rig.index(bone_map.bones["thigh.R"]), :3, 3]) / 2
    image = camera_view(frames.mediapipe_to_blender(world) + hips + height[:, None, None] * np.array([0, 0, 1.0]))
    result = retargeter.solve_clip(world, np.ones((count, 33)), np.ones(count, bool), FPS, image, IMAGE_SIZE)
    rise = (result.root_location @ rig.rest[0, :3, :3].T)[:, 2]
    assert abs(rise[:18]).max() < 0.01 and abs(rise[44:]).max() < 0.01, "standing: on the ground"
    assert 0.8 * 0.3 <= rise.max() <= 1.1 * 0.3, rise.max()
    assert abs(int(np.argmax(rise)) - 30) <= 1, "at the top of the jump, without lag"
    flat = solve.Retargeter(rig, bone_map, solve.SolveOptions(root_vertical=False))
    still = flat.solve_clip(world, np.ones((count, 33)), np.ones(count, bool), FPS, image, IMAGE_SIZE)
    assert abs((still.root_location @ rig.rest[0, :3, :3].T)[:, 2]).max() < 0.01, "Jumps off: no vertical motion"


def test_a_limb_unseen_for_long_settles_towards_rest_and_its_confidence_says_so():
    """The left arm is seen raised for 1 s, then MediaPipe loses it for 6 s (visibility 0.2, its guesses garbage):
    held for 2 s, then turning to the rig's rest pose (63 % of the way after 1 s more, nearly there at the end)."""
    rig = metarig()
    bone_map = bone_maps.detect_map(rig)
    retargeter = solve.Retargeter(rig, bone_map)
    poser = Poser(rig, bone_map)
    arm = bone_map.bones["upper_arm.L"]
    raised = poser.landmarks(
        poser.pose({arm: rotations.axis_angle_matrix(np.array([1.0, 0, 0]), np.array(1.2))}), retargeter
    )
    count, seen_frames = 7 * 24, 24
    world = np.repeat(raised[None], count, 0)
    visibility = np.ones((count, 33))
    elbow = frames.LANDMARK["left_elbow"]
    visibility[seen_frames:, elbow] = 0.2
    world[seen_frames:, elbow] = np.random.default_rng(12).normal(size=(count - seen_frames, 3))
    result = retargeter.solve_clip(world, visibility, np.ones(count, bool), FPS)
    slot = result.bones.index(arm)
    turned = np.degrees(2 * np.arccos(np.clip(np.abs(result.rotations[:, slot, 0]), 0, 1)))
    held = turned[seen_frames - 1]
    assert held > 60
    # 2 s held (the zero-phase smoothing starts the turn a few frames early)
    np.testing.assert_allclose(turned[seen_frames : seen_frames + 42], held, atol=0.5)
    assert abs(turned[seen_frames + 72] - 0.37 * held) < 3, "1 s into settling: 63 % of the way to rest"
    assert turned[-1] < 0.1 * held and np.all(np.diff(turned[seen_frames + 48 :]) <= 1e-9)
    sure = result.confidence[:, slot]
    np.testing.assert_allclose(sure[:seen_frames], 1.0)
    np.testing.assert_allclose(sure[seen_frames:], 0.2)


def test_the_causal_filter_starts_afresh_at_a_cut():
    """Fingers, head and face shapes of a bake use the One Euro filter: at a cut it starts again, so the new shot's
    first value is its own and nothing of the last shot leaks into it."""
    times = np.arange(20) / FPS
    step = np.where(np.arange(20) < 10, 0.0, 1.0)[:, None]
    params = filters.OneEuroParams()
    across = filters.one_euro(step, times, params)
    assert 0.0 < across[10, 0] < 0.9, "without the cut the step is smoothed"
    cut = filters.one_euro(step, times, params, segment_starts=(10,))
    np.testing.assert_array_equal(cut[10:], step[10:])
    np.testing.assert_array_equal(cut[:10], across[:10])
