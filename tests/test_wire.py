"""The wire format: signing, replay rejection, size limits and buffer descriptors, without sockets."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from shared import PROTOCOL_VERSION
from shared.errors import WireError
from shared.wire import DELIMITER, Limits, ReplayGuard, blob_id, pack, sign, unpack

KEY = b"k" * 64


def frames_of(*parts):
    return [bytes(memoryview(p)) if not isinstance(p, bytes) else p for p in parts]


def test_round_trip_keeps_type_ids_content_and_arrays():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    weights = np.linspace(0, 1, 7, dtype=np.float32)
    frames = frames_of(
        *pack(
            "ping",
            {"a": [1, 2]},
            key=KEY,
            session="s1",
            parent_id="p",
            arrays=[image, weights],
            routing_ids=[b"client"],
        )
    )
    msg = unpack(frames, key=KEY, guard=ReplayGuard())
    assert (msg.type, msg.content, msg.parent_id, msg.session, msg.routing_ids) == (
        "ping",
        {"a": [1, 2]},
        "p",
        "s1",
        [b"client"],
    )
    got_image, got_weights = msg.arrays()
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_weights, weights)


def test_non_contiguous_arrays_are_sent_correctly():
    array = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2]
    msg = unpack(frames_of(*pack("ping", {}, key=KEY, session="s", arrays=[array])), key=KEY, guard=None)
    np.testing.assert_array_equal(msg.arrays()[0], array)


def test_wrong_key_is_rejected():
    frames = frames_of(*pack("ping", {}, key=KEY, session="s"))
    with pytest.raises(WireError, match="signature"):
        unpack(frames, key=b"other", guard=None)


def test_unsigned_message_is_rejected():
    frames = frames_of(*pack("ping", {}, key=KEY, session="s"))
    frames[1] = b""
    with pytest.raises(WireError, match="signature"):
        unpack(frames, key=KEY, guard=None)


def test_tampered_content_is_rejected():
    frames = frames_of(*pack("ping", {"x": 1}, key=KEY, session="s"))
    frames[3] = msgpack.packb({"x": 2})
    with pytest.raises(WireError, match="signature"):
        unpack(frames, key=KEY, guard=None)


def test_replayed_message_is_rejected():
    guard = ReplayGuard()
    frames = frames_of(*pack("ping", {}, key=KEY, session="s"))
    unpack(frames, key=KEY, guard=guard)
    with pytest.raises(WireError, match="replay"):
        unpack(frames, key=KEY, guard=guard)


def test_message_outside_the_clock_window_is_rejected():
    guard = ReplayGuard(window_s=60)
    with pytest.raises(WireError, match="off this machine's clock"):
        guard.check("id", sent=1000.0, now=2000.0)


def test_replay_guard_forgets_old_ids_but_stays_bounded():
    guard = ReplayGuard(window_s=10, max_ids=100)
    for i in range(1000):
        guard.check(f"id{i}", sent=float(i), now=float(i))
    assert len(guard._seen) <= 100


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_truncated_messages_are_rejected(cut):
    frames = frames_of(*pack("ping", {}, key=KEY, session="s"))
    with pytest.raises(WireError):
        unpack(frames[:-cut] if cut < 3 else frames[:1], key=KEY, guard=None)


def test_message_without_delimiter_is_rejected():
    with pytest.raises(WireError, match="delimiter"):
        unpack([b"junk", b"more"], key=KEY, guard=None)


def test_oversized_content_is_rejected_before_decoding():
    limits = Limits(max_content_bytes=1000)
    frames = frames_of(*pack("ping", {"blob": b"x" * 5000}, key=KEY, session="s"))
    with pytest.raises(WireError, match="content exceeds"):
        unpack(frames, key=KEY, guard=None, limits=limits)


def test_oversized_buffer_is_rejected():
    limits = Limits(max_buffer_bytes=100)
    frames = frames_of(*pack("ping", {}, key=KEY, session="s", arrays=[np.zeros(1000, np.uint8)]))
    with pytest.raises(WireError, match="buffer of 1000 bytes"):
        unpack(frames, key=KEY, guard=None, limits=limits)


def test_too_many_buffers_are_rejected():
    limits = Limits(max_buffers=2)
    frames = frames_of(*pack("ping", {}, key=KEY, session="s", arrays=[np.zeros(1, np.uint8)] * 3))
    with pytest.raises(WireError, match="3 buffers"):
        unpack(frames, key=KEY, guard=None, limits=limits)


def _forge(header: dict, content: dict, buffers=()):
    header_b, content_b = msgpack.packb(header), msgpack.packb(content)
    return [DELIMITER, sign(KEY, header_b, content_b), header_b, content_b, *buffers]


def _header(**extra):
    import time

    return {"msg_id": "m", "type": "ping", "session": "s", "version": PROTOCOL_VERSION, "time": time.time(), **extra}


def test_disallowed_dtype_is_rejected_even_when_signed():
    frames = _forge(_header(buffers=[{"dtype": "object", "shape": [1]}]), {}, [b"\0" * 8])
    with pytest.raises(WireError, match="not allowed"):
        unpack(frames, key=KEY, guard=None)


def test_buffer_length_must_match_dtype_and_shape():
    frames = _forge(_header(buffers=[{"dtype": "float32", "shape": [4, 4]}]), {}, [b"\0" * 60])
    with pytest.raises(WireError, match="does not match"):
        unpack(frames, key=KEY, guard=None)


def test_negative_or_non_integer_shapes_are_rejected():
    for shape in ([-1], [1.5], "12", [True]):
        frames = _forge(_header(buffers=[{"dtype": "uint8", "shape": shape}]), {}, [b""])
        with pytest.raises(WireError, match="shape"):
            unpack(frames, key=KEY, guard=None)


def test_buffer_count_must_match_descriptors():
    frames = _forge(_header(buffers=[]), {}, [b"\0"])
    with pytest.raises(WireError, match="buffers"):
        unpack(frames, key=KEY, guard=None)


def test_wrong_protocol_version_names_the_fix():
    frames = _forge(_header(version=99), {})
    with pytest.raises(WireError, match="update the extension and the daemon together"):
        unpack(frames, key=KEY, guard=None)


def test_non_map_content_and_bad_header_fields_are_rejected():
    with pytest.raises(WireError, match="maps"):
        unpack(_forge(_header(), [1, 2]), key=KEY, guard=None)  # type: ignore[arg-type]
    with pytest.raises(WireError, match="msg_id"):
        unpack(_forge(_header(msg_id=5), {}), key=KEY, guard=None)


def test_msgpack_extension_types_are_refused():
    header_b = msgpack.packb(_header())
    content_b = msgpack.packb({"x": msgpack.ExtType(1, b"payload")})
    frames = [DELIMITER, sign(KEY, header_b, content_b), header_b, content_b]
    with pytest.raises(WireError, match="not valid msgpack"):
        unpack(frames, key=KEY, guard=None)


def test_deeply_nested_content_is_refused_cleanly():
    header_b = msgpack.packb(_header())
    content_b = b"\x81\xa1x" + b"\x91" * 5000 + b"\x90"  # {"x": [[[...5000 levels...]]]}
    frames = [DELIMITER, sign(KEY, header_b, content_b), header_b, content_b]
    with pytest.raises(WireError):
        unpack(frames, key=KEY, guard=None)


def test_blob_id_depends_on_bytes_dtype_and_shape():
    a = np.zeros((2, 3), np.uint8)
    assert blob_id(a) == blob_id(a.copy())
    assert blob_id(a) != blob_id(a.reshape(3, 2))
    assert blob_id(a) != blob_id(a.astype(np.int8).view(np.uint8) + 1)
    assert len(blob_id(a)) == 64


def test_an_invalid_input_names_its_field_path_and_is_its_own_wire_error():
    from shared.errors import InvalidInput, VfxError

    error = InvalidInput("steps", "must be 1 or more")
    assert isinstance(error, VfxError) and isinstance(error, ValueError), "caught as either"
    placed = error.under("params")
    assert placed.to_wire() == {
        "code": "invalid_input",
        "message": "steps: must be 1 or more",
        "detail": {"field": "params.steps"},
    }
    assert placed.field == "steps" and placed.message == "must be 1 or more"
    rooted = InvalidInput("params.frame_count", "the video has 5 frames")
    assert rooted.under("inputs").path == "params.frame_count", "a runner that named the section keeps it"
