"""Node placement of the call plane on a two-node cluster on one machine: the plane's
supervisor and gateway shards land on the node with the `theo_media` resource, and nothing
is placed without one. Runs `multinode_placement.py` in its own process (a Ray driver of its
own, never the session's cluster) and checks no process of that cluster outlives it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_call_plane_lands_on_the_media_node():
    # Short: Ray's socket paths under it must stay within AF_UNIX's 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="theo-mn-", dir="/tmp"))
    try:
        result = subprocess.run(
            [sys.executable, str(HERE / "multinode_placement.py"), str(temp_dir)],
            capture_output=True, text=True, timeout=240, cwd=HERE.parents[1],
        )
        leftovers = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                     if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["options_without_media_node"] == "{}"
    assert report["media_node"] != report["head_node"]
    plane = report["plane"]
    assert sum("supervisor" in n for n in plane) == 1 and sum("gateway" in n for n in plane) == 2
    assert set(plane.values()) == {report["media_node"]}, plane
    assert not leftovers, f"processes of the test's cluster left running: {leftovers}"
