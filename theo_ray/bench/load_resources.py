"""What a load test's calls cost: psutil samples of the machine's CPU, of each call's CallActor
process (largest RSS and USS, CPU time while the call was seen) and of the simulator itself.

:class:`CallResourceSampler` finds each active call's CallActor through the call plane's
supervisor and samples its process on every :meth:`~CallResourceSampler.sample`;
:func:`simulator_cpu_s` is this process's and its children's (the pjsua callers') CPU time.
"""

from __future__ import annotations

import contextlib
import time

import psutil

from theo_ray.bench.actor_processes import actor_process
from theo_ray.bench.sim_calls import SimCallPlane


class CallResourceSampler:
    """psutil samples of the machine and of each call's CallActor process (largest RSS/USS, CPU time)."""

    def __init__(self) -> None:
        self.cpu: list[float] = []
        self.pids: dict[str, int] = {}
        self.rss: dict[str, float] = {}
        self.uss: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}  # CPU time while the call was seen (not the warm-up's)
        self._cpu_first: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.max_active = 0
        psutil.cpu_percent(None)  # starts the machine-wide measuring interval

    async def sample(self, plane: SimCallPlane) -> int:
        self.cpu.append(psutil.cpu_percent(None))
        active = await plane.supervisor.active_calls.remote()
        self.max_active = max(self.max_active, len(active))
        now = time.monotonic()
        for info in active:
            sid = info.session_id
            if sid not in self.pids:
                handle = await plane.supervisor.call_actor.remote(sid)
                if handle is None:
                    continue
                self.pids[sid] = actor_process(handle)
                self.first_seen[sid] = now
            pid = self.pids[sid]
            if not pid:
                continue
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    mem = proc.memory_full_info()
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            self.rss[sid] = max(self.rss.get(sid, 0.0), mem.rss / 2**20)
            self.uss[sid] = max(self.uss.get(sid, 0.0), mem.uss / 2**20)
            used = times.user + times.system
            self._cpu_first.setdefault(sid, used)
            self.cpu_s[sid] = used - self._cpu_first[sid]
            self.last_seen[sid] = now
        return len(active)

    def cpu_percent_of(self, sid: str) -> float | None:
        span = self.last_seen.get(sid, 0.0) - self.first_seen.get(sid, 0.0)
        return round(100.0 * self.cpu_s[sid] / span, 1) if sid in self.cpu_s and span > 1.0 else None


def simulator_cpu_s() -> float:
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total
