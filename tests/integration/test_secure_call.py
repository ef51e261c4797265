"""A real agent call over SIP over TLS with SRTP both ways: real plane (Ray, CallSupervisor,
a SipGateway shard process with its TLS listener, a CallActor with real STT/TTS and the
scripted LLM test double), certificates made in the test. The caller simulator's decoder
hears the greeting only if the CallActor's SRTP is right; its own SRTP must be right for the
agent to have heard the question (the record's transcript). A plain UDP call on the same
shard works as before."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tests.sip.tls_certs import make_pki
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.runtime.serve_apps import ModelHandles
from theo_ray.sim.call_dialer import dial_and_run
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.scenario import decode_scenario
from theo_ray.sim.sip_caller import CallerSettings
from theo_ray.sip.tls import SipTlsSettings

pytestmark = pytest.mark.slow

QUESTION = decode_scenario(
    """
name: secure_question
max_duration_s: 45
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 15000
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
GREETING_ONLY = decode_scenario(
    """
name: plain_greeting
max_duration_s: 30
steps:
  - action: wait_agent
    until: ends
    timeout_ms: 15000
    settle_ms: 600
  - action: hangup
"""
)


async def test_a_call_over_tls_with_srtp_hears_the_greeting_and_is_heard(
        ray_cluster, model_handles, scripted_llm, theo_config, tmp_path):
    pki = make_pki(tmp_path / "pki")  # no passphrase: the shard runs in a Ray worker
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    config = msgspec.structs.replace(theo_config, sip=msgspec.structs.replace(theo_config.sip, tls=tls, srtp="optional"))
    handles = ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts)
    voice = CallerVoice(tmp_path / "voice", CallerVoiceSettings(voice="jf_alpha"),
                        model_cache_dir=theo_config.paths.model_cache)
    secure = CallerSettings(media="external", codecs=["PCMU"], transport="tls", tls_ca_file=pki.ca_file, srtp=True)
    async with CallPlane(config, handles, label="secure", warm_pool_size=1, shards=1) as plane:
        result = await asyncio.wait_for(dial_and_run(
            plane.tls_uris[0], QUESTION, voice, tmp_path / "tls", headers={"X-Theo-Session": "tls-srtp-1"},
            caller_settings=secure), 120)
        assert result.ended_by == "caller", result.steps
        assert result.analysis.agent_turns, "no greeting was heard over SRTP"
        [latency] = result.analysis.latencies
        assert latency.first_audio_ms is not None, "the question got no answer"
        record = await plane.record("tls-srtp-1")
        assert record is not None and "fatura" in record.turns[0].caller_text.lower(), record
        stats = await plane.gateway_stats()
        assert sum(s.srtp_calls for s in stats) == 1
        # Plain UDP, plain RTP on the same shard.
        plain = await asyncio.wait_for(dial_and_run(
            plane.uri, GREETING_ONLY, voice, tmp_path / "udp", headers={"X-Theo-Session": "udp-plain-1"},
            caller_settings=CallerSettings(media="external", codecs=["PCMU"])), 90)
        assert plain.ended_by == "caller" and plain.analysis.agent_turns, plain.steps
        print(f"\nTLS+SRTP call: {len(result.analysis.agent_turns)} agent turns heard, first audio "
              f"{latency.first_audio_ms:.0f} ms; UDP call: {len(plain.analysis.agent_turns)} agent turns heard")
