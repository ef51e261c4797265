"""The worker processes behind Ray actors, and what they cost: a live actor's PID, the PIDs of
every live actor of a class (from the GCS actor table), and a process's CPU time and RSS.
Ray and psutil are imported only when a function is called.
"""

from __future__ import annotations


def actor_process(handle) -> int:
    """PID of a live actor's worker process (0 if unknown).

    Read from the GCS actor table: ray.util.state needs the dashboard, which the test
    cluster runs without. `_actor_id` is the handle's id; Ray has no public accessor.
    """
    import ray._private.state as ray_state

    info = ray_state.actors(actor_id=handle._actor_id.hex())
    return int(info.get("Pid", 0)) if info else 0


def alive_actors(class_name: str) -> dict[str, int]:
    """Actor id -> PID of every ALIVE actor of `class_name` in the cluster."""
    import ray._private.state as ray_state

    table = ray_state.actors(actor_state_name="ALIVE")
    return {aid: int(info["Pid"]) for aid, info in table.items() if info["ActorClassName"] == class_name}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0.0 if it is gone)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (0.0 if it is gone)."""
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0
