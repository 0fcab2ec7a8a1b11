"""Requests that once broke the daemon or answered without naming the problem, replayed by
``tests/test_hostile.py::test_the_hostile_corpus`` against a live daemon.

To add one: append a :class:`Case` with the request as a client could send it and the answer expected. Values
written ``"{name}"`` are replaced before sending: ``{session}`` by a running live session of the sender,
``{video}`` by a real video file, ``{png_100000}`` by a PNG whose header claims 100000 x 100000 pixels.
Every case must be refused with ``code`` naming ``field``, fast, and leave the daemon serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    request: str
    content: dict[str, Any]
    code: str
    field: str | None
    found: str = ""
    """What it did before it was fixed."""


LONG_PATH = "/" + "a" * 100_000

CASES = [
    Case("jobs cursor past 64 bits", "jobs", {"before": 2**64 - 1}, "invalid_request", "before", "internal"),
    Case("jobs cursor negative", "jobs", {"before": -1}, "invalid_request", "before"),
    Case("job id with ..", "submit", {"job_id": "a..b", "mode": "count"}, "invalid_input", "job_id", "poisoned"),
    Case("job id with a newline", "submit", {"job_id": "ok\n", "mode": "count"}, "invalid_input", "job_id"),
    Case(
        "100k-character path",
        "submit",
        {"job_id": "long", "mode": "count", "inputs": {"image": {"path": LONG_PATH}}},
        "invalid_input",
        "inputs.image.path",
        "internal",
    ),
    Case(
        "path with a NUL byte",
        "submit",
        {"job_id": "nul", "mode": "count", "inputs": {"image": {"path": "/tmp/a\0b.png"}}},
        "invalid_input",
        "inputs.image.path",
    ),
    Case(
        "100k-character path in a sequence",
        "submit",
        {"job_id": "longs", "mode": "count", "inputs": {"image": {"paths": [LONG_PATH]}}},
        "invalid_input",
        "inputs.image.paths",
    ),
    Case(
        "image header claiming 100000 x 100000 pixels",
        "submit",
        {"job_id": "bomb", "mode": "pose", "inputs": {"video": {"path": "{png_100000}"}}},
        "invalid_input",
        "inputs.video",
        "an OpenCV assertion as internal",
    ),
    Case(
        "live source path of 100k characters",
        "live_start",
        {"mode": "count", "source": {"path": LONG_PATH}},
        "invalid_input",
        "source.path",
        "internal",
    ),
    Case(
        "live options not a map",
        "live_update",
        {"session_id": "{session}", "params": [1]},
        "invalid_input",
        "params",
        "internal",
    ),
    Case(
        "live wait of NaN seconds",
        "live_next",
        {"session_id": "{session}", "after_seq": 10**9, "wait_s": float("nan")},
        "invalid_request",
        "wait_s",
        "parked until the session ended",
    ),
    Case(
        "live sequence number true",
        "live_next",
        {"session_id": "{session}", "after_seq": True, "wait_s": 0},
        "invalid_request",
        "after_seq",
    ),
    Case("prune NaN days", "prune", {"older_than_days": float("nan")}, "invalid_request", "older_than_days", "ran"),
    Case("prune infinite days", "prune", {"older_than_days": float("inf")}, "invalid_request", "older_than_days"),
    Case(
        "submit params not a map", "submit", {"job_id": "p", "mode": "count", "params": [1]}, "invalid_input", "params"
    ),
]
