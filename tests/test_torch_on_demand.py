"""Torch only when a mode needs it: the daemon probes its devices in a child interpreter, so a daemon that serves
only pose jobs never imports torch; health still names the device and says whether torch is loaded."""

from __future__ import annotations

import time

from support.daemon_process import DaemonProcess

from daemon.devices import Device, DeviceUnavailable, probe_device, resolve_device


def wait_for_device(client, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    health = client.health()
    while health["device_status"] == "probing" and time.monotonic() < deadline:
        time.sleep(0.1)
        health = client.health()
    return health


def test_a_pose_only_daemon_never_imports_torch(sample_video):
    daemon = DaemonProcess(plugin=False).start()
    try:
        with daemon.client() as client:
            health = wait_for_device(client)
            assert health["device_status"] == "ready"
            assert health["device"]["kind"] == "cpu" and health["device"]["torch_version"], "probed with torch"
            assert health["torch_loaded"] is False
            spec = {"path": str(sample_video), "frame_end": 12}
            client.submit("pose-no-torch", "pose", {}, {"video": spec})
            job = client.wait("pose-no-torch", timeout=120)
            assert job["state"] == "succeeded", job["error"]
            assert client.health()["torch_loaded"] is False, "the pose job left torch out of the daemon"
    finally:
        daemon.cleanup()


def test_a_torch_mode_loads_torch_and_health_says_so():
    daemon = DaemonProcess().start()  # with the test runners: "torch_sum" loads torch
    try:
        with daemon.client() as client:
            wait_for_device(client)
            assert client.health()["torch_loaded"] is False
            client.submit("uses-torch", "torch_sum", {"count": 100}, {})
            job = client.wait("uses-torch", timeout=120)
            assert job["state"] == "succeeded", job["error"]
            assert client.result("uses-torch")[0]["sum"] == 4950
            assert client.health()["torch_loaded"] is True
    finally:
        daemon.cleanup()


def test_the_probe_answers_what_resolving_here_answers():
    probed = probe_device("auto")
    assert isinstance(probed, Device)
    here = resolve_device("auto")
    assert (probed.kind, probed.name, probed.dtype, probed.torch_version) == (
        here.kind,
        here.name,
        here.dtype,
        here.torch_version,
    )
    assert probed.onnx_providers == here.onnx_providers


def test_the_probe_refuses_a_missing_accelerator_by_name():
    try:
        probe_device("cuda")
    except DeviceUnavailable as exc:
        assert "CUDA was requested" in str(exc)
    else:
        assert resolve_device("cuda").kind == "cuda", "only a machine with a CUDA GPU gets here"
