"""``python -m daemon``: serve, and talk to a running daemon from a terminal.

Every client command prints readable text, or JSON with ``--json``; failures print one line naming the
problem and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared import PROTOCOL_VERSION, __version__
from shared.client import Client, CurveKeys
from shared.connection import CONNECTION_FILE_NAME, default_data_dir, default_log_dir, default_runtime_dir
from shared.errors import VfxError
from shared.messages import FINAL_STATES

from .devices import DEVICE_CHOICES


def _number_from(low: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (or equal to it when ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not ((value >= low) if inclusive else (value > low)) or value == float("inf"):  # NaN fails both
            wanted = f"of {low:g} or more" if inclusive else f"above {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number {wanted}")
        return value

    return parse


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime-dir", type=Path, default=None, help="where the daemon's connection file is")
    p.add_argument("--connection-file", type=Path, default=None, help="the connection file itself")
    p.add_argument("--key-file", type=Path, default=None, help="client CURVE key file (encrypted daemons)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfx-mocap", description="VFX Motion Capture inference daemon")
    parser.add_argument("--version", action="version", version=f"vfx-mocap {__version__} (protocol {PROTOCOL_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--runtime-dir", type=Path, default=None, help="sockets and connection file (0700)")
    serve.add_argument("--data-dir", type=Path, default=None, help="job database, job folders, models")
    serve.add_argument("--models-dir", type=Path, default=None, help="weights (default: DATA_DIR/models)")
    serve.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="daemon.log (default: the platform's log folder, or DATA_DIR/logs when --data-dir is given)",
    )
    serve.add_argument(
        "--listen",
        default=None,
        help="endpoint, e.g. tcp://127.0.0.1:5555; beyond loopback needs --authorized-keys",
    )
    serve.add_argument(
        "--advertise",
        default=None,
        metavar="HOST",
        help="host name or address clients use to reach a TCP --listen address (default: this machine's name "
        "when listening on 0.0.0.0)",
    )
    serve.add_argument("--curve", action="store_true", help="encrypt even on loopback TCP")
    serve.add_argument("--authorized-keys", type=Path, default=None, help="allowed client CURVE public keys")
    serve.add_argument(
        "--admin-keys",
        type=Path,
        default=None,
        help="CURVE public keys of operators: also allowed in, and may stop, prune, release memory, see all jobs",
    )
    serve.add_argument(
        "--allow-path",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose files remote clients may use as inputs (repeatable; default: none)",
    )
    serve.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    serve.add_argument("--idle-unload", type=float, default=600.0, help="unload models idle this many seconds")
    serve.add_argument("--max-queued", type=int, default=256, help="queued jobs at most")
    serve.add_argument("--max-queued-per-client", type=int, default=64, help="queued jobs per client at most")
    serve.add_argument("--max-live-sessions", type=int, default=2, help="live sessions per client at most")
    serve.add_argument(
        "--max-live-sessions-total", type=int, default=4, help="live sessions of all clients together at most"
    )
    serve.add_argument("--live-ttl", type=float, default=10.0, help="stop live sessions not polled this long")
    serve.add_argument(
        "--max-requests-per-second",
        type=_number_from(0, inclusive=False),
        default=2000.0,
        help="requests per client a second at most, beyond its burst (refused with limit_exceeded)",
    )
    serve.add_argument(
        "--request-burst",
        type=_number_from(1, inclusive=True),
        default=4000.0,
        help="requests a quiet client may send at once",
    )
    serve.add_argument("--plugin", action="append", default=[], help="module offering extra RUNNERS")
    serve.add_argument("--manifest", type=Path, default=None, help="another weight manifest (a mirror)")
    serve.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where jobs run: this machine (default) or a Ray cluster (--ray-address)",
    )
    serve.add_argument("--ray-address", default=None, metavar="HOST:PORT|auto", help="the Ray cluster's head")
    serve.add_argument("--ray-resources", type=Path, default=None, help="TOML: what each mode's actor asks for")
    serve.add_argument(
        "--ray-shared-dir", type=Path, default=None, help="a folder at the same path on every machine of the cluster"
    )
    serve.add_argument(
        "--ray-models-dir", type=Path, default=None, help="weights on the workers (default: the daemon's models dir)"
    )
    serve.add_argument(
        "--ray-connect-timeout", type=float, default=30.0, help="seconds to wait for the cluster at each try"
    )
    serve.add_argument("--log-level", default="INFO")

    for name, text in (
        ("health", "daemon, device and mode status"),
        ("release-memory", "unload every idle model"),
    ):
        _client_args(sub.add_parser(name, help=text))
    stop = sub.add_parser("stop", help="stop the daemon gracefully (refused while jobs run, unless --force)")
    _client_args(stop)
    stop.add_argument("--when-idle", action="store_true", help="once no job is queued or running")
    stop.add_argument("--force", action="store_true", help="stop now even if jobs run (they become interrupted)")
    modes = sub.add_parser("modes", help="the modes, or one mode's parameters and inputs")
    _client_args(modes)
    modes.add_argument("mode", nargs="?", default=None)
    jobs = sub.add_parser("jobs", help="job history, newest first")
    _client_args(jobs)
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--before", type=int, default=None, help="cursor from the previous page")

    prune = sub.add_parser("prune", help="delete finished jobs older than some days, with their files")
    _client_args(prune)
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    submit = sub.add_parser("submit", help="submit a job")
    _client_args(submit)
    submit.add_argument("mode")
    submit.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a media input (a video, an image, or a folder of images)",
    )
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter")
    submit.add_argument("--job-id", default=None, help="your own job id (resubmitting it is idempotent)")
    submit.add_argument("--wait", action="store_true", help="watch until the job ends")

    for name, text in (
        ("watch", "follow a job's progress"),
        ("cancel", "cancel a job"),
        ("retry", "run a failed, cancelled or interrupted job again"),
        ("result", "a finished job's summary and arrays"),
    ):
        p = sub.add_parser(name, help=text)
        _client_args(p)
        p.add_argument("job_id")

    fetch = sub.add_parser("fetch-models", help="download and verify a mode's weights")
    fetch.add_argument("mode")
    fetch.add_argument("--models-dir", type=Path, default=None, help="default: DATA_DIR/models")
    fetch.add_argument("--manifest", type=Path, default=None, help="another manifest (an internal mirror)")
    fetch.add_argument("--json", action="store_true", help="print the verified files as JSON (progress on stderr)")
    fetch.add_argument(
        "--hub-endpoint",
        default=None,
        help="Hugging Face Hub (or mirror) for [[snapshot]] entries (default: $HF_ENDPOINT, else https://huggingface.co)",
    )

    keygen = sub.add_parser("keygen", help="create a CURVE key pair for a remote client")
    keygen.add_argument("key_file", type=Path)
    return parser


def _connect(args: argparse.Namespace) -> Client:
    path = args.connection_file or (args.runtime_dir or default_runtime_dir()) / CONNECTION_FILE_NAME
    keys = CurveKeys.load(args.key_file) if args.key_file else None
    return Client.from_file(path, timeout=args.timeout, curve_keys=keys)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def _inputs_text(inputs: dict[str, Any]) -> str:
    """``video=clip.mp4 reference=face.png``: each input by its file name (or how many images, or an array)."""
    parts = []
    for name, spec in sorted((inputs or {}).items()):
        if isinstance(spec, dict) and spec.get("path"):
            parts.append(f"{name}={Path(str(spec['path'])).name}")
        elif isinstance(spec, dict) and spec.get("paths"):
            parts.append(f"{name}={len(spec['paths'])} images")
        else:
            parts.append(f"{name}=(sent)")
    return " ".join(parts)


def _job_line(job: dict[str, Any]) -> str:
    """One job: id, mode, state, progress, stage; when it was made, how long it ran, what it was given."""
    line = f"{job['job_id']:<36} {job['mode']:<12} {job['state']:<11} {job['fraction']:6.1%}  {job['stage']}"
    created = job.get("created_at")
    if isinstance(created, int | float):
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
        started, finished = job.get("started_at"), job.get("finished_at")
        if isinstance(started, int | float):
            ran = (finished if isinstance(finished, int | float) else time.time()) - started
            made += f", {'ran' if finished else 'running for'} {_duration(ran)}"
        line += f"\n    {made}; inputs: {_inputs_text(job.get('inputs') or {}) or 'none'}"
    if job.get("error"):
        line += f"\n    error: {job['error']['message']}"
    return line


def _prune_text(pruned: dict[str, Any], dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {len(pruned['removed'])} job(s), {pruned['freed_bytes'] / 1e6:.1f} MB"]
    lines += [f"  {job_id}" for job_id in pruned["removed"]] if dry_run else []
    kept = pruned.get("kept_for_blend_files", {})
    if kept:
        lines.append(f"kept {len(kept)} job(s) whose results saved .blend files use (see docs/blender.md):")
        lines += [f"  {job_id}: {', '.join(blends)}" for job_id, blends in sorted(kept.items())]
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _input_spec(text: str) -> tuple[str, dict[str, Any]]:
    name, sep, value = text.partition("=")
    if not sep:
        raise VfxError(f"--input {text!r}: write NAME=PATH, e.g. --input video=/path/clip.mp4")
    path = Path(value).expanduser().resolve()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr"))
        return name, {"paths": [str(p) for p in images]}
    return name, {"path": str(path)}


def _frames_in(inputs: dict[str, Any]) -> int | None:
    """How many frames the job's first video input has (file probed with OpenCV), or None when not known."""
    for spec in inputs.values():
        if not isinstance(spec, dict):
            continue
        if spec.get("paths"):
            return len(spec["paths"])
        path = spec.get("path")
        if path and Path(str(path)).suffix.lower() not in (".png", ".jpg", ".jpeg", ".exr"):
            import cv2

            capture = cv2.VideoCapture(str(path))
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            start, end = int(spec.get("frame_start") or 0), spec.get("frame_end")
            return max(0, (int(end) if end is not None else count) - start) or None
    return None


def progress_line(fraction: float, stage: str, eta_s: float | None, total: int | None, elapsed_s: float) -> str:
    """``[#####.....]  42.0%  21/50 frames  3.1 frames/s  ETA 9 s  tracking``: the bar ``watch`` redraws."""
    bar = "#" * int(fraction * 30) + "." * (30 - int(fraction * 30))
    text = f"[{bar}] {fraction:6.1%}"
    if total:
        done = round(fraction * total)
        text += f"  {done}/{total} frames"
        if done and elapsed_s > 0:
            text += f"  {done / elapsed_s:.1f} frames/s"
    if eta_s is not None:
        text += f"  ETA {_duration(eta_s)}"
    return f"{text}  {stage}"


def _finished_text(job: dict[str, Any]) -> str:
    """After a job's line: its warnings and, when it succeeded, where its result is."""
    warnings = (job.get("summary") or {}).get("warnings") or []
    text = "".join(f"\nwarning: {w}" for w in warnings)
    return text + (f"\noutput: {job['output_dir']}" if job["state"] == "succeeded" else "")


def _watch(client: Client, args: argparse.Namespace, job_id: str) -> dict[str, Any]:
    job = client.subscribe(job_id)
    total = _frames_in(job.get("inputs") or {}) if not args.json else None
    started = time.monotonic()
    width = 0
    while job["state"] not in FINAL_STATES:
        for event in client.poll_events(timeout=1.0):
            if args.json:
                event = {k: v for k, v in event.items() if k != "preview_jpeg" and k != "job"}
                print(json.dumps(event, default=str), flush=True)
            elif event.get("type") == "progress":
                line = progress_line(
                    event["fraction"], event["stage"], event.get("eta_s"), total, time.monotonic() - started
                )
                print(f"\r{line:<{width}}", end="", flush=True)
                width = max(width, len(line))
        job = client.job(job_id)
    if not args.json and width:
        print()
    return job


def _executor_line(executor: dict[str, Any] | None) -> str:
    """For a daemon in front of a Ray cluster: the cluster's state, its live nodes, or its error."""
    if not executor or executor.get("kind") != "ray":
        return ""
    line = f"\nray cluster {executor['address']}: {executor['status']}"
    if executor["status"] == "connected":
        return line + f", {sum(1 for n in executor.get('nodes', []) if n['alive'])} nodes"
    return line + (f" ({executor['error']})" if executor.get("error") else "")


def _modes_text(health: dict[str, Any], mode: str | None) -> str:
    """Every mode and whether it is ready; or one mode's description, parameters and inputs."""
    modes = health["modes"]
    if mode is None:
        return "\n".join(
            f"{name:<18} {'ready' if s['ready'] else 'not ready: ' + '; '.join(s['missing'])}"
            for name, s in sorted(modes.items())
        )
    if mode not in modes:
        raise VfxError(f"unknown mode {mode!r}; the modes are: {', '.join(sorted(modes))}")
    info = modes[mode]
    lines = [f"{mode}: {info.get('description', '')}", "parameters (--param NAME=VALUE):"]
    for p in info.get("params", []):
        limits = f" one of {', '.join(map(str, p['choices']))}" if p.get("choices") else ""
        if p.get("minimum") is not None or p.get("maximum") is not None:
            limits += f" {p.get('minimum', '')}..{p.get('maximum', '')}"
        needed = "required" if p.get("required") else f"default {json.dumps(p.get('default'))}"
        lines.append(f"  {p['name']:<22} {p['kind']:<7}{limits}; {needed}. {p.get('help', '')}")
    lines.append("inputs (--input NAME=PATH):")
    for m in info.get("inputs", []):
        lines.append(f"  {m['name']:<22} {m['kind']:<7} {'required' if m['required'] else 'optional'}. {m['help']}")
    if not info["ready"]:
        lines.append(f"not ready: {'; '.join(info['missing'])}. Fix: {'; '.join(info['fix'])}")
    return "\n".join(lines)


def _client_command(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        if args.command == "health":
            h = client.health()
            device = h["device"] or {}
            modes = "\n".join(
                f"  {name:<12} {'ready' if s['ready'] else 'missing: ' + '; '.join(s['missing'])}"
                for name, s in h["modes"].items()
            )
            _print(
                args,
                h,
                f"daemon {h['version']} (protocol {h['protocol']}), pid {h['pid']}, up "
                f"{h['uptime_s']:.0f} s\nendpoint {h['endpoint']}\ndevice {device.get('kind', '?')} "
                f"({device.get('name', h['device_status'])})\nqueue {h['queue']['depth']} waiting, running "
                f"{', '.join(h['queue']['running']) or 'nothing'}{_executor_line(h.get('executor'))}\nmodes:\n{modes}",
            )
        elif args.command == "modes":
            h = client.health()
            data = h["modes"] if args.mode is None else h["modes"].get(args.mode)
            _print(args, data, _modes_text(h, args.mode))
        elif args.command == "stop":
            running = client.health()["queue"]["running"]
            if running and not (args.when_idle or args.force):
                print(
                    f"error: {len(running)} job(s) are running and would be interrupted: {', '.join(running)}. Stop "
                    "with --when-idle to let them finish first, or --force to interrupt them (retry them later)",
                    file=sys.stderr,
                )
                return 1
            client.shutdown(when="idle" if args.when_idle else "now")
            text = "daemon stopping once its jobs are done" if args.when_idle else "daemon stopping"
            _print(args, {"stopped": not args.when_idle, "when_idle": args.when_idle}, text)
        elif args.command == "release-memory":
            released = client.release_memory()
            _print(args, {"released": released}, f"released: {', '.join(released) or 'nothing was loaded'}")
        elif args.command == "prune":
            pruned = client.prune(args.older_than, dry_run=args.dry_run)
            _print(args, pruned, _prune_text(pruned, args.dry_run))
        elif args.command == "jobs":
            jobs, cursor = client.jobs_page(limit=args.limit, before=args.before)
            text = "\n".join(_job_line(j) for j in jobs) or "no jobs yet"
            if cursor is not None:
                text += f"\nolder jobs: add --before {cursor}"
            _print(args, {"jobs": jobs, "next_before": cursor}, text)
        elif args.command == "submit":
            inputs = dict(_input_spec(t) for t in args.input)
            params = {k: _parse_value(v) for k, _, v in (p.partition("=") for p in args.param)}
            job_id = args.job_id or uuid.uuid4().hex
            job = client.submit(job_id, args.mode, params, inputs)
            if args.wait:
                job = _watch(client, args, job_id)
            _print(args, job, _job_line(job) + _finished_text(job))
            return 0 if job["state"] in ("queued", "running", "succeeded") else 1
        elif args.command == "watch":
            job = _watch(client, args, args.job_id)
            _print(args, job, _job_line(job) + _finished_text(job))
        elif args.command == "cancel":
            job = client.cancel(args.job_id)
            _print(args, job, _job_line(job))
        elif args.command == "retry":
            job = client.retry(args.job_id)
            _print(args, job, _job_line(job))
        elif args.command == "result":
            summary, arrays = client.result(args.job_id)
            shapes = {k: [a.dtype.name, list(a.shape)] for k, a in arrays.items()}
            _print(
                args,
                {"summary": summary, "arrays": shapes},
                json.dumps(summary, indent=2, default=str)
                + "\narrays: "
                + ", ".join(f"{k} {v[0]}{tuple(v[1])}" for k, v in shapes.items()),
            )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .app import DaemonConfig, run
    from .engine import EngineLimits
    from .live import LiveLimits
    from .server import ServerLimits

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = DaemonConfig(
        runtime_dir=(args.runtime_dir or default_runtime_dir()).resolve(),
        data_dir=(args.data_dir or default_data_dir()).resolve(),
        models_dir=args.models_dir.resolve() if args.models_dir else None,
        log_dir=(args.log_dir or default_log_dir(args.data_dir)).resolve(),
        listen=args.listen,
        advertise=args.advertise,
        curve=args.curve,
        authorized_keys=args.authorized_keys,
        admin_keys=args.admin_keys,
        allowed_paths=args.allow_path,
        device=args.device,
        idle_unload_s=args.idle_unload,
        plugins=args.plugin,
        manifest=args.manifest,
        executor=args.executor,
        ray_address=args.ray_address,
        ray_resources=args.ray_resources,
        ray_shared_dir=args.ray_shared_dir.resolve() if args.ray_shared_dir else None,
        ray_models_dir=args.ray_models_dir,
        ray_connect_timeout_s=args.ray_connect_timeout,
        engine_limits=EngineLimits(max_queued=args.max_queued, max_queued_per_client=args.max_queued_per_client),
        live_limits=LiveLimits(
            max_sessions_per_client=args.max_live_sessions,
            max_sessions=args.max_live_sessions_total,
            ttl_s=args.live_ttl,
        ),
        server_limits=ServerLimits(requests_per_second=args.max_requests_per_second, request_burst=args.request_burst),
    )
    return run(config)


def _fetch(args: argparse.Namespace) -> int:
    from models.catalog import BUILTIN_RUNNERS
    from models.manifest import MANIFEST_PATH, load_manifest

    from .fetch import fetch_mode, hub_endpoint

    manifest = load_manifest(args.manifest or MANIFEST_PATH)
    known = set(BUILTIN_RUNNERS) | {mode for entry in manifest.values() for mode in entry.modes}
    if args.mode not in known:
        print(f"unknown mode {args.mode!r}; the modes are: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    models_dir = args.models_dir or default_data_dir() / "models"
    fetched = fetch_mode(args.mode, manifest, models_dir, endpoint=hub_endpoint(args.hub_endpoint))
    if args.json:
        print(json.dumps({"mode": args.mode, "models_dir": str(models_dir), "files": [str(p) for p in fetched]}))
    elif not fetched:
        print(
            f"mode {args.mode} has no weight files to fetch (the pose mode's models ship inside the mediapipe wheel; "
            "`fetch-models face_blendshapes` adds the optional face blendshape model)"
        )
    return 0


def _keygen(args: argparse.Namespace) -> int:
    keys = CurveKeys.create(args.key_file)
    print(f"wrote {args.key_file}; add this public key to the daemon's --authorized-keys file:\n{keys.public}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "fetch-models":
            return _fetch(args)
        if args.command == "keygen":
            return _keygen(args)
        return _client_command(args)
    except VfxError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"error: {exc.filename} already exists; choose another file", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 130
