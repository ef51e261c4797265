"""Start, join and stop the Ray cluster Theo runs on, keeping token auth on.

`theo up` without an address starts a local head node bound to 127.0.0.1 and remembers in
a state file that it did (and its session folder), so `theo down` stops only that cluster's
processes, not other Ray clusters on the same machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from theo_ray.config import RaySettings
from theo_ray.errors import TheoError
from theo_ray.runtime.ray_auth import ensure_auth_token


class ClusterState(msgspec.Struct):
    address: str
    started_by_theo: bool
    dashboard_url: str
    # The head's session folder: its processes carry it on their command lines, so `theo
    # down` stops this cluster's processes and no other Ray on the machine.
    session_dir: str = ""


def _state_file(settings: RaySettings) -> Path:
    return Path(settings.state_dir).expanduser() / "cluster.json"


def read_state(settings: RaySettings) -> ClusterState | None:
    path = _state_file(settings)
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClusterState)
    except msgspec.DecodeError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


def _alive(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


_STARTED_HERE: list[str] = []  # addresses of clusters this process started


def started_here() -> bool:
    """Whether this process started the local cluster it is connected to."""
    return bool(_STARTED_HERE)


def start_or_join(settings: RaySettings, say: Callable[[str], None] = print) -> ClusterState:
    """Connect this process to the cluster (starting a local one if needed)."""
    ensure_auth_token()  # before importing ray: it reads RAY_AUTH_MODE at import
    import ray  # noqa: F401 - imported after the token: Ray reads RAY_AUTH_MODE at import

    if settings.address:
        say(f"joining Ray cluster at {settings.address}")
        _connect(settings.address, settings.namespace)
        return ClusterState(address=settings.address, started_by_theo=False, dashboard_url="")
    state = read_state(settings)
    if state and _alive(state.address):
        say(f"using the local Ray cluster Theo started at {state.address}")
    else:
        port = _free_port()
        say("starting a local Ray cluster (token auth on) ...")
        command = [
            _ray_cli(), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
            f"--dashboard-host={settings.dashboard_host}", f"--dashboard-port={settings.dashboard_port}",
            "--disable-usage-stats",
        ]
        # Logical CPUs: the deployments reserve fractions and CallActors reserve none, so a
        # small machine still schedules everything (the OS shares the real cores).
        command.append(f"--num-cpus={settings.num_cpus or max(4, os.cpu_count() or 1)}")
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if result.returncode != 0:
            # A head that did not come up in time (a loaded machine) leaves its GCS, dashboard
            # and monitor running, holding the ports the next start needs: stop them here.
            address = f"127.0.0.1:{port}"
            left = _stop_session_processes("", address, extra_marks=(f"--gcs_server_port={port}",))
            _forget_current_cluster(address)
            raise TheoError(f"`ray start` failed (stopped the {left} process(es) it left):\n{result.stderr[-2000:]}")
        state = ClusterState(
            address=f"127.0.0.1:{port}",
            started_by_theo=True,
            dashboard_url=f"http://{settings.dashboard_host}:{settings.dashboard_port}",
        )
        path = _state_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msgspec.json.encode(state))
        _STARTED_HERE.append(state.address)
        say(f"  Ray head at {state.address}, dashboard {state.dashboard_url} (bearer token in ~/.ray/auth_token)")
    _connect(state.address, settings.namespace)
    if state.started_by_theo and not state.session_dir:
        state.session_dir = _session_dir()
        _state_file(settings).write_bytes(msgspec.json.encode(state))
    return state


def _connect(address: str, namespace: str) -> None:
    """ray.init for a `theo` command: Ray's and Serve's INFO lines ("Connecting to existing
    Ray cluster", "Started Serve in namespace") would sit between the command's own progress
    lines; warnings and errors still show."""
    import logging

    import ray  # noqa: F401 - imported after the token: Ray reads RAY_AUTH_MODE at import

    ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level=logging.WARNING)
    # Serve sets its logger's level again when its client starts; a filter stays.
    logging.getLogger("ray.serve").addFilter(lambda record: record.levelno >= logging.WARNING)


def _session_dir() -> str:
    import ray  # noqa: F401 - imported after the token: Ray reads RAY_AUTH_MODE at import

    node = getattr(ray._private.worker, "_global_node", None)  # no public API for it
    return node.get_session_dir_path() if node is not None else ""


def _forget_current_cluster(address: str) -> None:
    """Ray's pointer to "the" local cluster (read by `ray.init()` and `ray status` without an
    address) must not outlive the cluster it points at; `ray stop` removes it too."""
    pointer = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    try:
        if pointer.read_text().strip().rpartition(":")[2] == address.rpartition(":")[2]:
            pointer.unlink()
    except OSError:
        pass


def _stop_session_processes(
    session_dir: str, address: str = "", timeout_s: float = 2.0, extra_marks: tuple[str, ...] = ()
) -> int:
    """SIGTERM, then SIGKILL, every process of one Ray session: those whose command line
    names the session folder (GCS, raylet, dashboard, log monitor) or the GCS address (the
    Ray client server, which names no folder) and their children (the workers: actors,
    Serve replicas, SIP shard processes). Returns how many were stopped. Some Ray worker
    processes sit out SIGTERM (a stop always took the whole 15 s it was once given), so the
    rest get SIGKILL after 2 s: the session is being thrown away either way."""
    import psutil

    marks = [m for m in (session_dir, f"={address}" if address else "", *extra_marks) if m]
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(mark in arg for arg in proc.info["cmdline"] or [] for mark in marks):
                roots.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    procs = {p.pid: p for p in roots}
    for root in roots:
        try:
            procs.update({c.pid: c for c in root.children(recursive=True)})
        except psutil.NoSuchProcess:
            continue
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return len(procs)


def stop(settings: RaySettings, say: Callable[[str], None] = print) -> bool:
    """Stop the cluster `theo up` started; leave any other cluster alone."""
    state = read_state(settings)
    if not state or not state.started_by_theo:
        say("no Ray cluster started by Theo is recorded; nothing to stop")
        return False
    ensure_auth_token()
    if _alive(state.address):
        try:
            import ray

            # The command that started the cluster (a demo, a benchmark) is still connected:
            # disconnect before the processes go, so the driver does not keep reporting a
            # cluster that vanished. No serve.shutdown(): the whole session ends below, and
            # killing the controller first printed "(raylet) Task ServeController... failed"
            # lines on the user's screen.
            if ray.is_initialized():
                ray.shutdown()
        except Exception as exc:  # the cluster is going away anyway; say why Serve did not stop cleanly
            say(f"  Serve shutdown: {type(exc).__name__}: {exc}")
        if state.session_dir:
            began = time.monotonic()
            stopped = _stop_session_processes(state.session_dir, state.address)
            _forget_current_cluster(state.address)
            say(f"  stopped {stopped} processes of session {Path(state.session_dir).name} "
                f"in {time.monotonic() - began:.1f} s")
        else:
            # Older state file without the session: `ray stop` ends every Ray process here.
            subprocess.run([_ray_cli(), "stop"], capture_output=True, text=True)
    _state_file(settings).unlink(missing_ok=True)
    if state.address in _STARTED_HERE:
        _STARTED_HERE.remove(state.address)
    say(f"stopped the local Ray cluster at {state.address}")
    return True
