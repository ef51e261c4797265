"""A `ray start` that fails after spawning part of a head (a loaded machine: the GCS came
up, the raylet did not in time) must leave nothing running: the leftovers are found by the
GCS address and port on their command lines and stopped. Stand-in processes carry the same
command-line marks Ray's own do (`--gcs_server_port=P`, `--gcs-address=127.0.0.1:P`)."""

from __future__ import annotations

import subprocess

import psutil

from theo_ray.runtime.ray_cluster import _stop_session_processes


def test_processes_of_a_head_that_never_came_up_are_stopped():
    port = 61234
    gcs = subprocess.Popen(["bash", "-c", "sleep 60; true", f"--gcs_server_port={port}"])
    dashboard = subprocess.Popen(["bash", "-c", "sleep 60; true", f"--gcs-address=127.0.0.1:{port}"])
    bystander = subprocess.Popen(["bash", "-c", "sleep 60; true", "--gcs_server_port=61235"])
    try:
        stopped = _stop_session_processes("", f"127.0.0.1:{port}", extra_marks=(f"--gcs_server_port={port}",))
        assert stopped >= 2  # the two and their children
        for proc in (gcs, dashboard):
            assert proc.wait(timeout=5) is not None
        assert psutil.pid_exists(bystander.pid) and bystander.poll() is None  # another cluster's: untouched
    finally:
        for proc in (gcs, dashboard, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
