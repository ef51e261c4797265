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
from theo_ray.sim.caller_runner import dial_and_run
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
        theo_config, call=msgspec.structs.replace(theo_config.call, reap_interval_s=1.0, orphan_grace_s=3.0)
    )
    plane = CallPlane(config, handles, label="sip-robust", warm_pool_size=1, shards=2)
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
