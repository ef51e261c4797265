"""`theo loadtest`: N concurrent simulated SIP calls from a bounded scenario mix, measured
at the caller, with the resources Theo used while they ran.

N call slots start ``ramp_s / N`` apart; each slot places calls back to back (the mix in
round-robin order) until ``duration_s`` has passed, then lets its call in flight finish,
for at most ``drain_s`` (a call still up then is cut and counted as such). Calls go into a
private call plane (streaming turn loop on the model deployments, or echo-mode CallActors
with ``echo``: each caller frame is played straight back, no models).

Figures, from each call's recording: first-audio latency (end of caller speech -> first
agent audio; for the echo agent, caller speech onset -> its echo's onset, the media path's
round trip), barge-in reaction (caller onset -> agent audio stops) of intended interruptions,
the caller's RTP jitter and lost/concealed frames; per call: failed (not placed, or the
simulator broke), dropped (the agent hung up although the call had not decided to end: no
end_call/transfer tool ran; for the echo agent, any agent hang-up), timed out (the scenario
hit its max duration), steps that timed out waiting for the agent. Sampled every
``sample_interval_s`` with psutil: machine CPU, and each CallActor's RSS/USS and CPU time.

``run_load_sweep`` repeats the load test for several N and finds the knee: the smallest N
whose reply-audio p95 (echo: round-trip p95) is at least twice that at the smallest N.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import psutil

from theo_ray.bench.load_mix import DEFAULT_MIX, patient, resolve_scenario
from theo_ray.bench.load_resources import CallResourceSampler, simulator_cpu_s
from theo_ray.bench.sim_calls import (
    SimCall,
    SimCallPlane,
    barge_in_samples,
    caller_voice,
    echo_scenario,
    place_call,
    turn_samples,
    unanswered_steps,
    without_fillers,
)
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.analysis import CallAnalysis
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_runner import render_utterances

KNEE_FACTOR = 2.0


class LoadtestSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    calls: int = 4  # concurrent call slots
    duration_s: float = 60.0  # no call is placed after this
    ramp_s: float = 10.0  # the last slot starts this long after the first
    mix: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_MIX))  # names or YAML paths
    echo: bool = False  # echo-mode CallActors (no models); the mix is then the echo scenario
    drain_s: float = 180.0  # longest a call in flight at the end may still run
    sample_interval_s: float = 2.0
    # The caller takes the agent's turn as over after this much quiet (at least): a filler
    # followed by a late reply must not read as the end of the answer, or the caller talks
    # over the reply and cancels it.
    settle_ms: int = 2500
    # Off (default): the first agent audio after a caller turn is the reply, and the caller's
    # wait for the agent's answer ends after the reply, not after a filler (with fillers on,
    # on a loaded CPU, "hum..." + a reply later than settle_ms reads as the end of the answer:
    # the caller goes on and its speech cancels the reply).
    fillers: bool = False
    # CallActors prepared ahead; 0: one per call slot (up to 16). A call that finds the pool
    # empty waits for an actor to be created, which on a loaded machine can outlast the
    # gateway's answer timeout (the call is then refused, 486/603).
    warm_pool_size: int = 0

    def __post_init__(self) -> None:
        if self.calls < 1 or self.duration_s <= 0 or self.ramp_s < 0 or self.drain_s < 0:
            raise ValueError("need calls >= 1, duration_s > 0, ramp_s >= 0, drain_s >= 0")
        if not self.echo and not self.mix:
            raise ValueError("the scenario mix is empty")


class LoadtestTick(msgspec.Struct):
    """Progress, sent to the caller's callback every sample interval."""

    elapsed_s: float
    duration_s: float
    placed: int
    active: int
    finished: int
    failed: int
    draining: bool


class CallRow(msgspec.Struct):
    session_id: str
    scenario: str
    ended_by: str
    duration_s: float
    first_audio_ms: list[float]
    barge_in_reaction_ms: list[float | None]
    jitter_ms: float | None
    lost_frames: int
    concealed_frames: int
    unanswered_steps: int
    agent_turns_heard: int  # stretches of agent audio in the caller's recording (the greeting is one)
    failed: bool
    dropped: bool
    error: str = ""
    callactor_rss_mb: float | None = None
    callactor_uss_mb: float | None = None
    callactor_cpu_s: float | None = None


class LoadtestReport(msgspec.Struct):
    settings: LoadtestSettings
    agent: str  # "models: <llm>" or "echo"
    first_audio_what: str
    calls_placed: int
    calls_completed: int
    failed: int
    dropped: int
    timed_out: int
    cut_at_end: int
    unanswered_steps: int
    max_concurrent: int
    first_audio: Percentiles  # whatever the caller heard first: the reply, or a filler
    # Agent mode, turns matched to the CallActor's records: the first audio was the reply itself;
    # a filler came first (the reply was late); no reply at all (e.g. an empty transcript, or
    # the call ended first).
    first_audio_reply: Percentiles
    # End of caller speech -> the reply's own first audio at the caller, filler or not (the knee's figure).
    reply_audio: Percentiles
    turns_filler_first: int
    turns_without_reply: int
    barge_in_reaction: Percentiles
    barge_ins_talked_on: int  # intended interruptions the agent did not yield to
    caller_jitter_ms: Percentiles  # per call: RFC 3550 jitter averaged over the call
    caller_lost_frames: int
    caller_concealed_frames: int
    cpu_percent: Percentiles  # the whole machine, per sample (100 = every core busy)
    cpu_count: int
    callactor_rss_mb: Percentiles  # per CallActor: its largest RSS while the call ran
    callactor_uss_mb: Percentiles  # ... and unique set size (what the actor alone costs)
    callactor_cpu_percent: Percentiles  # per CallActor: CPU time / call length (100 = one core)
    simulator_cpu_percent: float  # this process and its pjsua callers (they share the machine)
    wall_s: float
    errors: list[str] = []
    calls: list[CallRow] = []


class LoadSweepReport(msgspec.Struct):
    agent: str
    runs: list[LoadtestReport]
    # Smallest N whose first-audio p95 >= KNEE_FACTOR x the p95 at the smallest N (None: not reached).
    knee_calls: int | None
    baseline_p95_ms: float | None
    knee_factor: float = KNEE_FACTOR


def echo_round_trips(analysis: CallAnalysis, window_ms: float = 1000.0) -> list[float]:
    """Per caller turn, caller speech onset -> onset of the agent audio that echoes it."""
    out = []
    for turn in analysis.caller_turns:
        echo = next(
            (a for a in analysis.agent_regions if turn.start_ms <= a.start_ms < turn.start_ms + window_ms), None
        )
        if echo is not None:
            out.append(round(echo.start_ms - turn.start_ms, 1))
    return out


def _ended_on_purpose(call: SimCall) -> bool:
    """The agent's hang-up followed its own end_call/transfer tool."""
    if call.record is None:
        return False
    if call.record.transferred_to:
        return True
    return any(t.call.name in ("end_call", "transfer_call") and t.ok for turn in call.record.turns for t in turn.tools)


async def run_loadtest(
    config: TheoConfig,
    handles: ModelHandles | None,
    settings: LoadtestSettings = LoadtestSettings(),
    out_dir: Path = Path("out/loadtest"),
    on_tick: Callable[[LoadtestTick], None] | None = None,
    say: Callable[[str], None] = print,
) -> LoadtestReport:
    """Run the load and gather the figures. Ray must be initialised; ``handles`` may be None
    only with ``settings.echo``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mix = [echo_scenario()] if settings.echo else [
        patient(resolve_scenario(name), settings.settle_ms) for name in settings.mix
    ]
    voice = caller_voice(config)
    say(f"rendering the caller's utterances of {len(mix)} scenario(s) (cached after the first run) ...")
    for scenario in mix:
        await render_utterances(scenario, voice)

    conversation = msgspec.structs.replace(config.conversation, mode="echo" if settings.echo else "agent")
    if not settings.fillers:
        conversation = without_fillers(conversation)
    plane = SimCallPlane(
        config, conversation, None if settings.echo else handles, "echo" if settings.echo else "load",
        warm_pool_size=settings.warm_pool_size or min(settings.calls, 16),
        shards=-(-settings.calls // config.sip.max_calls),
    )
    calls: list[SimCall] = []
    placed = itertools.count(1)
    order = itertools.count()
    resources = CallResourceSampler()
    tag = time.strftime("%H%M%S")
    state = {"placed": 0, "draining": False}
    await plane.start()
    sim_cpu0 = simulator_cpu_s()
    started = time.monotonic()
    stop_at = started + settings.duration_s

    async def slot(k: int) -> None:
        await asyncio.sleep(settings.ramp_s * k / settings.calls)
        while time.monotonic() < stop_at:
            scenario = mix[next(order) % len(mix)]
            n = next(placed)
            state["placed"] = n
            # Slot k always dials shard k mod shards: at most max_calls slots per gateway.
            call = await place_call(plane, scenario, voice, out_dir, f"load-{tag}-{n}", uri=plane.uri_for(k))
            calls.append(call)
            if call.error:
                await asyncio.sleep(1.0)  # a refused call is not retried in a tight loop

    async def sampler() -> None:
        while True:
            active = await resources.sample(plane)
            if on_tick is not None:
                on_tick(LoadtestTick(
                    elapsed_s=round(time.monotonic() - started, 1), duration_s=settings.duration_s,
                    placed=state["placed"], active=active, finished=len(calls),
                    failed=sum(1 for c in calls if c.error), draining=state["draining"],
                ))
            await asyncio.sleep(settings.sample_interval_s)

    slots = [asyncio.create_task(slot(k)) for k in range(settings.calls)]
    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.wait(slots, timeout=settings.duration_s)
        state["draining"] = True
        _, pending = await asyncio.wait(slots, timeout=settings.drain_s)
        for task in pending:  # calls still up after the drain: cut
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        wall = time.monotonic() - started
        sim_cpu = simulator_cpu_s() - sim_cpu0
        await plane.stop()
    cut = state["placed"] - len(calls)
    return _report(settings, config, calls, resources, cut, wall, sim_cpu)


def _report(
    settings: LoadtestSettings, config: TheoConfig, calls: list[SimCall], res: CallResourceSampler, cut: int,
    wall: float, sim_cpu_s: float,
) -> LoadtestReport:
    rows: list[CallRow] = []
    first_audio: list[float] = []
    reply_audio: list[float] = []
    reply_any: list[float | None] = []
    filler_first = without_reply = 0
    reactions: list[float | None] = []
    for call in calls:
        run = call.run
        if settings.echo:
            lat = echo_round_trips(run.analysis) if run else []
        else:
            samples = turn_samples(call)
            lat = [t.first_audio_ms for t in samples]
            reply_any += [t.reply_audio_ms for t in samples]
            for t in samples:
                if t.matched and t.first_rtp_ms is None:
                    without_reply += 1
                elif t.matched and t.filler_played:
                    filler_first += 1
                elif t.matched:
                    reply_audio.append(t.first_audio_ms)
        barges = [b.reaction_ms for b in barge_in_samples(call)]
        first_audio += lat
        reactions += barges
        ended_by = run.ended_by if run else "error"
        dropped = ended_by == "agent" and (settings.echo or not _ended_on_purpose(call))
        rows.append(CallRow(
            session_id=call.session_id, scenario=call.scenario, ended_by=ended_by,
            duration_s=round(call.ended_at - call.placed_at, 1), first_audio_ms=lat, barge_in_reaction_ms=barges,
            jitter_ms=round(run.media.jitter_mean_ms, 2) if run else None,
            lost_frames=max(0, run.media.lost) if run else 0, concealed_frames=run.media.concealed_frames if run else 0,
            unanswered_steps=unanswered_steps(call), agent_turns_heard=len(run.analysis.agent_turns) if run else 0,
            failed=bool(call.error), dropped=dropped, error=call.error,
            callactor_rss_mb=_round(res.rss.get(call.session_id)), callactor_uss_mb=_round(res.uss.get(call.session_id)),
            callactor_cpu_s=_round(res.cpu_s.get(call.session_id)),
        ))
    done = [r for r in rows if not r.failed]
    return LoadtestReport(
        settings=settings,
        agent="echo" if settings.echo else f"models: {config.llm.backend} {config.llm.model}",
        first_audio_what=(
            "caller speech onset -> its echo's onset (media round trip)" if settings.echo
            else "end of caller speech -> first agent audio"
        ),
        calls_placed=len(rows) + cut,
        calls_completed=len(done),
        failed=sum(1 for r in rows if r.failed),
        dropped=sum(1 for r in rows if r.dropped),
        timed_out=sum(1 for r in rows if r.ended_by == "timeout"),
        cut_at_end=cut,
        unanswered_steps=sum(r.unanswered_steps for r in rows),
        max_concurrent=res.max_active,
        first_audio=percentiles(first_audio),
        first_audio_reply=percentiles(reply_audio),
        reply_audio=percentiles(reply_any) if not settings.echo else percentiles(first_audio),
        turns_filler_first=filler_first,
        turns_without_reply=without_reply,
        barge_in_reaction=percentiles(reactions),
        barge_ins_talked_on=sum(1 for r in reactions if r is None),
        caller_jitter_ms=percentiles([r.jitter_ms for r in done]),
        caller_lost_frames=sum(r.lost_frames for r in done),
        caller_concealed_frames=sum(r.concealed_frames for r in done),
        cpu_percent=percentiles(res.cpu),
        cpu_count=psutil.cpu_count() or 0,
        callactor_rss_mb=percentiles(list(res.rss.values())),
        callactor_uss_mb=percentiles(list(res.uss.values())),
        callactor_cpu_percent=percentiles([res.cpu_percent_of(sid) for sid in res.cpu_s]),
        simulator_cpu_percent=round(100.0 * sim_cpu_s / wall, 1) if wall > 0 else 0.0,
        wall_s=round(wall, 1),
        errors=[f"{r.session_id}: {r.error}" for r in rows if r.error],
        calls=rows,
    )


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def find_knee(runs: list[LoadtestReport], factor: float = KNEE_FACTOR) -> tuple[int | None, float | None]:
    """(knee N, baseline p95): the smallest N whose reply-audio p95 (echo: round-trip p95) is
    >= factor x the p95 at the smallest N."""
    measured = sorted((r for r in runs if r.reply_audio.p95 is not None), key=lambda r: r.settings.calls)
    if not measured:
        return None, None
    baseline = measured[0].reply_audio.p95
    knee = next((r.settings.calls for r in measured[1:] if r.reply_audio.p95 >= factor * baseline), None)
    return knee, baseline


async def run_load_sweep(
    config: TheoConfig,
    handles: ModelHandles | None,
    counts: list[int],
    settings: LoadtestSettings = LoadtestSettings(),
    out_dir: Path = Path("out/loadtest"),
    on_tick: Callable[[LoadtestTick], None] | None = None,
    say: Callable[[str], None] = print,
) -> LoadSweepReport:
    """The load test at each N in ``counts`` (ascending), then the knee."""
    runs = []
    for n in sorted(set(counts)):
        say(f"[bold]N = {n}[/bold]")
        run = await run_loadtest(
            config, handles, msgspec.structs.replace(settings, calls=n), out_dir / f"n{n}", on_tick, say
        )
        say(f"  first audio p50 {run.first_audio.p50} / p95 {run.first_audio.p95} ms over {run.first_audio.count}; "
            f"failed {run.failed}, dropped {run.dropped}")
        runs.append(run)
    knee, baseline = find_knee(runs)
    return LoadSweepReport(agent=runs[0].agent if runs else "", runs=runs, knee_calls=knee, baseline_p95_ms=baseline)
