"""The transfer flow end to end (GAP 6/15): the caller asks for a human, the agent says where
and why, playout drains, and only then the AmiBridge redirects the caller's channel.

Asterisk is not installable here: the PBX is the AMI test double
(tests/asterisk/fake_ami_server.py), spoken to by the real AmiBridge actor over TCP."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from theo_ray.actors.ami_bridge import AmiBridgeActor
from tests.conversation.harness import AgentCall
from tests.asterisk.fake_ami_server import FakeAsteriskAmi
from theo_ray.cli.asterisk_site import load_site_settings

pytestmark = pytest.mark.slow
SECRET = "transfer-test-secret"


async def test_transfer_runs_only_after_the_goodbye_was_played(theo_config, scripted_handles):
    pbx = FakeAsteriskAmi(users={"theo": SECRET})
    await pbx.start()
    bridge = None
    try:
        site = load_site_settings(None, [f"ami.port={pbx.port}", "ami.backoff_initial_s=0.05"])
        bridge = AmiBridgeActor.options(
            name="ami-bridge-transfer-test", runtime_env={"env_vars": {"THEO_AMI_SECRET": SECRET}}
        ).remote(site)
        assert (await bridge.start.remote()).logged_in
        session_id = pbx.add_inbound_call()
        config = msgspec.structs.replace(theo_config, call=msgspec.structs.replace(theo_config.call, use_ami=True))
        async with AgentCall(config, scripted_handles, "ami-bridge-transfer-test", session_id) as call:
            await call.prepare_speech("Eu quero falar com um atendente, por favor.")
            await call.wait_agent_start(0)
            await call.wait_agent_quiet()
            await call.say("Eu quero falar com um atendente, por favor.")
            redirected_at = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if pbx.caller_channel(session_id).context == "theo-transfer":
                    redirected_at = time.monotonic()
                    break
                await asyncio.sleep(0.01)
            assert redirected_at is not None, await call.record()
            record = await call.wait_turns(1)
            turn = record.turns[0]
            assert "transferir" in turn.agent_text and "atendente" in turn.agent_text
            (execution,) = turn.tools
            assert execution.call.name == "transfer_call" and execution.ok
            # Timestamps: first packet < all of it played out (drained) <= the redirect.
            assert turn.first_rtp_at < turn.drained_at <= execution.executed_at
            # ... and at the caller, the goodbye's last audio arrived before the Redirect.
            last_agent_audio = call.agent_active_since(turn.first_rtp_at)[-1]
            assert last_agent_audio <= redirected_at
            assert record.transferred_to == "atendimento"
    finally:
        if bridge is not None:
            await bridge.stop.remote()
        await pbx.stop()
