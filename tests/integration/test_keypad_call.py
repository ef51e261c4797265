"""DTMF end to end: the caller simulator sends RFC 4733 keys in its RTP stream through a
real SIP call into a real plane (Ray, CallSupervisor, CallActor, real STT/TTS, the scripted
LLM); the entry reaches the model as typed text and "0" hands the caller to a human."""

from __future__ import annotations

import asyncio

import pytest

from theo_ray.runtime.call_plane import CallPlane
from theo_ray.runtime.serve_apps import ModelHandles
from theo_ray.sim.call_dialer import dial_and_run
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.scenario import decode_scenario
from theo_ray.sim.sip_caller import CallerSettings

pytestmark = pytest.mark.slow

KEYPAD = decode_scenario(
    """
name: keypad_entry_then_zero
max_duration_s: 60
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 15000
  - action: dtmf
    digits: "123#"
  - action: wait_agent
    until: starts
    timeout_ms: 20000
  - action: wait_agent
    until: ends
    timeout_ms: 20000
  - action: dtmf
    digits: "0"
  - action: wait_agent
    until: starts
    timeout_ms: 10000
  - action: wait_agent
    until: ends
    timeout_ms: 15000
  - action: hangup
    after_ms: 3000
"""
)


@pytest.fixture
async def plane(ray_cluster, model_handles, scripted_llm, theo_config):
    plane = CallPlane(theo_config, ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts),
                      label="keypad", warm_pool_size=1)
    await plane.start()
    yield plane
    await plane.stop()


async def test_keys_reach_the_model_and_zero_goes_to_a_human(plane, theo_config, tmp_path):
    voice = CallerVoice(tmp_path / "voice", CallerVoiceSettings(voice="pf_dora"),
                        model_cache_dir=theo_config.paths.model_cache)
    result = await asyncio.wait_for(dial_and_run(
        plane.uri, KEYPAD, voice, tmp_path / "call", headers={"X-Theo-Session": "keypad-1"},
        caller_settings=CallerSettings(media="external", codecs=["PCMU"]),
    ), 90)
    dtmf_steps = [n for n in result.steps if n.label in ("123#", "0")]
    assert [n.status for n in dtmf_steps] == ["done", "done"], result.steps
    record = await plane.record("keypad-1")
    assert record is not None and record.keys_pressed == 5, record
    typed = [t for t in record.turns if t.endpoint_rule == "keypad"]
    assert [t.caller_text for t in typed] == ["Digitei no teclado: 123"], record.turns
    assert typed[0].agent_text, typed[0]  # answered
    assert record.keypad_shortcuts == ["0"] and record.transferred_to, record
