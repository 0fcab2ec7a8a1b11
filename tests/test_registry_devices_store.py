"""The model registry's lifecycle, the device policy and the SQLite store, on the real objects."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from support.daemon_process import DaemonProcess
from support.vfx_test_runners import CountRunner

from daemon.devices import Device, DeviceUnavailable, device_memory, installed, pick_onnx_providers, resolve_device
from daemon.registry import ModelRegistry, read_memory
from daemon.store import JobRecord, JobStore
from shared.errors import VfxError

REPO_ROOT = Path(__file__).resolve().parents[1]


class OtherRunner(CountRunner):
    mode = "other"


class NeedsPackageRunner(CountRunner):
    mode = "needs_package"
    python_packages = ("no_such_package_for_vfx_tests",)


def make_registry(tmp_path: Path, **kwargs) -> ModelRegistry:
    runners = {"count": CountRunner, "other": OtherRunner, "needs_package": NeedsPackageRunner}
    return ModelRegistry(runners, device=lambda: resolve_device("cpu"), manifest={}, models_dir=tmp_path, **kwargs)


def test_runners_load_lazily_and_unload_when_idle(tmp_path):
    registry = make_registry(tmp_path, idle_unload_s=60)
    assert registry.loaded() == []
    with registry.use("count") as runner:
        assert runner.loads == 1
    assert [m["mode"] for m in registry.loaded()] == ["count"]
    assert registry.sweep(now=time.time() + 30) == []
    assert registry.sweep(now=time.time() + 61) == ["count"]
    assert registry.loaded() == []


def test_a_runner_in_use_is_never_unloaded(tmp_path):
    registry = make_registry(tmp_path, idle_unload_s=0)
    with registry.use("count"):
        assert registry.release() == []
        assert registry.sweep(now=time.time() + 1000) == []
    assert registry.release() == ["count"]


def test_memory_pressure_unloads_least_recently_used_first(tmp_path):
    registry = make_registry(tmp_path, min_available_fraction=2.0)  # always "under pressure"
    with registry.use("count"):
        pass
    with registry.use("other"):
        assert [m["mode"] for m in registry.loaded()] == ["other"], "loading 'other' pushed out 'count'"


def test_memory_pressure_on_a_gpu_counts_its_own_memory_and_stops_once_relieved(tmp_path):
    asked: list[str] = []

    def gpu_memory(kind: str) -> dict[str, tuple[int, int]]:
        asked.append(kind)
        # Plenty of system memory; the GPU has 5% free with both runners loaded, 60% once one is unloaded.
        free = 5 if len(registry.loaded()) == 2 else 60
        return {"system memory": (100, 90), f"{kind} memory": (100, free)}

    cuda = Device(kind="cuda", name="a GPU described, not used", dtype="float16")
    registry = ModelRegistry(
        {"count": CountRunner, "other": OtherRunner},
        device=lambda: cuda,
        manifest={},
        models_dir=tmp_path,
        memory=gpu_memory,
    )
    with registry.use("count"):
        pass
    assert asked == [], "nothing loaded yet: memory is not even read"
    with registry.use("other"):
        pass
    assert asked == ["cuda"], "the device's kind chooses which memories are read"
    assert [m["mode"] for m in registry.loaded()] == ["count", "other"]
    assert registry.relieve_memory_pressure() == ["count"], "least recently used first, then relieved"
    assert [m["mode"] for m in registry.loaded()] == ["other"]
    assert registry.relieve_memory_pressure() == [], "60% free is enough"


def test_system_memory_pressure_still_unloads_on_the_cpu(tmp_path):
    asked: list[str] = []

    def short_system_memory(kind: str) -> dict[str, tuple[int, int]]:
        asked.append(kind)
        return {"system memory": (100, 9)}

    registry = make_registry(tmp_path, memory=short_system_memory)
    with registry.use("count"):
        pass
    assert registry.relieve_memory_pressure(keep="count") == [], "the runner about to be used is kept"
    assert registry.relieve_memory_pressure() == ["count"] and asked == ["cpu"]


def test_device_memory_is_read_only_where_torch_already_runs():
    assert set(read_memory("cpu")) == {"system memory"}
    assert set(read_memory("cuda")) == {"system memory", "cuda memory"}
    assert device_memory("cpu") == (None, None)
    check = (
        "import sys; from daemon.devices import device_memory; "
        "print(device_memory('cuda'), device_memory('mps'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "(None, None) (None, None) False", "torch is not imported for a memory reading"
    resolve_device("cpu")  # torch imported, but this machine has no CUDA GPU and no MPS device
    assert device_memory("cuda") == (None, None) and device_memory("mps") == (None, None)


def test_readiness_names_missing_packages_and_the_fix(tmp_path):
    registry = make_registry(tmp_path)
    state = registry.readiness("needs_package")
    assert state["ready"] is False
    assert state["missing"] == ["python package no_such_package_for_vfx_tests"]
    assert "pip install no_such_package_for_vfx_tests" in state["fix"][0]
    with pytest.raises(VfxError) as err:
        registry.check_ready("needs_package")
    assert err.value.code == "mode_unavailable"


def test_auto_device_without_an_accelerator_is_the_cpu_in_fp32():
    device = resolve_device("auto")
    assert device.kind == "cpu" and device.dtype == "float32" and device.total_memory > 0


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_asking_for_a_missing_accelerator_is_a_clear_error(kind):
    with pytest.raises(DeviceUnavailable, match=f"(?i){kind} was requested"):
        resolve_device(kind)


def test_unknown_device_names_the_choices():
    with pytest.raises(DeviceUnavailable, match="auto, cuda, mps, cpu"):
        resolve_device("tpu")


def stand_in_torch(cuda: bool = False, bf16: bool = False, mps: bool = False) -> types.ModuleType:
    """A stand-in for torch reporting which accelerators it sees. Only for the device policy's choice: no CUDA
    GPU and no Apple MPS device exist on the machines that run these tests, so real torch cannot answer yes."""
    torch = types.ModuleType("torch")
    torch.__version__ = "0.0-stand-in"
    torch.cuda = types.SimpleNamespace(
        is_available=lambda: cuda,
        is_bf16_supported=lambda: bf16,
        get_device_name=lambda index: "Stand-in GPU",
        mem_get_info=lambda: (6 * 2**30, 8 * 2**30),  # (free, total) bytes, as torch answers
    )
    torch.backends = types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: mps))
    return torch


@pytest.mark.parametrize(
    ("sees", "requested", "kind", "dtype"),
    [
        ({}, "auto", "cpu", "float32"),  # whatever this machine has
        ({"cuda": True, "bf16": True}, "auto", "cuda", "bfloat16"),  # bf16 where the GPU has it
        ({"cuda": True, "bf16": False}, "auto", "cuda", "float16"),  # fp16 on older GPUs
        ({"mps": True}, "auto", "mps", "float16"),
        ({"cuda": True, "bf16": True, "mps": True}, "auto", "cuda", "bfloat16"),  # CUDA before MPS
        ({"cuda": True, "bf16": True, "mps": True}, "mps", "mps", "float16"),  # an explicit choice is kept
        ({"cuda": True, "bf16": True, "mps": True}, "cpu", "cpu", "float32"),
    ],
)
def test_auto_picks_cuda_then_mps_then_the_cpu_with_the_documented_dtype(monkeypatch, sees, requested, kind, dtype):
    monkeypatch.setitem(sys.modules, "torch", stand_in_torch(**sees))
    device = resolve_device(requested)
    assert (device.kind, device.dtype, device.requested) == (kind, dtype, requested)
    assert device.torch_version == "0.0-stand-in"
    if kind == "cuda":
        assert device.name == "Stand-in GPU" and (device.total_memory, device.free_memory) == (8 * 2**30, 6 * 2**30)
    if kind == "mps":
        assert any("PYTORCH_ENABLE_MPS_FALLBACK" in note for note in device.notes)


@pytest.mark.parametrize(("sees", "requested"), [({"mps": True}, "cuda"), ({"cuda": True, "bf16": True}, "mps")])
def test_an_explicit_device_torch_does_not_see_is_refused_naming_the_option(monkeypatch, sees, requested):
    monkeypatch.setitem(sys.modules, "torch", stand_in_torch(**sees))
    with pytest.raises(DeviceUnavailable) as err:
        resolve_device(requested)
    assert f"--device {requested}" in err.value.message, "names the option that asked for it"
    assert "use --device auto or --device cpu" in err.value.message, "names the fix"


def test_onnx_providers_follow_the_device():
    available = ["CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert pick_onnx_providers("cuda", available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_onnx_providers("mps", available) == ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert pick_onnx_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_daemon_asked_for_cuda_here_fails_fast_with_the_reason():
    proc = DaemonProcess(extra_args=("--device", "cuda"))
    try:
        with pytest.raises(RuntimeError):
            proc.start(timeout=30)
        log = proc.read_log()
        assert "error: cuda was requested (--device cuda) but torch is not installed" in log or (
            "error: CUDA was requested (--device cuda)" in log
        )
        assert "Traceback" not in log
    finally:
        proc.cleanup()


def record(job_id: str) -> JobRecord:
    now = time.time()
    return JobRecord(
        job_id=job_id,
        mode="count",
        state="queued",
        client="c",
        params={},
        inputs={},
        fingerprint="f",
        created_at=now,
        updated_at=now,
    )


def test_store_is_wal_and_survives_reopening(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.insert(record("a"))
    store.close()
    reopened = JobStore(tmp_path / "jobs.sqlite3")
    assert reopened.get("a").state == "queued"
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reopened.integrity_ok()


def test_only_one_thread_moves_a_job_out_of_a_state(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for i in range(50):
        store.insert(record(f"j{i}"))
    winners: list[tuple[str, str]] = []
    lock = threading.Lock()

    def contend(name: str, target: str) -> None:
        for i in range(50):
            if store.update(f"j{i}", expect=("queued",), state=target) is not None:
                with lock:
                    winners.append((f"j{i}", name))

    threads = [threading.Thread(target=contend, args=(f"t{n}", s)) for n, s in enumerate(["running", "cancelled"] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(w[0] for w in winners) == sorted(f"j{i}" for i in range(50)), "each job moved exactly once"
    assert store.count("queued") == 0


def test_running_jobs_become_interrupted_on_recovery(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.insert(record("r"))
    store.update("r", state="running")
    assert store.mark_running_interrupted() == ["r"]
    stored = store.get("r")
    assert stored.state == "interrupted" and stored.error["code"] == "interrupted"


def test_a_package_another_thread_is_importing_counts_as_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """While OpenCV imports (on a job's thread), ``sys.modules["cv2"]`` is briefly a module without a spec, and
    ``importlib.util.find_spec`` raises ValueError; a pose job submitted then failed with "cv2.__spec__ is None"."""
    half_imported = types.ModuleType("half_imported_package")
    half_imported.__spec__ = None
    monkeypatch.setitem(sys.modules, "half_imported_package", half_imported)
    assert installed("half_imported_package")
    assert installed("json") and not installed("no_such_package_here")
