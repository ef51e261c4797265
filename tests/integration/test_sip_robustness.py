"""The SIP edge on a real plane (Ray, CallSupervisor, CallActors, real STT/TTS, the scripted
LLM test double): a delayed-offer call holds a conversation, and a gateway shard whose
process is SIGKILLed listens again within a second and takes the next call.

The judge is the caller simulator's recording and what Theo's own actors report.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import msgspec
import pytest

from tests.sip.test_shard_process import options_status
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.runtime.serve_apps import ModelHandles
from theo_ray.sim.call_dialer import dial_and_run
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.scenario import decode_scenario
from theo_ray.sim.sip_caller import CallerSettings

pytestmark = pytest.mark.slow

QUESTION = decode_scenario(
    """
name: delayed_offer_question
max_duration_s: 45
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 12000
    settle_ms: 600
  - action: say
    id: fatura
    text: "Oi, eu queria saber da minha fatura, por favor."
  - action: wait_agent
    until: ends
    timeout_ms: 20000
    settle_ms: 600
  - action: hangup
"""
)


@pytest.fixture
async def plane(ray_cluster, model_handles, scripted_llm, theo_config):
    handles = ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts)
    config = msgspec.structs.replace(
        theo_config,
        call=msgspec.structs.replace(theo_config.call, reap_interval_s=1.0, orphan_grace_s=3.0),
        sip=msgspec.structs.replace(theo_config.sip, ack_timeout_s=2.0, retry_after_s=1),
    )
    plane = CallPlane(config, handles, label="sip-robust", warm_pool_size=2, shards=2)
    await plane.start()
    yield plane
    await plane.stop()


@pytest.fixture(scope="module")
def voice(theo_config, tmp_path_factory):
    return CallerVoice(
        tmp_path_factory.mktemp("voice"), CallerVoiceSettings(voice="jf_alpha"),
        model_cache_dir=theo_config.paths.model_cache,
    )


async def no_active_calls(plane: CallPlane, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (await plane.supervisor.stats.remote()).active:
        assert time.monotonic() < deadline, await plane.supervisor.active_calls.remote()
        await asyncio.sleep(0.2)


async def test_a_delayed_offer_call_holds_a_conversation(plane, voice, tmp_path):
    """RFC 3261 section 13.2.1: the INVITE has no SDP, Theo offers in the 200 OK and the
    caller answers in the ACK; then greeting, question and answer go as on any call."""
    result = await asyncio.wait_for(dial_and_run(
        plane.uri, QUESTION, voice, tmp_path / "call", headers={"X-Theo-Session": "late-offer-1"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU", "G722"], delayed_offer=True),
    ), 90)
    assert result.ended_by == "caller", result.steps
    assert all(note.status == "done" for note in result.steps), result.steps
    assert result.analysis.agent_turns, "no greeting was heard"
    [latency] = result.analysis.latencies
    assert latency.first_audio_ms is not None, "the question got no answer"
    record = await plane.record("late-offer-1")
    assert record is not None and "fatura" in record.turns[0].caller_text.lower(), record
    assert "fatura" in record.turns[0].agent_text.lower(), record.turns[0]
    stats = await plane.gateway_stats()
    assert sum(s.delayed_offers for s in stats) == 1
    await no_active_calls(plane)


async def test_a_killed_shard_process_answers_within_a_second_and_takes_a_call(plane, voice, tmp_path):
    gateway = plane.gateways[1]
    status = await gateway.status.remote()
    port = status.addresses[0].port
    await asyncio.sleep(2.0)  # the standby has started and loaded pjsua2
    os.kill(status.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while await options_status(port, 0.05) != 200:
        assert time.monotonic() - killed_at < 1.0, "shard 1 did not answer OPTIONS within 1 s"
    print(f"\nshard 1 answering again {1000 * (time.monotonic() - killed_at):.0f} ms after SIGKILL")
    after = await gateway.status.remote()
    assert after.restarts == 1 and after.pid != status.pid and after.state == "listening"
    # Shard 0 never noticed.
    assert (await plane.gateways[0].status.remote()).restarts == 0
    result = await asyncio.wait_for(dial_and_run(
        plane.uri_for(1), QUESTION, voice, tmp_path / "after-kill", headers={"X-Theo-Session": "after-kill"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU"]),
    ), 90)
    assert result.ended_by == "caller" and result.analysis.latencies[0].first_audio_ms is not None, result.steps
    await no_active_calls(plane)


async def test_the_torture_catalogue_leaves_the_plane_whole(plane, voice, tmp_path):
    """Every odd or malformed message of the catalogue against shard 0 of a real plane; then
    every shard answers OPTIONS, no shard process died, no call is left, the refusals are
    counted, and a normal call gets its greeting and its answer."""
    from tests.sip.torture_catalogue import KNOWN_FAILURES, catalogue, run_catalogue

    status = await plane.gateways[0].status.remote()
    udp = next(a for a in status.addresses if a.transport == "udp")
    cases = catalogue(udp.host, udp.port)
    started = time.monotonic()
    # One case at a time: each answered case opens (and ends) a real CallActor, and on 2
    # cores a concurrent flood only measures pjsua's 4 call slots (past them pjsua answers
    # 486 itself; the in-process catalogue test runs 4 at a time against a fast router).
    results = await run_catalogue(cases, udp.host, udp.port, concurrency=1, timeout=6.0, deadline_s=900)
    shard0 = await plane.gateways[0].status.remote()
    # pjsua's own limit: 4 call slots per process, one taken by every INVITE until its
    # session really ends. When pjsua starts refusing (486, or 480 while the idle process is
    # recycled onto its standby) with no call up, the shard recycles itself when idle; the
    # cases that meet pjsua without a free slot are counted and printed, not hidden, and
    # must stay few. Every other outcome must be the catalogue's.
    starved = [r for r in results if not r.ok and r.name not in KNOWN_FAILURES
               and (r.final in (480, 486, 503) or r.final is None)]
    failures = [f"{r.name}: {r.why}" for r in results
                if not r.ok and r.name not in KNOWN_FAILURES and r not in starved]
    assert not failures, "\n".join(failures)
    print(f"\n{len(cases)} torture cases in {time.monotonic() - started:.0f} s; "
          f"finals: {sorted({r.final for r in results if r.final is not None})}; shard 0 recycled "
          f"{shard0.recycles} time(s), {len(starved)} case(s) met pjsua without a free slot: "
          f"{[r.name for r in starved]}")
    # Measured 10, 11, 17 and 12 of 331 in four runs alone, 34 in a full suite run (stop 28:
    # the never-ACKed and CANCEL cases hold pjsua's slots longer on a slower machine, and the
    # TCP cases after them met a recycling shard): a bound of 15 % keeps the test about the
    # plane staying whole, not about that second's timing.
    assert len(starved) <= 0.15 * len(cases), [r.name for r in starved]
    for gateway in plane.gateways:
        shard = await gateway.status.remote()
        assert shard.restarts == 0 and shard.state == "listening", shard  # 0 processes crashed
        port = next(a.port for a in shard.addresses if a.transport == "udp")
        assert await options_status(port, 1.0) == 200
    await no_active_calls(plane, timeout=20.0)  # never-ACKed ones released too
    stats = (await plane.gateway_stats())[0]
    refused = (stats.rejected_403 + stats.too_large + stats.malformed_invite + stats.unsupported_body
               + stats.malformed_sdp + stats.no_common_codec + stats.rejected_by_stack + stats.refused_methods)
    print(f"shard 0: {stats.rx_messages} messages received, {refused} refused, {stats.answered} answered, "
          f"{stats.ack_timeouts} ACK timeouts, {stats.rejected_full} full")
    # Counted across the recycled process too (up to its last poll): ~100 refusals measured.
    assert refused >= 60 and stats.ack_timeouts >= 1
    assert stats.rx_messages >= sum(len(c.messages) for c in cases if c.transport == "udp") // 2
    supervisor = await plane.supervisor.stats.remote()
    assert supervisor.active == 0 and supervisor.opened == supervisor.closed
    result = await asyncio.wait_for(dial_and_run(
        plane.uri, QUESTION, voice, tmp_path / "after-torture", headers={"X-Theo-Session": "after-torture"},
        caller_settings=CallerSettings(media="external", codecs=["G722", "PCMU"]),
    ), 90)
    assert result.ended_by == "caller" and result.analysis.agent_turns, result.steps
    assert result.analysis.latencies[0].first_audio_ms is not None, result.steps


async def test_a_call_no_shard_holds_is_reaped(plane):
    """The CallSupervisor's reaper: a CallActor whose dialog is gone (here: never existed)
    is ended within the grace + one interval, and counted."""
    from theo_ray.sip.messages import CallSetup, RemoteMedia

    setup = CallSetup(
        session_id="ghost-1", sip_call_id="ghost-1", caller_id="1", caller_name="",
        remote=RemoteMedia(host="127.0.0.1", port=9, codec="PCMU", payload_type=0, clock_rate=8000),
        gateway_name=plane.gateway_names[0],
    )
    await plane.supervisor.open_call.remote(setup)
    assert (await plane.supervisor.stats.remote()).active == 1
    await no_active_calls(plane, timeout=10.0)  # grace 3 s + interval 1 s
    stats = await plane.supervisor.stats.remote()
    assert stats.reaped == 1 and stats.closed == stats.opened
    record = await plane.supervisor.call_record.remote("ghost-1")
    assert record is not None and record.end_reason == "orphaned"


async def test_theo_call_reads_the_agent_side_from_the_plane(plane, voice, model_handles, theo_config, tmp_path):
    """What `theo call` adds to a call it placed on a Theo plane: the agent's record (by the
    X-Theo-Session it sent) gives intelligibility and first content audio; the plane's
    LanguageModel (the embedded llama.cpp one) gives a sentiment for every answered turn."""
    from theo_ray.cli.agent_side import AgentSide
    from theo_ray.sim.turn_transcripts import transcribe_agent_turns
    from theo_ray.sim.call_summary import outcome_of, stt_transcriber, with_agent_side_figures
    from theo_ray.sim.conversation_metrics import caller_texts_from_scenario, summarise_call
    from theo_ray.sim.recording import CallRecording

    result = await asyncio.wait_for(dial_and_run(
        plane.uri, QUESTION, voice, tmp_path / "call", headers={"X-Theo-Session": "agent-side-1"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU"]),
    ), 90)
    assert result.ended_by == "caller", result.steps
    heard = await transcribe_agent_turns(CallRecording.load(result.wav_path), result.analysis,
                                         stt_transcriber(model_handles))
    agent = AgentSide(theo_config, supervisor_name=plane.supervisor_name)
    try:
        assert agent.attach(), agent.reason
        record = await agent.record("agent-side-1")
        assert record is not None and record.ended_at, agent.reason
        summary = await summarise_call(
            "agent-side-1", result.analysis, outcome_of(result, record),
            caller_texts_from_scenario(result.analysis, QUESTION), heard, scenario=QUESTION,
            classify_sentiment=agent.sentiment(),
        )
        missing = await agent.record("no-such-call", timeout_s=0.5)
        assert missing is None and "no-such-call" in agent.reason
    finally:
        agent.close()
    import ray

    assert ray.is_initialized(), "AgentSide shut down a connection it did not open"
    summary = with_agent_side_figures(summary, record)
    assert summary.intelligibility.wer is not None and summary.intelligibility.wer <= 0.35, (
        summary.intelligibility, [t.text for t in summary.agent_turns], record.greeting_text)
    assert summary.first_content_audio.p50 is not None
    assert summary.sentiment_trajectory and None not in summary.sentiment_trajectory, summary.sentiment_errors
    await no_active_calls(plane)


LONG_SILENCE = decode_scenario(
    """
name: quiet_caller_after_greeting
max_duration_s: 60
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 12000
  - action: silence
    ms: 40000
  - action: hangup
"""
)


async def test_a_dialog_whose_call_actor_and_supervisor_died_together_is_hung_up(plane, voice, tmp_path):
    """A node-level crash: the CallActor and the CallSupervisor die at once, so the restarted
    supervisor has no actor to adopt and the shard still holds the dialog. The reaper hangs
    that dialog up (a BYE the caller receives) instead of leaving the caller in silence."""
    import ray

    async def crash_when_answered() -> float:
        while (actor := await plane.supervisor.call_actor.remote("dialog-orphan")) is None:
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)
        # The supervisor first: alive, it would replace the dead actor (failover) at once.
        ray.kill(plane.supervisor, no_restart=False)
        ray.kill(actor, no_restart=True)
        return time.monotonic()

    crash = asyncio.create_task(crash_when_answered())
    result = await asyncio.wait_for(dial_and_run(
        plane.uri, LONG_SILENCE, voice, tmp_path / "orphan", headers={"X-Theo-Session": "dialog-orphan"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU"]),
    ), 90)
    crashed_at = await crash
    ended_after = time.monotonic() - crashed_at
    assert result.ended_by == "agent", result.steps  # Theo's BYE, not the caller's hang-up at 40 s
    stats = await plane.supervisor.stats.remote()
    assert stats.dialogs_reaped == 1 and stats.active == 0, stats
    assert "dialog-orphan" not in await plane.gateways[0].active_sessions.remote()
    print(f"\norphan dialog hung up; the caller's call ended {ended_after:.1f} s after the crash")


async def test_a_call_whose_shard_process_dies_gets_a_bye_at_once(plane, voice, tmp_path):
    """The shard process holding a confirmed dialog is SIGKILLed mid-call: pjsip's dialog
    state dies with it, but the gateway kept what a BYE takes and sends it, so the caller's
    leg ends within a second (behind Asterisk: the dialplan's fallback to a human) instead
    of after the PBX's RTP timeout."""
    gateway = plane.gateways[1]

    async def kill_when_answered() -> float:
        while "shard-crash-bye" not in await gateway.active_sessions.remote():
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # confirmed, the greeting under way
        os.kill((await gateway.status.remote()).pid, signal.SIGKILL)
        return time.monotonic()

    killer = asyncio.create_task(kill_when_answered())
    result = await asyncio.wait_for(dial_and_run(
        plane.uri_for(1), LONG_SILENCE, voice, tmp_path / "crash-bye", headers={"X-Theo-Session": "shard-crash-bye"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU"]),
    ), 90)
    killed_at = await killer
    assert result.ended_by == "agent", result.steps  # Theo's BYE, not the caller's hang-up at 40 s
    ended_after = result.started_at_unix + result.duration_ms / 1000.0 - (time.time() - time.monotonic() + killed_at)
    assert ended_after < 2.0, f"the caller's leg ended {ended_after:.2f} s after the crash"
    status = await gateway.status.remote()
    assert status.restarts == 1 and status.dialogs_ended == 1, status
    await no_active_calls(plane)
    print(f"\nshard crash: the caller's leg ended {ended_after:.2f} s after SIGKILL (Theo's BYE)")
