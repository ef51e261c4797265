"""Fault: the media path dies mid-answer without a BYE (an RTP blackhole: a network or a
PBX that lost the call). Real Ray, real SIP/RTP over loopback, real STT/TTS, the scripted
language model; the line between caller and agent is the simulator's relay, told to carry
nothing either way from the fault on. Nobody can hear anything after it, so the judge is
the call itself: Theo notices the silence of the line (`conversation.no_media_hangup_s`,
shortened here), ends the call with a BYE (reason `no_media`), and leaves nothing behind
(the supervisor counts no live call; the zero-zombie check of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from theo_ray.bench.sim_calls import SimCallPlane
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.call_dialer import dial_and_run
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.impaired_line import ImpairedLine, LineSettings
from theo_ray.sim.scenario import Hangup, Say, Scenario, WaitAgent

pytestmark = pytest.mark.slow
NO_MEDIA_S = 4.0


async def test_a_dead_media_path_is_hung_up_after_the_no_media_limit(
    ray_cluster, model_handles, scripted_llm, theo_config, tmp_path
):
    conversation = msgspec.structs.replace(theo_config.conversation, no_media_hangup_s=NO_MEDIA_S)
    handles = ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts)
    plane = SimCallPlane(theo_config, conversation, handles, "blackhole", warm_pool_size=1)
    await plane.start()
    try:
        voice = CallerVoice(tmp_path / "voice", CallerVoiceSettings(voice="pm_santa"),
                            model_cache_dir=theo_config.paths.model_cache)
        scenario = Scenario(name="rtp_blackhole", max_duration_s=90.0, steps=[
            WaitAgent(until="ends", timeout_ms=20000),
            Say(text="Qual é o horário de atendimento?"),
            WaitAgent(until="starts", timeout_ms=30000),
            WaitAgent(until="ends", timeout_ms=40000, settle_ms=30000),  # the line is dead: wait for Theo's BYE
            Hangup(after_ms=300),
        ])
        line = ImpairedLine(LineSettings())
        session_id = "blackhole-1"
        struck: list[float] = []

        async def strike() -> None:
            while True:  # the agent's answer has started reaching the caller
                stats = await plane.supervisor.call_stats.remote(session_id)
                if stats is not None and stats.current_turn is not None and stats.current_turn.first_rtp_at:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            line.blackhole()
            struck.append(time.monotonic())

        striker = asyncio.create_task(strike())
        run = await dial_and_run(plane.uri, scenario, voice, tmp_path, headers={"X-Theo-Session": session_id},
                                 answer_timeout_s=20.0, name=session_id, line=line)
        ended = time.monotonic()
        await asyncio.wait_for(striker, 5)
        assert run.ended_by == "agent", run.ended_by  # Theo's BYE, not the scenario's hang-up
        after_s = ended - struck[0]
        print(f"\nRTP blackhole: Theo's BYE {after_s:.1f} s after the line died (limit {NO_MEDIA_S} s); "
              f"dropped {line.stats.dropped_to_agent} to the agent, {line.stats.dropped_to_caller} to the caller")
        assert NO_MEDIA_S - 0.5 <= after_s <= NO_MEDIA_S + 6.0, after_s
        record = await plane.record(session_id)
        assert record is not None and record.end_reason == "no_media", record and record.end_reason
        assert line.stats.dropped_to_caller > 0  # the agent went on sending into the void
        for _ in range(50):  # the supervisor has let the call go
            if not (await plane.supervisor.stats.remote()).active:
                break
            await asyncio.sleep(0.1)
        assert not (await plane.supervisor.stats.remote()).active
    finally:
        await plane.stop()
