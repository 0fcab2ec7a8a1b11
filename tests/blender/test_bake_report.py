"""Where a bake report is kept when the job's folder cannot be written, in real Blender (no daemon needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def test_a_report_the_folder_refuses_says_so_and_where_it_still_is(blender, tmp_path):
    record = blender.run("bake_report.py", "--output", str(tmp_path))
    refused = "Cannot keep the bake report in the job's folder ("
    assert record["without_action"].startswith(refused) and "Action" not in record["without_action"]
    assert record["with_action"].startswith(refused) and record["with_action"].endswith("; it is on the Action 'take'")
    assert record["on_action"] == {"bones": {}}
