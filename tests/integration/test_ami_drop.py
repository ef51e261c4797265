"""Fault: the AMI connection drops mid-call, then the caller asks for a human.

Asterisk cannot run here: the PBX's manager port is the AMI test double
(tests/asterisk/fake_ami_server.py, fault injection), which the plane's real AmiBridge logs
in to and which then goes away (its connections dropped, its port closed). Everything else
is real: Ray, the SIP gateway, RTP over loopback, the STT/TTS deployments, the scripted
language model's transfer rule. Judged at the caller: the agent says where it is sending
them, and then Theo's BYE ends the AI leg — which the rendered dialplan answers by taking
the caller to its fallback route (a human) — instead of an agent that can neither transfer
nor hang up."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from theo_ray.bench.sim_calls import SimCallPlane, place_call
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.scenario import Hangup, Say, Scenario, WaitAgent

from tests.asterisk.fake_ami_server import FakeAsteriskAmi

pytestmark = pytest.mark.slow
SECRET = "ami-drop-test-secret"


async def test_ami_down_at_transfer_time_ends_the_ai_leg_for_the_dialplan_fallback(
    ray_cluster, model_handles, scripted_llm, theo_config, tmp_path
):
    pbx = FakeAsteriskAmi(users={"theo": SECRET})
    await pbx.start()
    secret_file = tmp_path / "ami_secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    ami = msgspec.structs.replace(theo_config.asterisk.ami, port=pbx.port, secret_file=str(secret_file),
                                  backoff_initial_s=0.05, backoff_max_s=0.5)
    config = msgspec.structs.replace(theo_config, asterisk=msgspec.structs.replace(theo_config.asterisk, ami=ami))
    handles = ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts)
    plane = SimCallPlane(config, config.conversation, handles, "ami-drop", warm_pool_size=1, use_ami=True)
    await plane.start()
    try:
        assert (await plane.ami_bridge.health.remote()).logged_in
        session_id = pbx.add_inbound_call()
        voice = CallerVoice(tmp_path / "voice", CallerVoiceSettings(voice="pf_dora"),
                            model_cache_dir=theo_config.paths.model_cache)
        scenario = Scenario(name="ami_drop_then_human", max_duration_s=90.0, steps=[
            WaitAgent(until="ends", timeout_ms=20000),
            Say(text="Eu preciso falar com um atendente, por favor."),
            # The goodbye may come in pieces on a busy machine: a long settle waits them all
            # out; Theo's BYE is expected to end the call inside this wait.
            WaitAgent(until="ends", timeout_ms=45000, settle_ms=8000, min_speech_ms=1500),
            Hangup(after_ms=300),
        ])

        async def drop_ami() -> float:
            while not (await plane.supervisor.call_stats.remote(session_id)):
                await asyncio.sleep(0.1)
            pbx.drop_connections()
            await pbx.stop()
            return time.monotonic()

        dropper = asyncio.create_task(drop_ami())
        call = await place_call(plane, scenario, voice, tmp_path, session_id, answer_timeout_s=20.0)
        await asyncio.wait_for(dropper, 5)
        assert call.run is not None, call.error
        record = call.record
        assert record is not None
        told = [(t.caller_text, t.agent_text, [(x.call.name, x.ok, x.detail) for x in t.tools]) for t in record.turns]
        assert call.run.ended_by == "agent", (call.run.ended_by, record.errors, told, record.transferred_to)
        (turn,) = [t for t in record.turns if t.tools]
        (execution,) = turn.tools
        assert execution.call.name == "transfer_call" and execution.ok, execution
        assert "dialplan fallback" in execution.detail, execution.detail
        assert record.transferred_to == "atendimento"
        # At the caller: the agent's last words, then the BYE soon after — no silence left.
        analysis = call.run.analysis
        last_agent_ms = max(r.end_ms for r in analysis.agent_regions)
        gap_ms = analysis.call_end_ms - last_agent_ms
        print(f"\nAMI drop: BYE {gap_ms:.0f} ms after the agent's last audio; {execution.detail}")
        assert gap_ms < 4000, gap_ms  # the AMI's own action timeout (2 s) is inside this
    finally:
        await plane.stop()
        await pbx.stop()
