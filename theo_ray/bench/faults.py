"""Fault injection on live simulated calls, judged by what the caller heard.

One `Fault` = a caller scenario + an injector that watches the call on the plane and
strikes at a chosen moment (returns the monotonic instant it struck). `run_fault` places
the call over real SIP/RTP with the caller simulator, injects the fault beside it, and
judges from the caller's two-track recording: how long the caller heard nothing after the
fault, the longest mutual silence from the fault to the hang-up, what the caller heard
first after it (transcribed from the recording), and how the call ended. `theo bench
faults` repeats every fault and prints the figures; tests/integration/test_faults.py runs
each once and asserts on the same judgement.

The language model is the scripted test double (same deployment path): its "pix" rule
hangs for a minute (the hung-LLM fault), and a second scripted application is the fallback
model. Killing a Serve replica hits every call the replica serves: run this against a
plane that takes no real calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from theo_ray.bench.sim_calls import SimCall, SimCallPlane, place_call, recording_origin
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.speech_regions import SpeechRegion
from theo_ray.sim.call_summary import stt_transcriber
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.recording import CallRecording
from theo_ray.sim.scenario import Hangup, Say, Scenario, Step, WaitAgent

LONG_QUESTION = "Me explica como funciona o meu plano de internet."  # a long scripted answer
BILL_QUESTION = "Quero saber da minha fatura."
PIX_QUESTION = "Fiz um pix e não caiu."  # the scripted primary hangs on it
POLL_S = 0.05
GAP_WINDOW_MS = 3000.0  # the caller-side gap: the longest silence this long after a fault
HEARD_MS = 4000.0  # how much of the agent's audio after a fault is transcribed


class FaultResult(msgspec.Struct):
    fault: str
    session_id: str
    struck: bool = False  # the injector found its moment and struck
    gap_ms: float | None = None  # longest silence at the caller in the 3 s after the fault
    longest_silence_ms: float | None = None  # neither side audible, fault -> hang-up
    heard: str = ""  # the first agent words after the fault, as the caller's STT heard them
    outcome: str = ""  # continued | human | hung up | lost
    recovery_ms: float | None = None  # Theo's own figure (failover takeover), when it has one
    answered: int = 0  # caller questions after the fault that got an answer
    error: str = ""


Injector = Callable[[SimCallPlane, str], Awaitable[float | None]]


class Fault(msgspec.Struct, frozen=True):
    name: str
    what: str
    steps: list[Step]
    inject: Injector


def fault_scenario(name: str, steps: list[Step]) -> Scenario:
    """The fault's caller scenario: the greeting heard, then its steps, then the hang-up."""
    return Scenario(name=f"fault_{name}", steps=[WaitAgent(until="ends", timeout_ms=20000), *steps, Hangup(after_ms=300)],
                    max_duration_s=150.0)


def _ask(text: str, timeout_ms: int = 30000, settle_ms: int = 900) -> list[Step]:
    return [Say(text=text), WaitAgent(until="ends", timeout_ms=timeout_ms, settle_ms=settle_ms)]


# ---------------------------------------------------------------- watching the call


async def _wait_for(plane: SimCallPlane, session_id: str, ready: Callable[[object], bool], timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            stats = await plane.supervisor.call_stats.remote(session_id)
        except Exception:  # noqa: BLE001 - the call's actor may be between lives
            stats = None
        if stats is not None and ready(stats):
            return stats
        await asyncio.sleep(POLL_S)
    return None


def _speaking_reply(n: int) -> Callable[[object], bool]:
    def ready(stats) -> bool:  # the n-th reply's own audio has started reaching the caller
        turn = stats.current_turn
        return turn is not None and turn.index >= n and bool(turn.first_rtp_at)
    return ready


def _thinking(stats) -> bool:
    return stats.state == "thinking"


# ---------------------------------------------------------------- the injectors


async def _kill_call_actor_mid_reply(plane: SimCallPlane, session_id: str) -> float | None:
    import ray

    if await _wait_for(plane, session_id, _speaking_reply(1)) is None:
        return None
    await asyncio.sleep(1.0)  # a second into the answer
    actor = await plane.supervisor.call_actor.remote(session_id)
    ray.kill(actor, no_restart=True)
    return time.monotonic()


async def _kill_call_actor_thinking(plane: SimCallPlane, session_id: str) -> float | None:
    import ray

    if await _wait_for(plane, session_id, _thinking) is None:
        return None
    actor = await plane.supervisor.call_actor.remote(session_id)
    ray.kill(actor, no_restart=True)  # the question is heard, the answer not yet begun
    return time.monotonic()


async def _kill_supervisor_mid_reply(plane: SimCallPlane, session_id: str) -> float | None:
    import ray

    if await _wait_for(plane, session_id, _speaking_reply(1)) is None:
        return None
    await asyncio.sleep(0.5)
    ray.kill(plane.supervisor, no_restart=False)  # Ray restarts it; it adopts the call
    return time.monotonic()


async def _hang_at_question(plane: SimCallPlane, session_id: str) -> float | None:
    """Nothing to do: the scripted primary model hangs on the question by itself. The fault
    instant is the end of the caller's turn (the CallActor's, read from its record)."""
    stats = await _wait_for(plane, session_id, lambda s: s.current_turn is not None and bool(s.current_turn.end_of_turn_at))
    return stats.current_turn.end_of_turn_at if stats is not None else None


def _kill_replicas(app: str) -> float | None:
    import ray
    from ray.util import list_named_actors

    replicas = [e for e in list_named_actors(all_namespaces=True) if e["name"].startswith(f"SERVE_REPLICA::{app}#")]
    for entry in replicas:
        ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=False)  # Serve starts another
    return time.monotonic() if replicas else None


async def _kill_replica_mid_reply(kind: str, plane: SimCallPlane, session_id: str) -> float | None:
    if await _wait_for(plane, session_id, _speaking_reply(1)) is None:
        return None
    await asyncio.sleep(0.3)
    return _kill_replicas(getattr(plane.handles, kind).app_name)


async def _kill_llm_replica_streaming(plane: SimCallPlane, session_id: str) -> float | None:
    """At the answer's first token: the rest of the stream dies with the replica."""
    def streaming(stats) -> bool:
        turn = stats.current_turn
        return turn is not None and bool(turn.llm_first_token_at) and not turn.drained_at

    if await _wait_for(plane, session_id, streaming) is None:
        return None
    return _kill_replicas(plane.handles.llm.app_name)


async def _kill_stt_replica_at_question(plane: SimCallPlane, session_id: str) -> float | None:
    """The question's final transcription is in flight (or about to be) when the replica dies."""
    if await _wait_for(plane, session_id, lambda s: s.current_turn is not None) is None:
        return None
    return _kill_replicas(plane.handles.stt.app_name)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("call_actor_mid_reply", "CallActor killed 1 s into an answer",
              [*_ask(LONG_QUESTION), *_ask(BILL_QUESTION)], _kill_call_actor_mid_reply),
        Fault("call_actor_thinking", "CallActor killed right after the caller's question",
              [*_ask(BILL_QUESTION), *_ask(BILL_QUESTION)], _kill_call_actor_thinking),
        Fault("supervisor_mid_reply", "CallSupervisor killed during an answer (Ray restarts it)",
              [*_ask(LONG_QUESTION), *_ask(BILL_QUESTION)], _kill_supervisor_mid_reply),
        Fault("llm_hang", "language model hangs; the fallback model answers",
              # A patient caller: the fillers leave ~1.2 s pauses (more on busy cores), which a
              # 0.9 s settle takes for the end of the answer (the next question would then
              # merge into this turn).
              [*_ask(PIX_QUESTION, settle_ms=4000), *_ask(BILL_QUESTION)], _hang_at_question),
        Fault("tts_replica_mid_reply", "TextToSpeech replica killed during an answer",
              [*_ask(LONG_QUESTION), *_ask(BILL_QUESTION)],
              lambda plane, sid: _kill_replica_mid_reply("tts", plane, sid)),
        Fault("llm_replica_mid_reply", "LanguageModel replica killed while it streams an answer",
              [*_ask(LONG_QUESTION), *_ask(BILL_QUESTION)], _kill_llm_replica_streaming),
        Fault("stt_replica_at_question", "SpeechToText replica killed as the caller's question ends",
              [*_ask(BILL_QUESTION), *_ask(BILL_QUESTION)], _kill_stt_replica_at_question),
    )
}


# ---------------------------------------------------------------- running and judging


async def run_fault(
    plane: SimCallPlane, fault: Fault, voice: CallerVoice, out_dir: Path, session_id: str, handles: ModelHandles
) -> FaultResult:
    """Place the fault's call, strike, and judge from the caller's recording."""
    await wait_for_deployments(handles)  # a replica an earlier fault killed is back
    scenario = fault_scenario(fault.name, fault.steps)
    injector = asyncio.create_task(fault.inject(plane, session_id))
    call = await place_call(plane, scenario, voice, out_dir, session_id, answer_timeout_s=20.0)
    struck_at, error = None, call.error
    if not injector.done():
        injector.cancel()  # its moment never came during the call
    elif injector.exception() is not None:
        error = error or f"injector: {type(injector.exception()).__name__}: {injector.exception()}"
    else:
        struck_at = injector.result()
    result = FaultResult(fault=fault.name, session_id=session_id, struck=struck_at is not None, error=error)
    if call.run is None or struck_at is None:
        result.outcome = "lost" if call.run is None else "not struck"
        return result
    await _judge(result, call, struck_at, handles)
    stats = await plane.supervisor.stats.remote()
    if fault.name.startswith("call_actor") and stats.last_failover_ms:
        result.recovery_ms = round(stats.last_failover_ms, 1)
    return result


async def wait_for_deployments(handles: ModelHandles, timeout_s: float = 120.0) -> bool:
    """Until every application behind `handles` runs with healthy replicas (bounded)."""
    from ray import serve

    apps = {h.app_name for h in (handles.stt, handles.llm, handles.tts, handles.llm_fallback) if h is not None}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = serve.status().applications
        if all(app in status and _healthy(status[app]) for app in apps):
            return True
        await asyncio.sleep(0.5)
    return False


def _healthy(app) -> bool:
    """Running, and every deployment's replicas all RUNNING (a killed one is being replaced)."""
    def name(value) -> str:
        return str(getattr(value, "value", value)).split(".")[-1]

    return name(app.status) == "RUNNING" and all(
        name(d.status) == "HEALTHY" and {name(state) for state in d.replica_states} <= {"RUNNING"}
        for d in app.deployments.values()
    )


async def _judge(result: FaultResult, call: SimCall, struck_at: float, handles: ModelHandles) -> None:
    run = call.run
    analysis = run.analysis
    t = (struck_at - recording_origin(run)) * 1000.0
    agent = analysis.agent_regions
    # The caller's side of the fault: the longest stretch without agent audio in the window
    # after it (the caller speaking again closes the window: then it is their turn).
    caller_next = next((r.start_ms for r in analysis.caller_regions if r.start_ms > t), analysis.call_end_ms)
    window_end = min(t + GAP_WINDOW_MS, caller_next, analysis.call_end_ms)
    result.gap_ms = _longest_mutual_silence([], agent, t, window_end)
    result.longest_silence_ms = _longest_mutual_silence(analysis.caller_regions, agent, t, analysis.call_end_ms)
    # What the caller heard from the fault on (the agent's next few seconds, transcribed).
    recording = CallRecording.load(run.wav_path)
    rate = recording.sample_rate
    heard_from = next((r.start_ms for r in agent if r.end_ms > t), None)
    if heard_from is not None:
        lo, hi = int(max(heard_from, t) * rate / 1000), int((max(heard_from, t) + HEARD_MS) * rate / 1000)
        result.heard = (await stt_transcriber(handles)(recording.track("rx")[lo:hi], rate)).strip()[:90]
    result.answered = sum(1 for lat in analysis.latencies if lat.caller_end_ms > t and lat.first_audio_ms is not None)
    record = call.record
    if record is not None and record.transferred_to:
        result.outcome = "human"
    elif run.ended_by == "caller":  # the scenario ran to its hang-up
        result.outcome = "continued" if result.answered else "no answer"
    else:
        result.outcome = "hung up by Theo" if run.ended_by == "agent" else str(run.ended_by)


def _longest_mutual_silence(caller: list[SpeechRegion], agent: list[SpeechRegion], start: float, end: float) -> float:
    spans = sorted((max(r.start_ms, start), min(r.end_ms, end)) for r in [*caller, *agent] if r.end_ms > start and r.start_ms < end)
    longest, cursor = 0.0, start
    for a, b in spans:
        longest = max(longest, a - cursor)
        cursor = max(cursor, b)
    return round(max(longest, end - cursor), 1)
