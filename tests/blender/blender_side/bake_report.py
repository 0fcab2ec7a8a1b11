"""Keep a bake report when the job's folder cannot be written (a file stands where the folder goes), on an
armature with no Action and then on one with an Action. No daemon.

``--output DIR`` is a writable folder for the blocking file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import bpy
import harness


def main(args: argparse.Namespace, record: dict[str, Any]) -> None:
    addon = harness.install_extension(args.zip)
    armature = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    bpy.context.scene.collection.objects.link(armature)
    blocked = Path(args.output) / "job"
    blocked.write_text("not a folder", encoding="utf-8")
    report = {"bones": {}}
    record["without_action"] = addon.pose.bake_report.keep(armature, report, str(blocked))
    armature.animation_data_create().action = bpy.data.actions.new("take")
    record["with_action"] = addon.pose.bake_report.keep(armature, report, str(blocked))
    record["on_action"] = json.loads(armature.animation_data.action[addon.pose.bake_report.REPORT_PROP])


if __name__ == "__main__":
    harness.run_scenario(harness.parse_args(("--output", {"required": True})), main)
