"""The README's first command leaves nothing behind: `theo demo` on a machine with no Ray
cluster starts its own, places the call and stops that cluster again; the test suite's own
cluster (started by tests/conftest.py, `address="local"`) is untouched by it.

This is the CI-runnable form of "the two commands in either order": the demo runs while the
suite's cluster is up (as if the tests had run first), and the suite goes on afterwards on
its own cluster (as if the demo had run first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from theo_ray.sip.free_port import free_sip_port

pytestmark = pytest.mark.slow


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_started_cluster_is_gone_when_the_demo_ends(ray_cluster, tmp_path):
    import ray

    suite_gcs = ray.get_runtime_context().gcs_address
    state_dir = tmp_path / "state"
    env = {
        **os.environ,
        "THEO__RAY__STATE_DIR": str(state_dir),  # the demo's own record of what it started
        "THEO__RAY__DASHBOARD_PORT": str(_free_tcp_port()),
        "THEO__SIP__PORT": str(free_sip_port()),
        "THEO__PATHS__OUTPUT_DIR": str(tmp_path),
        "COLUMNS": "200",
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("THEO__RAY__ADDRESS", None)
    theo = Path(sys.executable).with_name("theo")
    result = subprocess.run(
        [str(theo), "demo", "--out", str(tmp_path / "demo")], env=env, capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "stopping the local Ray cluster this command started" in output, output[-3000:]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [t for t in summary["turns"] if t["kind"] == "turn"], summary

    # Nothing of the demo's cluster is left: no state file, no process naming its address.
    assert not (state_dir / "cluster.json").exists()
    started = [line for line in output.splitlines() if "Ray head at 127.0.0.1:" in line]
    assert started, output[-3000:]
    demo_address = started[0].split("Ray head at ", 1)[1].split(",", 1)[0].strip()
    assert demo_address != suite_gcs
    leftovers = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(demo_address in arg for arg in proc.info["cmdline"] or []):
                leftovers.append((proc.info["pid"], " ".join(proc.info["cmdline"])[:200]))
        except psutil.Error:
            continue
    assert not leftovers, leftovers
    # The suite's cluster still answers.
    assert ray.get(ray.put(7)) == 7 and ray.get_runtime_context().gcs_address == suite_gcs
