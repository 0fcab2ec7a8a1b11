"""The Daemon panel's lines for a daemon whose jobs run on a Ray cluster (``health["executor"]``). No bpy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _free_of(executor: Mapping[str, Any], name: str, label: str) -> str | None:
    total = (executor.get("total") or {}).get(name)
    if not total:
        return None
    free = (executor.get("free") or {}).get(name, 0)
    return f"{label} {free:g}/{total:g} free"


def cluster_lines(executor: Mapping[str, Any] | None) -> list[str]:
    """Nothing for the local executor; otherwise the cluster's state: its nodes and free GPUs and CPUs and where
    models are loaded when connected, or the error and that jobs wait while it is not."""
    if not executor or executor.get("kind") != "ray":
        return []
    address = executor.get("address", "?")
    status = executor.get("status")
    if status != "connected":
        lines = [f"Ray cluster {address}: {status or 'unknown'}"]
        if executor.get("error"):
            lines.append(str(executor["error"]))
        return [*lines, "Jobs wait in the queue until the cluster is back."]
    nodes = [n for n in executor.get("nodes") or [] if n.get("alive")]
    free = [text for text in (_free_of(executor, "GPU", "GPUs"), _free_of(executor, "CPU", "CPUs")) if text]
    lines = [
        f"Ray cluster: {len(nodes)} node{'s' if len(nodes) != 1 else ''}" + (f", {', '.join(free)}" if free else "")
    ]
    where: dict[str, list[str]] = {}
    for actor in executor.get("actors") or []:
        where.setdefault(str(actor.get("node_ip", "?")), []).append(str(actor.get("mode", "?")))
    lines += [f"On {node}: {', '.join(sorted(modes))}" for node, modes in sorted(where.items())]
    return lines
