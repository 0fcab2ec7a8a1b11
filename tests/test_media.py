"""Media inputs: what frames they yield, how they fail, and that decoding threads never outlive them."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.media import FrameArray, ImageSequence, VideoFile, open_media
from models.runner import InvalidInput

MEGAMIND_FRAMES = 270


@pytest.fixture(scope="module")
def megamind_rgb(sample_video: Path) -> list[np.ndarray]:
    """Frames 0..39 of Megamind decoded straight with OpenCV, as RGB: the reference to compare with."""
    capture = cv2.VideoCapture(str(sample_video))
    frames = []
    for _ in range(40):
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture
def image_folder(tmp_path: Path, megamind_rgb: list[np.ndarray]) -> list[Path]:
    """Three PNGs of Megamind frames 10, 11, 12."""
    paths = []
    for index in (10, 11, 12):
        path = tmp_path / f"frame_{index:04d}.png"
        assert cv2.imwrite(str(path), cv2.cvtColor(megamind_rgb[index], cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def decoding_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("decode ")]


# VideoFile


def test_video_file_reports_the_whole_file_by_default(sample_video: Path) -> None:
    video = VideoFile(sample_video)
    assert video.frame_count == MEGAMIND_FRAMES
    assert video.fps == pytest.approx(23.976, abs=1e-3)
    assert video.size == (720, 528)


def test_video_frames_are_rgb_uint8_in_file_order(sample_video: Path, megamind_rgb: list[np.ndarray]) -> None:
    frames = list(VideoFile(sample_video, frame_end=20).frames())
    assert len(frames) == 20
    assert all(frame.dtype == np.uint8 and frame.shape == (528, 720, 3) for frame in frames)
    for frame, expected in zip(frames, megamind_rgb, strict=False):
        np.testing.assert_array_equal(frame, expected)


def test_video_range_and_step_select_frames_like_range(sample_video: Path, megamind_rgb: list[np.ndarray]) -> None:
    video = VideoFile(sample_video, frame_start=10, frame_end=20, step=3)
    frames = list(video.frames())
    assert video.frame_count == len(frames) == 4
    for frame, index in zip(frames, (10, 13, 16, 19), strict=True):
        np.testing.assert_array_equal(frame, megamind_rgb[index])


def test_video_frame_end_past_the_last_frame_means_to_the_end(sample_video: Path) -> None:
    video = VideoFile(sample_video, frame_start=265, frame_end=10_000)
    assert video.frame_count == 5
    assert len(list(video.frames())) == 5


def test_stopping_early_stops_the_decoding_thread(sample_video: Path) -> None:
    threads_before = threading.active_count()
    for index, _frame in enumerate(VideoFile(sample_video).frames()):
        if index == 2:
            break
    assert threading.active_count() == threads_before
    assert decoding_threads() == []


def test_closing_a_generator_stops_the_decoding_thread_at_once(sample_video: Path) -> None:
    threads_before = threading.active_count()
    frames = VideoFile(sample_video).frames()
    next(frames)
    assert len(decoding_threads()) == 1, "decoding should run on its own thread"
    frames.close()
    assert threading.active_count() == threads_before


def test_an_error_in_the_consumer_stops_the_decoding_thread(sample_video: Path) -> None:
    threads_before = threading.active_count()
    frames = VideoFile(sample_video).frames()
    with pytest.raises(ZeroDivisionError):
        for _frame in frames:
            1 / 0  # noqa: B018 - the consumer failing mid-video is the point
    frames.close()
    assert threading.active_count() == threads_before


def test_reading_to_the_end_leaves_no_thread(sample_video: Path) -> None:
    threads_before = threading.active_count()
    assert len(list(VideoFile(sample_video, frame_start=200).frames())) == 70
    assert threading.active_count() == threads_before


def note_thread(seen: list[tuple[np.ndarray, str]], frame: np.ndarray) -> None:
    seen.append((frame, threading.current_thread().name))


def test_on_decoded_sees_each_frame_on_the_decoding_thread_before_the_consumer_does(
    sample_video: Path, image_folder: list[Path]
) -> None:
    """Work handed to ``frames(on_decoded=...)`` runs as frames are decoded: when the consumer takes frame i,
    frame i and the frames decoded after it have been seen, in order, on the decoding thread."""
    for media in (VideoFile(sample_video, frame_end=40), ImageSequence(image_folder)):
        seen: list[tuple[np.ndarray, str]] = []
        frames = media.frames(on_decoded=partial(note_thread, seen))
        for index, frame in enumerate(frames):
            assert len(seen) > index and seen[index][0] is frame
        assert len(seen) == media.frame_count
        assert {name.split()[0] for _, name in seen} == {"decode"}, "on the decoding thread"


def test_an_error_in_on_decoded_reaches_the_consumer_and_stops_the_thread(sample_video: Path) -> None:
    threads_before = threading.active_count()

    seen: list[np.ndarray] = []

    def fail_at_five(frame: np.ndarray) -> None:
        seen.append(frame)
        if len(seen) == 5:
            raise ArithmeticError("on_decoded failed")

    with pytest.raises(ArithmeticError, match="on_decoded failed"):
        list(VideoFile(sample_video).frames(on_decoded=fail_at_five))
    assert threading.active_count() == threads_before


# ImageSequence and FrameArray


def test_image_sequence_yields_rgb_frames_in_the_order_given(
    image_folder: list[Path], megamind_rgb: list[np.ndarray]
) -> None:
    sequence = ImageSequence(list(reversed(image_folder)), fps=30.0)
    assert (sequence.frame_count, sequence.fps, sequence.size) == (3, 30.0, (720, 528))
    for frame, index in zip(sequence.frames(), (12, 11, 10), strict=True):
        np.testing.assert_array_equal(frame, megamind_rgb[index])


def test_image_sequence_refuses_an_image_of_another_size(image_folder: list[Path], tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((10, 20, 3), np.uint8))
    frames = ImageSequence([*image_folder, small], name="video").frames()
    with pytest.raises(InvalidInput) as error:
        list(frames)
    assert error.value.field == "video"
    assert "small.png is 20x10" in error.value.message and "720x528" in error.value.message
    assert decoding_threads() == []


def test_frame_array_yields_views_of_its_frames() -> None:
    array = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    frames = FrameArray(array, fps=12.0)
    assert (frames.frame_count, frames.fps, frames.size) == (2, 12.0, (5, 4))
    yielded = list(frames.frames())
    assert all(np.shares_memory(frame, array) for frame in yielded)
    seen: list[np.ndarray] = []
    for index, frame in enumerate(frames.frames(on_decoded=seen.append)):
        assert len(seen) == index + 1 and seen[index] is frame
    np.testing.assert_array_equal(np.stack(yielded), array)


# open_media


def test_open_media_reads_a_video_path_with_its_range(sample_video: Path) -> None:
    media = open_media("video", {"path": str(sample_video), "frame_start": 5, "frame_end": 25, "step": 2})
    assert isinstance(media, VideoFile)
    assert media.frame_count == 10


def test_open_media_reads_a_single_image_as_one_frame(sample_image: Path) -> None:
    media = open_media("reference", {"path": str(sample_image)})
    frames = list(media.frames())
    assert media.frame_count == len(frames) == 1
    assert media.size == (548, 342)
    assert frames[0].shape == (342, 548, 3)


def test_open_media_reads_an_image_sequence(image_folder: list[Path]) -> None:
    media = open_media("video", {"paths": [str(p) for p in image_folder], "fps": 25})
    assert isinstance(media, ImageSequence)
    assert (media.frame_count, media.fps) == (3, 25.0)


def test_open_media_reads_an_array() -> None:
    media = open_media("video", {"array": np.zeros((4, 8, 6, 3), np.uint8)})
    assert (media.frame_count, media.size, media.fps) == (4, (6, 8), 24.0)


def test_missing_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "x.mp4"
    with pytest.raises(InvalidInput) as error:
        open_media("video", {"path": str(missing)})
    assert error.value.field == "video"
    assert f"file not found: {missing}" in error.value.message


def test_a_file_opencv_cannot_decode_is_refused(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_bytes(b"these are not video frames\n" * 100)
    with pytest.raises(InvalidInput) as error:
        open_media("video", {"path": str(not_a_video)})
    assert error.value.field == "video"
    assert "could not decode" in error.value.message
    assert "is it a video OpenCV can read?" in error.value.message


@pytest.mark.parametrize(
    ("frame_start", "frame_end", "expected"),
    [
        (300, None, "is empty: Megamind.avi has 270 frames"),
        (20, 20, "is empty"),
        (20, 10, "is empty"),
    ],
)
def test_an_empty_frame_range_is_refused(
    sample_video: Path, frame_start: int, frame_end: int | None, expected: str
) -> None:
    spec = {"path": str(sample_video), "frame_start": frame_start, "frame_end": frame_end}
    with pytest.raises(InvalidInput) as error:
        open_media("driving", spec)
    assert error.value.field == "driving"
    assert expected in error.value.message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"path": "{video}", "step": 0}, "step must be 1 or more"),
        ({"path": "{video}", "frame_start": -1}, "frame_start must be 0 or more"),
        ({"path": "{video}", "frame_start": 2.5}, "frame_start must be a whole number"),
        ({"path": "{video}", "frame_end": True}, "frame_end must be a whole number"),
        ({"path": "{video}", "fps": 30}, "unknown keys fps for a 'path' input"),
        ({"path": "{image}", "frame_start": 3}, "frame_start apply to video files only"),
        ({"path": ""}, "path must be a non-empty file path"),
        ({"paths": []}, "the image sequence is empty"),
        ({"paths": "{image}"}, "paths must be a list"),
        ({"paths": ["{image}"], "fps": 0}, "fps must be a positive number"),
        ({"array": np.zeros((2, 8, 8, 3), np.float32)}, "dtype uint8"),
        ({"array": np.zeros((8, 8, 3), np.uint8)}, "shape (frames, height, width, 3)"),
        ({"array": np.zeros((2, 8, 8, 4), np.uint8)}, "shape (frames, height, width, 3)"),
        ({"array": np.zeros((0, 8, 8, 3), np.uint8)}, "at least one frame"),
        ({"array": [[1, 2, 3]]}, "array must be a numpy array"),
        ({"url": "http://example.com/a.mp4"}, "needs exactly one of 'path', 'paths' or 'array', got url"),
        ({"path": "{video}", "array": np.zeros((1, 2, 2, 3), np.uint8)}, "needs exactly one of"),
    ],
)
def test_bad_specs_name_the_field_and_the_fix(
    spec: dict, expected: str, sample_video: Path, sample_image: Path
) -> None:
    real_paths = {"{video}": str(sample_video), "{image}": str(sample_image)}

    def with_real_paths(value: object) -> object:
        if isinstance(value, str):
            return real_paths.get(value, value)
        if isinstance(value, list):
            return [with_real_paths(item) for item in value]
        return value

    spec = {key: with_real_paths(value) for key, value in spec.items()}
    with pytest.raises(InvalidInput) as error:
        open_media("video", spec)
    assert error.value.field == "video"
    assert expected in error.value.message


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidInput, match="must be a mapping with 'path', 'paths' or 'array', got str"):
        open_media("video", "/tmp/a.mp4")  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_image_sizes_come_from_the_header_of_each_format(tmp_path, suffix):
    import cv2

    from models.image_header import image_size

    path = tmp_path / f"wide{suffix}"
    assert cv2.imwrite(str(path), np.zeros((37, 53, 3), np.uint8))
    assert image_size("image", path) == (53, 37)
    lossless = tmp_path / "lossless.webp"
    assert cv2.imwrite(str(lossless), np.zeros((37, 53, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert image_size("image", lossless) == (53, 37)
    text = tmp_path / f"text{suffix}"
    text.write_text("not an image")
    with pytest.raises(InvalidInput, match="PNG, JPEG, BMP, WebP or TIFF") as err:
        image_size("image", text)
    assert err.value.field == "image"


def test_one_parser_reads_the_input_spec_format_for_the_wire_and_for_the_media_layer(
    sample_video: Path, tmp_path: Path
) -> None:
    """The engine (wire forms: path, paths, blob) and the media layer (path, paths, array) read specs with
    :func:`shared.inputs.parse_input`: the same bad spec gets the same words from both."""
    from daemon.blobs import BlobStore
    from daemon.job_inputs import open_inputs
    from shared.inputs import MEDIA_FORMS, WIRE_FORMS, parse_input

    spec = parse_input("video", {"path": str(sample_video), "frame_start": 2, "step": 3}, WIRE_FORMS)
    assert (spec.form, spec.value, spec.frame_start, spec.frame_end, spec.step) == (
        "path",
        str(sample_video),
        2,
        None,
        3,
    )
    assert parse_input("clip", {"blob": "ab" * 32, "fps": 30}).fps == 30.0
    with pytest.raises(InvalidInput, match="needs exactly one of 'path', 'paths' or 'blob', got array"):
        parse_input("clip", {"array": np.zeros((1, 2, 2, 3), np.uint8)}, WIRE_FORMS)
    bad = {"path": str(sample_video), "fps": 30}
    with pytest.raises(InvalidInput) as from_media:
        parse_input("video", bad, MEDIA_FORMS)
    with pytest.raises(InvalidInput) as from_daemon:
        open_inputs(BlobStore(tmp_path / "blobs"), {"video": bad})
    assert (
        str(from_media.value)
        == str(from_daemon.value)
        == "video: unknown keys fps for a 'path' input " + ("(allowed: path, frame_start, frame_end, step)")
    )
