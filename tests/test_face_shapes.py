"""Face mesh to ARKit shape values on real footage (real MediaPipe through the pose runner).

Megamind.avi frames chosen by hand (Roxanne facing the camera): 10..14 a resting face (the marked neutral), 30 and
70 both eyes closed with the mouth shut, 180 the mouth wide open with the eyes open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pose_runner import run_pose
from test_retarget import _load_retarget

from models.media import VideoFile
from models.pose import PoseRunner

_load_retarget()
from vfx_retarget import face_shapes as fs  # noqa: E402

FIRST, END = 10, 181
NEUTRAL = tuple(range(5))
EYES_CLOSED = (30 - FIRST, 70 - FIRST)
MOUTH_OPEN = 180 - FIRST
RISE = 0.6
"""How far jawOpen and eyeBlink must rise above the neutral (measured: 1.0 and 0.94..1.0)."""
QUIET = 0.2
"""Unrelated shapes stay below this."""


@pytest.fixture(scope="module")
def take(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    runner = PoseRunner()
    runner.load("cpu")
    try:
        video = VideoFile(sample_video, FIRST, END)
        result, _ = run_pose(runner, video, tmp_path_factory.mktemp("face"), face=True, render_skeleton=False)
    finally:
        runner.unload()
    return result.arrays


def values(take: dict[str, np.ndarray], **options) -> dict[str, np.ndarray]:
    solved = fs.solve_face(
        take["face_landmarks"],
        take["face_present"],
        (720, 528),
        23.976,
        fs.FaceOptions(min_cutoff_hz=dict.fromkeys(fs.GROUPS, 0.0), neutral_indices=NEUTRAL, **options),
    )
    return {name: solved.values[:, i] for i, name in enumerate(fs.ARKIT_SHAPES)}


def test_the_52_arkit_names() -> None:
    assert len(fs.ARKIT_SHAPES) == len(set(fs.ARKIT_SHAPES)) == 52
    assert {fs.group_of(name) for name in fs.ARKIT_SHAPES} == set(fs.GROUPS)


def test_the_neutral_reads_zero(take) -> None:
    shapes = values(take)
    for name, series in shapes.items():
        assert series[list(NEUTRAL)].max() <= QUIET, name


def test_closed_eyes_raise_eye_blink_and_leave_the_jaw_and_mouth_alone(take) -> None:
    shapes = values(take)
    for frame in EYES_CLOSED:
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            assert shapes[name][frame] - shapes[name][list(NEUTRAL)].mean() >= RISE, (name, frame)
        for name in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "browDownLeft", "browDownRight", "cheekPuff"):
            assert shapes[name][frame] <= QUIET, (name, frame)


def test_an_open_mouth_raises_jaw_open_and_leaves_the_eyes_alone(take) -> None:
    shapes = values(take)
    assert shapes["jawOpen"][MOUTH_OPEN] - shapes["jawOpen"][list(NEUTRAL)].mean() >= RISE
    for name in ("eyeBlinkLeft", "eyeBlinkRight", "eyeSquintRight", "browDownLeft", "browDownRight", "mouthClose"):
        assert shapes[name][MOUTH_OPEN] <= QUIET, name


def test_gain_scales_its_group_only(take) -> None:
    plain, halved = values(take), values(take, gains={"eyes": 0.5, "brows": 1.0, "mouth": 1.0})
    frame = EYES_CLOSED[0]
    assert halved["eyeBlinkLeft"][frame] == pytest.approx(plain["eyeBlinkLeft"][frame] * 0.5, abs=1e-6)
    assert halved["jawOpen"][MOUTH_OPEN] == plain["jawOpen"][MOUTH_OPEN]


def test_a_take_without_a_face_or_marks_without_one_is_refused_clearly(take) -> None:
    empty = np.zeros(3, dtype=bool)
    with pytest.raises(fs.FaceError, match="No frame of the take has a face"):
        fs.solve_face(np.full((3, 478, 3), np.nan), empty, (720, 528), 24.0)
    with pytest.raises(fs.FaceError, match="marked neutral frames"):
        fs.solve_face(
            take["face_landmarks"], take["face_present"], (720, 528), 24.0, fs.FaceOptions(neutral_indices=(9999,))
        )


def test_name_maps_are_parsed_or_refused_by_entry() -> None:
    assert fs.parse_name_map("jawOpen=MouthOpen; eyeBlinkLeft = Blink_L,") == {
        "jawOpen": "MouthOpen",
        "eyeBlinkLeft": "Blink_L",
    }
    with pytest.raises(fs.FaceError, match="'jawOpn=X'"):
        fs.parse_name_map("jawOpn=X")


def test_live_face_calibrates_on_its_first_frames_then_reads_the_same_shapes(take) -> None:
    options = fs.FaceOptions(min_cutoff_hz=dict.fromkeys(fs.GROUPS, 0.0), neutral_frames=len(NEUTRAL))
    live = fs.LiveFace(options)
    rows = []
    for index, (points, present) in enumerate(zip(take["face_landmarks"], take["face_present"], strict=True)):
        rows.append(live.push(points, bool(present), (720, 528), index / 23.976).copy())
        assert live.calibrated == (index >= len(NEUTRAL) - 1)
    rows = np.array(rows)
    assert not rows[: len(NEUTRAL)].any(), "zero until the neutral is complete"
    clip = values(take)
    blink = fs.ARKIT_SHAPES.index("eyeBlinkLeft")
    np.testing.assert_allclose(rows[EYES_CLOSED[0], blink], clip["eyeBlinkLeft"][EYES_CLOSED[0]], atol=1e-5)
    assert rows[MOUTH_OPEN, fs.ARKIT_SHAPES.index("jawOpen")] >= RISE


def test_a_baked_jaw_opening_stays_on_its_frames_while_the_live_jaw_lags(take) -> None:
    """A bake smooths the face shapes zero-phase with each group's cutoff: a mouth that opens and closes, wide open
    at frame 30 (the real resting and open faces blended along a raised-cosine bump), reads its jawOpen peak there
    (within a frame) and its centre in time (the values' weighted mean frame) on frame 30; live, the causal One
    Euro filter at the same cutoff (the mouth at 0.5 Hz: a slow jaw) puts that centre over a frame later."""
    count, fps, peak = 60, 24.0, 30
    phase = np.clip((np.arange(count) - (peak - 12)) / 24, 0.0, 1.0)
    bump = 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))
    rest, wide = take["face_landmarks"][NEUTRAL[0]], take["face_landmarks"][MOUTH_OPEN]
    faces = rest + bump[:, None, None] * (wide - rest)
    options = fs.FaceOptions(min_cutoff_hz={**fs.DEFAULT_MIN_CUTOFF_HZ, "mouth": 0.5})
    jaw = fs.ARKIT_SHAPES.index("jawOpen")
    baked = fs.solve_face(faces, np.ones(count, bool), (720, 528), fps, options).values[:, jaw]
    live_face = fs.LiveFace(options)
    live = np.array([live_face.push(faces[i], True, (720, 528), i / fps)[jaw] for i in range(count)])

    def centre(values: np.ndarray) -> float:
        return float(np.sum(np.arange(count) * values) / np.sum(values))

    assert 0.3 < baked.max() < 1.0, "the jaw opens, short of the clip at 1"
    assert abs(int(np.argmax(baked)) - peak) <= 1, "the bake's jawOpen peaks on the open mouth's frame"
    assert abs(centre(baked) - peak) < 0.25, "the bake's jaw opening is not shifted in time"
    assert centre(live) > peak + 1.0, "live, the jaw lags (One Euro)"
