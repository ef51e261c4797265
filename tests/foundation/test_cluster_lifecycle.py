"""`theo down` stops the cluster Theo started and nothing else: a second local Ray cluster
started the way `theo up` starts one (`ray start --head`, token auth on), stopped with the
real `theo down`, while this test session's own cluster keeps working."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

UP = (
    "from theo_ray.config import load_config\n"
    "from theo_ray.runtime.ray_cluster import start_or_join\n"
    "state = start_or_join(load_config().ray, print)\n"
    "print('SESSION', state.session_dir)\n"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_pids(session_dir: str) -> set[int]:
    pids = set()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(session_dir in arg for arg in proc.info["cmdline"] or []):
                pids.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def test_theo_down_stops_its_own_cluster_and_leaves_others_running(ray_cluster, tmp_path):
    ray = ray_cluster
    env = {
        **os.environ,
        "THEO__RAY__STATE_DIR": str(tmp_path / "run"),
        "THEO__RAY__DASHBOARD_PORT": str(_free_port()),
        "THEO__RAY__NUM_CPUS": "2",
    }
    up = subprocess.run([sys.executable, "-c", UP], env=env, capture_output=True, text=True, timeout=240)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "cluster.json").read_text())
    assert state["started_by_theo"] and state["session_dir"]
    ours = ray.get_runtime_context().gcs_address
    assert state["address"] != ours
    assert _session_pids(state["session_dir"]), "the started cluster has no processes?"
    client_server = [p for p in _session_pids(f"={state['address']}") if p not in _session_pids(state["session_dir"])]
    print(f"processes naming only the GCS address (Ray client server): {client_server}")

    theo = Path(sys.executable).with_name("theo")
    down = subprocess.run([str(theo), "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert "stopped" in down.stdout
    assert not _session_pids(state["session_dir"])
    assert not (tmp_path / "run" / "cluster.json").exists()
    # Nor the Ray client server, whose command line names the GCS address, not the session.
    assert not _session_pids(f"={state['address']}"), "a process of the stopped cluster is still running"

    @ray.remote
    def still_here() -> int:
        return 42

    assert ray.get(still_here.remote(), timeout=60) == 42
