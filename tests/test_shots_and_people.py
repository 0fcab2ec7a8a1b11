"""Shot cuts and person tracks in the pose runner, with real MediaPipe and OpenCV on real footage.

Megamind.avi (270 frames): a black first frame, then shots starting at frames 1, 98, 154 and 200 (checked by
eye: a woman, a man, the woman, the man in close-up). vtest.avi: OpenCV's pedestrian clip, 768x576 at 10 fps,
half a dozen people walking at once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_pose_runner import RecordingContext

from models.graph_ahead import GraphAhead
from models.media import VideoFile
from models.person_tracks import iou, same_person
from models.pose import PoseRunner, _PoseGraph
from models.runner import Media, RunResult
from models.shot_cuts import CUT_DISTANCE, ShotCutDetector

MEGAMIND_SHOT_STARTS = [0, 1, 98, 154, 200]
VTEST_FRAMES = 60


@pytest.fixture(scope="module")
def runner() -> Iterator[PoseRunner]:
    pose = PoseRunner()
    pose.load("cpu")
    yield pose
    pose.unload()


def run(runner: PoseRunner, video: Media, folder: Path, **params) -> RunResult:
    return runner.run({"video": video}, runner.validate({"render_skeleton": False, **params}), RecordingContext(folder))


@pytest.fixture(scope="module")
def megamind(runner: PoseRunner, sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run(runner, VideoFile(sample_video), tmp_path_factory.mktemp("megamind-shots"))


@pytest.fixture(scope="module")
def vtest(runner: PoseRunner, vtest_video: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    video = VideoFile(vtest_video, frame_end=VTEST_FRAMES)
    return run(runner, video, tmp_path_factory.mktemp("vtest-people"), people="all")


def test_megamind_cuts_are_found_at_the_frames_a_viewer_sees_them(megamind: RunResult):
    found = megamind.summary["shot_starts"]
    assert len(found) == len(MEGAMIND_SHOT_STARTS), found
    for detected, true in zip(found, MEGAMIND_SHOT_STARTS, strict=True):
        assert abs(detected - true) <= 1, (found, MEGAMIND_SHOT_STARTS)
    distances = megamind.arrays["shot_cut_distance"]
    assert distances.shape == (270,)
    inside = np.delete(distances, MEGAMIND_SHOT_STARTS)
    assert inside.max() < CUT_DISTANCE / 2, "within a shot, colours change far less than at a cut"


def test_a_shots_first_pose_is_its_own_not_blended_with_the_last_shot(
    runner: PoseRunner, megamind: RunResult, sample_video: Path, tmp_path: Path
):
    """The tracker (and MediaPipe's landmark smoothing) starts afresh at a cut: the first frames of the shot at
    frame 98 come out as they do when the shot is tracked on its own."""
    alone = run(runner, VideoFile(sample_video, frame_start=98, frame_end=104), tmp_path)
    np.testing.assert_allclose(megamind.arrays["world_landmarks"][98:104], alone.arrays["world_landmarks"], atol=1e-6)


def test_a_cut_after_frames_without_anyone_keeps_the_graph_and_changes_nothing(
    runner: PoseRunner, megamind: RunResult, sample_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Frame 0 is black and frame 1 starts a shot: the graph that found nobody in frame 0 is kept rather than
    rebuilt, and frames 1.. come out exactly as when tracking starts at frame 1."""
    assert megamind.summary["shot_starts"][:2] == [0, 1] and not megamind.arrays["present"][0]
    built = []
    new_tracker = runner._new_tracker
    monkeypatch.setattr(runner, "_new_tracker", lambda params: built.append(1) or new_tracker(params))
    leader = run(runner, VideoFile(sample_video, frame_end=12), tmp_path / "leader")
    assert leader.summary["shot_starts"] == [0, 1] and len(built) == 1, "one graph for both shots"
    alone = run(runner, VideoFile(sample_video, frame_start=1, frame_end=12), tmp_path / "alone")
    for name in ("image_landmarks", "world_landmarks", "visibility"):
        np.testing.assert_array_equal(leader.arrays[name][1:], alone.arrays[name], err_msg=name)
        np.testing.assert_array_equal(megamind.arrays[name][1:12], alone.arrays[name], err_msg=name)


class DecodedAhead:
    """``video`` decoded whole (``on_decoded`` called for every frame) before its first frame is yielded: the job
    knows every cut as early as it can, so whether a graph is built ahead does not depend on thread timing."""

    def __init__(self, video: VideoFile) -> None:
        self.video, self.frame_count, self.fps, self.size = video, video.frame_count, video.fps, video.size

    def frames(self, on_decoded: Callable[[np.ndarray], object] | None = None) -> Iterator[np.ndarray]:
        frames = list(self.video.frames())
        for frame in frames:
            if on_decoded is not None:
                on_decoded(frame)
        return iter(frames)


def graph_threads(runner: PoseRunner, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads the runner builds its graphs on, from now on."""
    threads: list[str] = []
    new_tracker = runner._new_tracker
    monkeypatch.setattr(
        runner, "_new_tracker", lambda params: threads.append(threading.current_thread().name) or new_tracker(params)
    )
    return threads


def test_each_shots_graph_is_built_ahead_and_tracks_exactly_as_one_built_at_the_cut(
    runner: PoseRunner, sample_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The graphs for the shots at 98, 154 and 200 are built and warmed on another thread before the job reaches
    them; each shot's landmarks equal those of a job that starts at that shot (its graph built there, unwarmed)."""
    threads = graph_threads(runner, monkeypatch)
    ahead = run(runner, DecodedAhead(VideoFile(sample_video)), tmp_path / "ahead")
    assert ahead.summary["shot_starts"] == MEGAMIND_SHOT_STARTS
    assert len(threads) == 4 and threads[0] == threading.current_thread().name, threads
    assert all(name.startswith("pose-graph-ahead") for name in threads[1:]), threads
    bounds = [*MEGAMIND_SHOT_STARTS[1:], 270]
    for start, end in itertools.pairwise(bounds):
        alone = run(runner, VideoFile(sample_video, frame_start=start, frame_end=end), tmp_path / f"alone-{start}")
        for name in ("image_landmarks", "world_landmarks", "visibility"):
            np.testing.assert_array_equal(ahead.arrays[name][start:end], alone.arrays[name], err_msg=f"{name} {start}")


def test_a_holistic_graph_built_ahead_records_only_the_frames_it_tracks(
    runner: PoseRunner, sample_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With hands and face, the graph warmed ahead for the shot at 154 adds no row to the parts (its black frame
    is not a frame of the job), and the shot's body, hands and face equal a job's that starts at 154."""
    threads = graph_threads(runner, monkeypatch)
    ahead = run(
        runner,
        DecodedAhead(VideoFile(sample_video, frame_start=148, frame_end=160)),
        tmp_path / "ahead",
        hands=True,
        face=True,
    )
    assert ahead.summary["shot_starts"] == [0, 6] and len(threads) == 2
    assert threads[1].startswith("pose-graph-ahead"), threads
    alone = run(
        runner, VideoFile(sample_video, frame_start=154, frame_end=160), tmp_path / "alone", hands=True, face=True
    )
    names = (
        "image_landmarks",
        "world_landmarks",
        "visibility",
        "hand_landmarks",
        "hand_present",
        "face_landmarks",
        "face_present",
    )
    assert alone.arrays["face_present"].all() and alone.arrays["hand_present"].any()
    for name in names:
        assert len(ahead.arrays[name]) == 12, name
        np.testing.assert_array_equal(ahead.arrays[name][6:], alone.arrays[name], err_msg=name)


def test_a_single_person_clip_is_one_track_and_the_main_arrays_follow_it(megamind: RunResult):
    summary, arrays = megamind.summary, megamind.arrays
    [track] = summary["tracks"]
    assert summary["default_track"] == 0 and track["number"] == 1
    assert track["frames"] == summary["frames_with_person"] == int(arrays["present"].sum())
    np.testing.assert_array_equal(arrays["track_present"][0], arrays["present"])
    np.testing.assert_array_equal(arrays["track_world_landmarks"][0], arrays["world_landmarks"])


def assert_tracks_never_jump(result: RunResult) -> None:
    """Each track's hips (the midpoint of the hip landmarks) move less than 0.4 of the person's height per
    frame: a walker at vtest's 10 fps moves about a tenth of it (MediaPipe's jitter on people 70 px tall as much
    again), someone walking alongside is about half a height away."""
    boxes, present = result.arrays["track_boxes"], result.arrays["track_present"]
    size = np.array([result.summary["width"], result.summary["height"]])
    hips = result.arrays["track_image_landmarks"][:, :, 23:25, :2].mean(axis=2) * size
    for t in range(boxes.shape[0]):
        frames = np.flatnonzero(present[t])
        height = np.median(boxes[t, frames, 3] - boxes[t, frames, 1])
        steps = np.linalg.norm(np.diff(hips[t, frames], axis=0), axis=-1) / np.diff(frames)
        assert np.all(steps < 0.4 * height), f"track {t + 1} jumped: {steps.max():.0f} px in a frame"


def test_several_pedestrians_are_each_followed_by_a_track_that_never_jumps(vtest: RunResult):
    summary, arrays = vtest.summary, vtest.arrays
    lasting = [t for t in summary["tracks"] if t["frames"] >= 20]
    assert len(lasting) >= 3, summary["tracks"]
    assert arrays["track_boxes"].shape == (len(summary["tracks"]), VTEST_FRAMES, 4)
    assert_tracks_never_jump(vtest)
    present = arrays["track_present"]
    default = summary["default_track"]
    longest = max(t["frames"] for t in summary["tracks"])
    heights = [t["median_height_px"] for t in summary["tracks"] if t["frames"] >= longest / 2]
    assert summary["tracks"][default]["median_height_px"] == max(heights), "by default the largest main person"
    np.testing.assert_array_equal(arrays["present"], present[default])


def test_the_single_person_tracker_switching_people_starts_a_new_track(
    runner: PoseRunner, vtest_video: Path, tmp_path: Path
):
    """MediaPipe's whole-frame tracker, on a crowd, jumps between pedestrians: every jump starts a new track, so
    no track ever jumps."""
    clip = VideoFile(vtest_video, frame_start=440, frame_end=530)
    result = run(runner, clip, tmp_path, people="one")
    assert_tracks_never_jump(result)
    assert len(result.summary["tracks"]) >= 2, "the tracker changed person at least once"


def test_boxes_of_one_person_match_and_of_two_people_do_not():
    a = np.array([100.0, 100, 150, 250])
    assert iou(a, a) == 1.0 and same_person(a, a + 10)
    assert not same_person(a, a + np.array([300.0, 0, 300, 0]))


def test_the_cut_detector_needs_no_history_and_reports_distances():
    detector = ShotCutDetector()
    black, grey = np.zeros((40, 60, 3), np.uint8), np.full((40, 60, 3), 128, np.uint8)
    assert [detector.push(f) for f in (black, black, grey, grey)] == [True, False, True, False]
    assert detector.shot_starts == [0, 2] and detector.distances[1] == 0.0 and detector.distances[2] > 0.9


def test_a_graph_prepared_and_never_taken_is_closed_and_a_build_error_reaches_the_taker(runner: PoseRunner):
    """A job that ends (or is cancelled) before its next shot closes the graph built for it and ends the thread
    that built it; a graph that cannot be built raises where the job takes it, not on the thread."""
    params = runner.validate({})
    built: list[_PoseGraph] = []

    def build() -> _PoseGraph:
        built.append(_PoseGraph(runner._new_tracker(params), lambda *_: None, (64, 48)))
        return built[-1]

    graphs = GraphAhead(build)
    graphs.prepare()
    assert graphs.pending
    graphs.close()
    assert len(built) == 1 and built[0].tracker._graph is None, "the untaken graph is closed"
    assert not graphs.pending and not ahead_threads()

    failing = GraphAhead(lambda: _PoseGraph(PoseRunner()._new_tracker(params), lambda *_: None, (64, 48)))
    failing.prepare()
    with pytest.raises(RuntimeError, match="before load"):
        failing.take()
    failing.close()
    assert not ahead_threads()


def ahead_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pose-graph-ahead")]
