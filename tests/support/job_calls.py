"""Calls to a test daemon as the job tests make them: the error a refused call raises, and waiting for a job's
state."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import pytest

from shared.errors import RemoteError


def remote_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> RemoteError:
    """The :class:`RemoteError` that ``call(*args, **kwargs)`` raises; the test fails if it raises none."""
    with pytest.raises(RemoteError) as err:
        call(*args, **kwargs)
    return err.value


def wait_state(client: Any, job_id: str, states: Collection[str], timeout: float = 30.0) -> dict[str, Any]:
    """The job's record once its state is one of ``states``, polled every 50 ms; AssertionError naming the state
    it stayed in after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job['state']}, expected {states}")
