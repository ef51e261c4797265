"""What a call plane looks like from outside, before and after it was attacked.

A `HealthSnapshot` is read from the plane's own actors (ShardStatus, GatewayStats,
SupervisorStats), Ray's list of named actors and the operating system's socket table of
the plane's long-lived processes (each gateway actor's process and its shard children,
the CallSupervisor's process). `compare` turns two snapshots into what the SIP torture
bench reports per attack: crashes (shard processes replaced, CallActors that died under a
call, a plane actor that no longer answers), leaks (calls still counted once every call
ended, CallActors beyond the warm pool, sockets the plane's processes hold beyond what they
held before: UDP, the SIP and RTP ports) and the refusals the gateway counted. `normal_call` places the call a caller
makes right after: answered or not, and how long until the greeting is heard.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec
import psutil

from theo_ray.actor_names import CALL_ACTOR_PREFIX
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.sim.call_dialer import CallFailed, dial_and_run
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.scenario import Hangup, Scenario, WaitAgent
from theo_ray.sim.sip_caller import CallerSettings
from theo_ray.sip.stats import REFUSAL_COUNTERS


class HealthSnapshot(msgspec.Struct):
    reachable: bool = True  # every plane actor answered
    shard_restarts: int = 0  # shard processes that died and were replaced
    shard_recycles: int = 0  # idle shard processes replaced because pjsua leaked call slots
    failovers: int = 0  # CallActors that died under a live call
    failover_failures: int = 0
    supervisor_active: int = 0  # calls the CallSupervisor counts as live
    gateway_active: int = 0  # dialogs the shards hold
    warm: int = 0
    call_actors: int = 0  # named CallActors of this plane (warm + live + leaked)
    sockets: int = 0  # UDP sockets of the plane's long-lived processes
    refusals: dict[str, int] = {}  # GatewayStats refusal counters, summed over the shards
    live: list[str] = []  # session ids of the calls still counted (supervisor, then shards)
    error: str = ""


class HealthDelta(msgspec.Struct):
    crashes: int  # shard deaths + CallActor deaths under a call + unreachable plane actors
    leaked_calls: int  # calls still counted (supervisor or shards) after every call ended
    leaked_actors: int  # named CallActors beyond the warm pool and the live calls
    leaked_sockets: int  # sockets held now beyond those held before (never negative)
    refusals: dict[str, int]  # refusals counted during the attack, by counter
    recycles: int
    detail: str = ""


async def _pid_of_actor(actor) -> int | None:
    """The actor's worker process id (Ray runs `fn(self)` inside the actor)."""
    try:
        return await asyncio.wait_for(actor.__ray_call__.remote(lambda self: os.getpid()), 10)
    except Exception:  # noqa: BLE001 - an actor that does not answer has no pid to count
        return None


def _inet_sockets(pids: list[int]) -> int:
    """UDP sockets (SIP, RTP, the reply sockets) held by `pids` and their children (shard
    processes, standbys). Not TCP: Ray's gRPC connections to each new CallActor's worker
    come and go with the actors and are not the plane's ports."""
    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in tree:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                total += len(process.net_connections(kind="udp"))
            except psutil.Error:
                pass
    return total


def _named_call_actors(plane: CallPlane) -> int:
    from ray.util import list_named_actors

    prefix = f"{CALL_ACTOR_PREFIX}{plane.supervisor_name}-"
    return sum(1 for e in list_named_actors(all_namespaces=True) if e["name"].startswith(prefix))


async def snapshot(plane: CallPlane, pids: list[int]) -> HealthSnapshot:
    out = HealthSnapshot()
    try:
        statuses = await asyncio.wait_for(asyncio.gather(*(g.status.remote() for g in plane.gateways)), 15)
        stats = await asyncio.wait_for(plane.gateway_stats(), 15)
        supervisor = await asyncio.wait_for(plane.supervisor.stats.remote(), 15)
    except Exception as exc:  # noqa: BLE001 - a plane actor that died or hangs is the finding
        return HealthSnapshot(reachable=False, error=f"{type(exc).__name__}: {exc}"[:200])
    out.shard_restarts = sum(s.restarts for s in statuses)
    out.shard_recycles = sum(s.recycles for s in statuses)
    out.gateway_active = sum(s.active_calls for s in statuses)
    out.failovers, out.failover_failures = supervisor.failovers, supervisor.failover_failures
    out.supervisor_active, out.warm = supervisor.active, supervisor.warm
    out.call_actors = await asyncio.to_thread(_named_call_actors, plane)
    out.sockets = await asyncio.to_thread(_inet_sockets, pids)
    out.refusals = {name: sum(getattr(s, name) for s in stats) for name in REFUSAL_COUNTERS}
    if out.supervisor_active or out.gateway_active:
        calls = await plane.supervisor.active_calls.remote()
        dialogs = await asyncio.gather(*(g.active_sessions.remote() for g in plane.gateways))
        out.live = [f"supervisor:{c.session_id}" for c in calls] + [f"shard:{d}" for ds in dialogs for d in ds]
    return out


async def plane_pids(plane: CallPlane) -> list[int]:
    """The plane's long-lived processes: gateway actors (their shard children follow) and the supervisor."""
    pids = await asyncio.gather(*(_pid_of_actor(a) for a in (*plane.gateways, plane.supervisor)))
    return [pid for pid in pids if pid]


async def settle(plane: CallPlane, timeout_s: float) -> HealthSnapshot:
    """Wait (bounded) until no call is counted anywhere and the warm pool is full again."""
    pids = await plane_pids(plane)
    deadline = time.monotonic() + timeout_s
    while True:
        now = await snapshot(plane, pids)
        idle = now.reachable and not now.supervisor_active and not now.gateway_active and now.warm >= plane.warm_pool_size
        if idle or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


def compare(before: HealthSnapshot, after: HealthSnapshot) -> HealthDelta:
    if not after.reachable:
        return HealthDelta(crashes=1, leaked_calls=0, leaked_actors=0, leaked_sockets=0, refusals={}, recycles=0,
                           detail=f"plane unreachable: {after.error}")
    refusals = {k: v - before.refusals.get(k, 0) for k, v in after.refusals.items() if v - before.refusals.get(k, 0)}
    return HealthDelta(
        crashes=(after.shard_restarts - before.shard_restarts) + (after.failovers - before.failovers)
        + (after.failover_failures - before.failover_failures),
        leaked_calls=after.supervisor_active + after.gateway_active,
        leaked_actors=max(0, after.call_actors - after.warm - after.supervisor_active),
        leaked_sockets=max(0, after.sockets - before.sockets),
        refusals=refusals, recycles=after.shard_recycles - before.shard_recycles,
        detail=f"still counted after the attack: {', '.join(after.live)[:300]}" if after.live else "",
    )


class NormalCall(msgspec.Struct):
    answered: bool = False
    greeting_heard: bool = False
    answer_ms: float | None = None  # dial -> 200 OK at the caller (the recording starts there)
    first_audio_ms: float | None = None  # dial -> the greeting's first audio at the caller
    error: str = ""


GREETING_ONLY = Scenario(
    name="torture_normal_call",
    steps=[WaitAgent(until="ends", timeout_ms=20000, settle_ms=600), Hangup(after_ms=200)],
    max_duration_s=40.0,
)


async def normal_call(plane: CallPlane, voice: CallerVoice, out_dir: Path, session_id: str) -> NormalCall:
    """A plain caller (the caller simulator, PCMU) right after an attack: does it get the greeting?"""
    out = NormalCall()
    dialled_at = time.time()
    try:
        run = await asyncio.wait_for(dial_and_run(
            plane.uri, GREETING_ONLY, voice, out_dir, headers={"X-Theo-Session": session_id},
            caller_settings=CallerSettings(media="external", codecs=["PCMU"]), answer_timeout_s=15.0, name=session_id,
        ), 60.0)
    except CallFailed as exc:
        out.error = f"not answered: {exc}"
        return out
    except Exception as exc:  # noqa: BLE001 - a benchmark reports a broken call
        out.error = f"{type(exc).__name__}: {exc}"[:200]
        return out
    out.answered = True
    out.answer_ms = round((run.started_at_unix - dialled_at) * 1000.0, 1)
    agent = run.analysis.agent_regions
    if agent:
        out.greeting_heard = True
        out.first_audio_ms = round(out.answer_ms + agent[0].start_ms, 1)
    out.error = run.error
    return out
