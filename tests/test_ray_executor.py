"""The Ray executor (``serve --executor ray``) on a real multi-node Ray cluster on this machine.

One cluster per module (a head without CPUs, standing in for the daemon's machine, and two workers with one
``test_gpu`` each standing in for a GPU), every node on 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
makes Ray use loopback). Jobs go through the protocol to a daemon in front of the cluster, and the same jobs
to a daemon with the local executor, on the same tiny models: the results are compared bit for bit. The
cluster-gone test has a one-node cluster of its own, since it shuts it down.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from support.daemon_process import REPO_ROOT, DaemonProcess
from support.tiny_onnx_faces import BUILDERS, install_tiny_models, write_test_manifest
from support.tiny_wan import build_tiny_wan_vace, manifest_text, write_tiny_manifest
from support.waiting import wait_for

from daemon.store import JobStore
from models.manifest import load_manifest
from models.skeleton import draw_openpose
from models.vace.runner import WAN_VACE_1_3B

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface")

FINAL = ("succeeded", "failed", "cancelled", "interrupted")
TOM_HANKS = Path(__import__("insightface").__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
RESOURCES = """
[count]
num_cpus = 0.5
resources = { test_gpu = 0.5 }
[pose]
num_cpus = 1
[face_swap]
num_cpus = 0.5
resources = { test_gpu = 0.5 }
[vace_pose]
num_cpus = 0.5
resources = { test_gpu = 1 }
"""
VACE_PARAMS = dict(prompt="a dancer", steps=2, width=32, height=16, seed=3, window_frames=9, chunk_overlap=5)


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def loopback_ray() -> Iterator[None]:
    """Ray on loopback only; one thread per computation, as Ray gives a one-CPU actor, so the local daemon
    computes in the same order and the results can be compared bit for bit."""
    saved = {name: os.environ.get(name) for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "OMP_NUM_THREADS")}
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def start_cluster(workers: int, port: int | None = None, **worker_args: Any) -> Any:
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        pytest.fail("ray is not installed: run scripts/setup.sh (it installs the ray extra)", pytrace=False)
    head_cpus = 0 if workers else 1
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "node_ip_address": "127.0.0.1",
            "num_cpus": head_cpus,
            "resources": {} if workers else {"test_gpu": 1},
            "include_dashboard": False,
            "object_store_memory": 100 * 2**20,
            **({"gcs_server_port": port} if port else {}),
        },
    )
    for _ in range(workers):
        add_worker(cluster, **worker_args)
    cluster.wait_for_nodes()
    return cluster


def add_worker(cluster: Any, **worker_args: Any) -> Any:
    args = {"num_cpus": 2, "resources": {"test_gpu": 1}, "object_store_memory": 100 * 2**20, **worker_args}
    return cluster.add_node(node_ip_address="127.0.0.1", **args)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    cluster = start_cluster(workers=2)
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(models folder, manifest) with the tiny Wan VACE pipeline and the tiny face-swap models."""
    base = tmp_path_factory.mktemp("ray-models")
    models_dir = base / "models"
    build_tiny_wan_vace(models_dir / WAN_VACE_1_3B.folder)
    install_tiny_models(models_dir, tuple(BUILDERS))
    vace, faces = base / "vace.toml", base / "faces.toml"
    write_tiny_manifest(vace, models_dir)
    write_test_manifest(faces, models_dir)
    face_names = set(load_manifest(faces))
    kept = [entry for entry in load_manifest(vace).values() if entry.name not in face_names]
    manifest = base / "manifest.toml"
    manifest.write_text(manifest_text(kept) + "\n" + faces.read_text(encoding="utf-8"), encoding="utf-8")
    return models_dir, manifest


def load_cluster_lines() -> Any:
    """``addon/bridge/cluster_status.py`` (the Daemon panel's cluster lines) without the add-on package, which needs
    bpy."""
    spec = importlib.util.spec_from_file_location(
        "vfx_cluster_status", REPO_ROOT / "addon" / "bridge" / "cluster_status.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cluster_lines


def model_args(models: tuple[Path, Path]) -> tuple[str, ...]:
    return ("--manifest", str(models[1]), "--models-dir", str(models[0]), "--device", "cpu")


def start_ray_daemon(cluster: Any, tmp_path_factory, *extra: str) -> DaemonProcess:
    resources = tmp_path_factory.mktemp("ray-resources") / "resources.toml"
    resources.write_text(RESOURCES, encoding="utf-8")
    proc = DaemonProcess(
        extra_args=("--executor", "ray", "--ray-address", cluster.address, "--ray-resources", str(resources), *extra)
    ).start()
    with proc.client() as c:
        wait_for(lambda: c.health()["executor"]["status"] == "connected", 60, "the daemon to connect to the cluster")
    return proc


@pytest.fixture(scope="module")
def ray_daemon(cluster, models, tmp_path_factory, sample_video) -> Iterator[DaemonProcess]:
    """Its shared drive is the sample media's folder: the sample video travels as a path, other inputs through
    the object store."""
    shared = ("--ray-shared-dir", str(sample_video.parent))
    proc = start_ray_daemon(cluster, tmp_path_factory, *model_args(models), *shared)
    yield proc
    proc.cleanup()


@pytest.fixture(scope="module")
def local_daemon(models) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(extra_args=model_args(models)).start()
    yield proc
    proc.cleanup()


@pytest.fixture
def rclient(ray_daemon):
    with ray_daemon.client(timeout=30.0) as c:
        yield c


def run_job(client, job_id: str, mode: str, params: dict, inputs: dict, timeout: float = 120.0) -> tuple[dict, list]:
    """Submit, follow the events until the job ends; (job, events)."""
    client.submit(job_id, mode, params, inputs, subscribe=True)
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += [e for e in client.poll_events(timeout=0.3) if e.get("job_id") == job_id]
        job = client.job(job_id)
        if job["state"] in FINAL:
            events += [e for e in client.poll_events(timeout=0.2) if e.get("job_id") == job_id]
            return job, events
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def frames_of(job: dict) -> np.ndarray:
    paths = sorted(Path(job["output_dir"], "frames").glob("*.png"))
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths])


def actors(client, mode: str | None = None) -> list[dict]:
    return [a for a in client.health()["executor"]["actors"] if mode is None or a["mode"] == mode]


def worker_ids(cluster: Any) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}


def same_results(ray_client, local_client, job_id: str, ray_job: dict, local_job: dict) -> None:
    assert ray_job["state"] == local_job["state"] == "succeeded", (ray_job["error"], local_job["error"])
    ray_summary, ray_arrays = ray_client.result(job_id)
    local_summary, local_arrays = local_client.result(job_id)
    assert ray_summary == local_summary
    assert sorted(ray_arrays) == sorted(local_arrays)
    for name in ray_arrays:
        np.testing.assert_array_equal(ray_arrays[name], local_arrays[name], err_msg=name)
    assert ray_job["frame_count"] == local_job["frame_count"]
    if ray_job["frame_count"]:
        np.testing.assert_array_equal(frames_of(ray_job), frames_of(local_job))
    layout = lambda job: sorted(str(p.relative_to(job["output_dir"])) for p in Path(job["output_dir"]).rglob("*"))  # noqa: E731
    assert layout(ray_job) == layout(local_job), "the same files in the same places"


# -- choosing the executor -------------------------------------------------------------------------------


def test_the_local_executor_stays_the_default_and_imports_nothing_of_ray(tmp_path):
    """A daemon started without --executor ray runs jobs locally, and no module of Ray is ever imported (the
    Ray executor's own module is importable without it too)."""
    script = f"""
import sys
from pathlib import Path
from daemon.app import Daemon, DaemonConfig
import daemon.ray_executor, daemon.ray_resources
daemon_ = Daemon(DaemonConfig(runtime_dir=Path({str(tmp_path / "run")!r}), data_dir=Path({str(tmp_path / "data")!r})))
daemon_.start()
print(daemon_.health()["executor"])
daemon_.stop()
print(sorted(name for name in sys.modules if name == "ray" or name.startswith("ray.")))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["{'kind': 'local'}", "[]"]


def test_the_panel_shows_nothing_more_for_the_local_executor():
    cluster_lines = load_cluster_lines()
    assert cluster_lines({"kind": "local"}) == [] and cluster_lines(None) == []


def test_ray_options_are_checked_at_start(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    proc = DaemonProcess(base=tmp_path / "d", extra_args=("--executor", "ray"))
    with pytest.raises(RuntimeError, match="--executor ray needs --ray-address"):
        proc.start(timeout=20)
    proc.cleanup()
    bad = tmp_path / "bad.toml"
    bad.write_text("[pose]\nnum_gpu = 1\n", encoding="utf-8")
    proc = DaemonProcess(
        base=tmp_path / "e", extra_args=("--executor", "ray", "--ray-address", "auto", "--ray-resources", str(bad))
    )
    with pytest.raises(RuntimeError, match=r"\[pose\] has unknown keys num_gpu"):
        proc.start(timeout=20)
    proc.cleanup()


def test_a_cluster_unreachable_at_start_is_reported_and_jobs_wait_until_it_is_up(tmp_path):
    """Nothing listens at the address: the daemon starts anyway, health and the panel give the reason, and a
    submitted job waits in the queue; once a cluster comes up there the job runs on it, once."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    (tmp_path / "d").mkdir()
    proc = DaemonProcess(
        base=tmp_path / "d", extra_args=("--executor", "ray", "--ray-address", address, "--ray-connect-timeout", "2")
    ).start()
    try:
        with proc.client() as c:
            executor = wait_for(lambda: (h := c.health()["executor"])["error"] and h, 30, "the connection to fail")
            assert executor["error"].startswith(f"could not connect to the Ray cluster at {address} within 2 s")
            assert "Jobs wait in the queue until the cluster is back." in load_cluster_lines()(executor)
            c.submit("early", "count", {"steps": 1}, {})
            time.sleep(3)
            assert c.job("early")["state"] == "queued" and c.health()["queue"]["depth"] == 1
            cluster = start_cluster(workers=0, port=port)
            try:
                job = wait_for(lambda: (j := c.job("early"))["state"] in FINAL and j, 60, "the job to run")
                assert (job["state"], job["attempts"]) == ("succeeded", 1)
                assert c.health()["executor"]["status"] == "connected"
            finally:
                cluster.shutdown()
    finally:
        proc.cleanup()


# -- jobs on the cluster -----------------------------------------------------------------------------------


def test_health_shows_the_nodes_their_resources_and_where_models_are_loaded(cluster, ray_daemon, rclient):
    executor = rclient.health()["executor"]
    assert executor["kind"] == "ray" and executor["status"] == "connected" and executor["error"] is None
    alive = {n["node_id"]: n for n in executor["nodes"] if n["alive"]}
    assert worker_ids(cluster) <= set(alive) and len(alive) == 3
    assert all(
        alive[w]["resources"]["test_gpu"] == 1 and alive[w]["resources"]["CPU"] == 2 for w in worker_ids(cluster)
    )
    assert executor["total"]["test_gpu"] == 2 and executor["total"]["CPU"] == 4
    assert 0 <= executor["free"]["test_gpu"] <= 2
    panel = load_cluster_lines()(executor)
    assert panel[0] == f"Ray cluster: 3 nodes, CPUs {executor['free']['CPU']:g}/4 free", panel
    text = subprocess.run(
        [sys.executable, "-m", "daemon", "health", "--connection-file", str(ray_daemon.connection_file)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    ).stdout
    assert f"ray cluster {cluster.address}: connected, 3 nodes" in text, text


def test_pose_jobs_run_on_a_worker_as_locally_and_reuse_the_loaded_model(
    cluster, ray_daemon, rclient, local_daemon, sample_video
):
    inputs = {"video": {"path": str(sample_video), "frame_start": 20, "frame_end": 26}}
    params = {"render_skeleton": True}
    ray_job, events = run_job(rclient, "pose-a", "pose", params, inputs)
    with local_daemon.client(timeout=30.0) as lclient:
        local_job, local_events = run_job(lclient, "pose-a", "pose", params, inputs)
        same_results(rclient, lclient, "pose-a", ray_job, local_job)

    # the events a client gets are those of a local job: states, progress with stages, fractions up to 1
    kinds = lambda evs: [(e["type"], e.get("state")) for e in evs if e["type"] == "state"]  # noqa: E731
    assert kinds(events) == kinds(local_events) == [("state", "running"), ("state", "succeeded")]
    progress = [e for e in events if e["type"] == "progress"]
    assert {"loading model", "starting"} <= {e["stage"] for e in progress}
    assert progress[-1]["fraction"] == pytest.approx(1.0)
    assert set(progress[0]) == set(next(e for e in local_events if e["type"] == "progress")), "same event keys"

    assert "job pose-a: input video by path on the shared drive" in ray_daemon.read_log()
    (pose,) = actors(rclient, "pose")
    assert pose["node_id"] in worker_ids(cluster), "the job ran on a worker, not on the daemon's node"
    assert (pose["loads"], pose["jobs"]) == (1, 1)
    second, _ = run_job(rclient, "pose-b", "pose", params, inputs)
    assert second["state"] == "succeeded"
    (again,) = actors(rclient, "pose")
    assert (again["pid"], again["loads"], again["jobs"]) == (pose["pid"], 1, 2), "the same actor, loaded once"
    loaded = rclient.health()["loaded_models"]
    assert [(m["mode"], m["node"], m["in_use"]) for m in loaded if m["mode"] == "pose"] == [
        ("pose", "127.0.0.1", False)
    ]


def skeleton_strip(count: int) -> np.ndarray:
    frames = []
    for i in range(count):
        keypoints = np.full((18, 2), np.nan, dtype=np.float32)
        keypoints[:9] = [[32, 8], [32, 14], [26, 14], [22, 22], [18, 16 + i], [38, 14], [42, 22], [44, 30], [28, 30]]
        frames.append(draw_openpose(np.zeros((48, 64, 3), np.uint8), keypoints))
    return np.stack(frames)


def test_vace_and_face_swap_jobs_give_the_local_executors_results(
    cluster, ray_daemon, rclient, local_daemon, sample_video, tmp_path
):
    """An uploaded array (the skeleton strip), a reference image and an image sequence cross to the worker
    through the object store."""
    capture = cv2.VideoCapture(str(sample_video))
    sequence = []
    for index in range(4):
        ok, frame = capture.read()
        assert ok
        sequence.append(str(tmp_path / f"frame{index}.png"))
        cv2.imwrite(sequence[-1], frame)
    capture.release()
    jobs = [
        ("vace-a", "vace_pose", VACE_PARAMS, {"reference": {"path": str(TOM_HANKS)}, "pose": skeleton_strip(5)}),
        (
            "swap-a",
            "face_swap",
            {"detect_every": 2},
            {
                "video": {"paths": sequence},
                "reference": {"path": str(TOM_HANKS)},
            },
        ),
    ]
    with local_daemon.client(timeout=30.0) as lclient:
        for job_id, mode, params, inputs in jobs:
            ray_job, events = run_job(rclient, job_id, mode, params, inputs)
            local_job, _ = run_job(lclient, job_id, mode, params, inputs)
            same_results(rclient, lclient, job_id, ray_job, local_job)
            assert any(e["type"] == "progress" and e["preview_jpeg"] for e in events), f"{mode} sends previews"
            assert actors(rclient, mode)[0]["node_id"] in worker_ids(cluster)
    log = ray_daemon.read_log()
    for line in ("vace-a: input pose", "vace-a: input reference", "swap-a: input video", "swap-a: input reference"):
        assert f"job {line} by object store" in log, line


# -- faults ------------------------------------------------------------------------------------------------


def running_actor(client, job_id: str) -> dict:
    return wait_for(
        lambda: (
            next((a for a in actors(client) if a["job_id"] == job_id and a["loaded"]), None)
            or next((a for a in actors(client) if a["job_id"] == job_id), None)
        ),
        30,
        f"job {job_id} to run on an actor",
    )


def test_cancel_stops_the_remote_work(rclient):
    # a runner that checks for cancel stops at its next step; its actor stays and takes the next job
    rclient.submit("cancel-a", "count", {"steps": 400, "step_s": 0.05}, {})
    wait_for(lambda: rclient.job("cancel-a")["fraction"] > 0, 30, "the job to make progress")
    actor = running_actor(rclient, "cancel-a")
    asked = time.monotonic()
    rclient.cancel("cancel-a")
    job = wait_for(lambda: (j := rclient.job("cancel-a"))["state"] in FINAL and j, 10, "the cancel")
    assert job["state"] == "cancelled" and time.monotonic() - asked < 5
    assert not Path(job["output_dir"]).exists() and not Path(job["output_dir"]).with_name("work").exists()
    after, _ = run_job(rclient, "cancel-b", "count", {"steps": 2}, {})
    assert after["state"] == "succeeded"
    assert any(a["pid"] == actor["pid"] and a["jobs"] >= 2 for a in actors(rclient, "count"))

    # a runner that ignores cancel has its actor ended: the remote process is gone
    rclient.submit("cancel-c", "count", {"steps": 400, "step_s": 0.05, "ignore_cancel": True}, {})
    wait_for(lambda: rclient.job("cancel-c")["fraction"] > 0, 30, "the job to make progress")
    stubborn = running_actor(rclient, "cancel-c")
    rclient.cancel("cancel-c")
    job = wait_for(lambda: (j := rclient.job("cancel-c"))["state"] in FINAL and j, 12, "the cancel")
    assert job["state"] == "cancelled" and not Path(job["output_dir"]).exists()
    wait_for(lambda: not _process_exists(stubborn["pid"]), 10, "the stubborn actor's process to end")
    assert stubborn["pid"] not in [a["pid"] for a in actors(rclient)]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_node_dying_mid_job_interrupts_the_job_with_nothing_half_written(cluster, rclient):
    rclient.submit("doomed", "count", {"steps": 400, "step_s": 0.05}, {})
    wait_for(lambda: rclient.job("doomed")["fraction"] > 0.01, 30, "frames to be written")
    actor = running_actor(rclient, "doomed")
    (node,) = [n for n in cluster.worker_nodes if n.node_id == actor["node_id"]]
    cluster.remove_node(node, allow_graceful=False)
    try:
        job = wait_for(lambda: (j := rclient.job("doomed"))["state"] in FINAL and j, 60, "the job to end")
        assert job["state"] == "interrupted", job
        assert "lost" in job["error"]["message"] and "retry it" in job["error"]["message"]
        assert job["attempts"] == 1
        folder = Path(job["output_dir"]).parent
        assert not (folder / "outputs").exists() and not (folder / "work").exists(), "nothing half written"
    finally:
        add_worker(cluster)
        cluster.wait_for_nodes()
    retried = rclient.retry("doomed")
    assert retried["state"] in ("queued", "running")
    rclient.cancel("doomed")  # the retry is accepted by the same rules as after a local crash


def test_four_clients_ten_jobs_each_none_lost_none_run_twice(ray_daemon):
    errors: list[BaseException] = []

    def client_jobs(n: int) -> None:
        try:
            with ray_daemon.client(timeout=30.0) as c:
                for i in range(10):
                    c.submit(f"many-{n}-{i}", "count", {"steps": 2, "step_s": 0.01}, {})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client_jobs, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [f"many-{n}-{i}" for n in range(4) for i in range(10)]
    with ray_daemon.client(timeout=30.0) as c:

        def all_ended() -> list[dict] | None:
            states = [c.job(j) for j in ids]
            return states if all(j["state"] in FINAL for j in states) else None

        jobs = wait_for(all_ended, 120, "40 jobs to end")
    assert [j["state"] for j in jobs] == ["succeeded"] * 40
    assert [j["attempts"] for j in jobs] == [1] * 40
    log = ray_daemon.read_log()
    assert all(log.count(f"job {j} started on node") == 1 for j in ids), "each job started once on the cluster"


def test_idle_actors_make_room_for_another_mode_and_are_released_on_request(ray_daemon, rclient, tmp_path):
    """Four count actors fill both workers' test GPUs; a face-swap job then ends the least recently used idle
    one to start; release-memory ends every idle actor."""
    rclient.release_memory()
    assert actors(rclient) == []
    ids = [f"fill-{i}" for i in range(4)]
    for job_id in ids:
        rclient.submit(job_id, "count", {"steps": 100, "step_s": 0.1}, {})
    wait_for(lambda: all(rclient.job(j)["state"] == "succeeded" for j in ids), 120, "4 count jobs")
    assert len(actors(rclient, "count")) == 4, "all four ran at once, one actor each"
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), cv2.imread(str(TOM_HANKS)))
    inputs = {"video": {"path": str(face)}, "reference": {"path": str(face)}}
    swap, _ = run_job(rclient, "swap-room", "face_swap", {}, inputs)
    assert swap["state"] == "succeeded", swap["error"]
    assert len(actors(rclient, "count")) == 3 and len(actors(rclient, "face_swap")) == 1
    assert ray_daemon.read_log().count("ending the idle count actor on 127.0.0.1 to make room for face_swap") == 1
    assert rclient.release_memory() == ["count", "face_swap"]
    assert actors(rclient) == []


def test_stopping_the_daemon_interrupts_remote_jobs_and_queues_the_waiting_one(ray_daemon, rclient):
    """Runs last on the module's daemon (it stops it). Four count actors fit the workers: four jobs run, the
    fifth waits for a worker; stopping the daemon stops the remote work: the four end interrupted (retry them),
    the fifth is queued for the next start."""
    ids = [f"stop-{i}" for i in range(5)]
    for job_id in ids:
        rclient.submit(job_id, "count", {"steps": 600, "step_s": 0.1}, {})
    wait_for(lambda: rclient.job("stop-4")["stage"] == "waiting for a worker", 60, "the fifth job to wait")
    wait_for(lambda: all(rclient.job(j)["fraction"] > 0 for j in ids[:4]), 30, "four jobs to run")
    pids = [a["pid"] for a in actors(rclient, "count")]
    assert ray_daemon.stop() == 0
    store = JobStore(ray_daemon.data_dir / "jobs.sqlite3")
    try:
        records = [store.get(j) for j in ids]
    finally:
        store.close()
    assert [(r.state, r.attempts) for r in records] == [("interrupted", 1)] * 4 + [("queued", 0)]
    assert records[0].error["message"] == "the daemon shut down while this job ran; retry it"
    wait_for(lambda: not any(_process_exists(pid) for pid in pids), 10, "the actors' processes to end")


def test_a_cluster_gone_is_reported_and_jobs_wait_in_the_queue(tmp_path_factory):
    """Shut the cluster down under the daemon (one node: room for two count actors): health says so; the two
    jobs that ran end interrupted, the one waiting for a worker goes back to the queue, new jobs queue, nothing
    is lost: a daemon started later on the same data runs the queued ones."""
    cluster = start_cluster(workers=0)
    address = cluster.address
    proc = start_ray_daemon(cluster, tmp_path_factory, "--ray-connect-timeout", "3", "--idle-unload", "1")
    try:
        with proc.client(timeout=30.0) as c:
            before, _ = run_job(c, "before", "count", {"steps": 2}, {})
            assert before["state"] == "succeeded"
            wait_for(lambda: actors(c) == [], 10, "the idle actor to end after --idle-unload 1")
            for job_id in ("ran-1", "ran-2", "waited"):
                c.submit(job_id, "count", {"steps": 600, "step_s": 0.1}, {})
            wait_for(lambda: c.job("waited")["stage"] == "waiting for a worker", 60, "the third job to wait")
            assert c.job("ran-1")["state"] == c.job("ran-2")["state"] == "running"
            cluster.shutdown()
            executor = wait_for(
                lambda: (h := c.health()["executor"])["status"] != "connected" and h["error"] and h,
                30,
                "health to report the cluster gone",
            )
            assert address in executor["error"], executor
            assert "nodes" not in executor, "no stale cluster view"
            panel = load_cluster_lines()(executor)
            assert panel[0] == f"Ray cluster {address}: {executor['status']}"
            assert panel[1:] == [executor["error"], "Jobs wait in the queue until the cluster is back."]
            for job_id in ("ran-1", "ran-2"):
                job = wait_for(lambda j=job_id: (v := c.job(j))["state"] in FINAL and v, 30, f"{job_id} to end")
                assert job["state"] == "interrupted" and job["error"]["message"].endswith("retry it"), job
            waited = c.job("waited")
            assert (waited["state"], waited["attempts"]) == ("queued", 0), "never started: queued again"
            c.submit("waits", "count", {"steps": 2}, {})
            time.sleep(6)  # two connection attempts
            assert c.job("waits")["state"] == "queued"
            assert c.health()["queue"]["depth"] == 2
            assert (
                "could not connect" in c.health()["executor"]["error"]
                or "stopped answering" in c.health()["executor"]["error"]
            )
        proc.stop()
        proc.extra_args = ["--plugin", "vfx_test_runners"]  # the same data folder, the local executor
        proc.start()
        with proc.client(timeout=30.0) as c:
            c.cancel("waited")  # ten minutes of counting: its place in the queue was what mattered
            job = wait_for(lambda: (j := c.job("waits"))["state"] in FINAL and j, 30, "the queued job to run")
            assert (job["state"], job["attempts"]) == ("succeeded", 1)
    finally:
        proc.cleanup()
        cluster.shutdown()
