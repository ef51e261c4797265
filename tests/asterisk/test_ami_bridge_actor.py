"""The AmiBridge Ray actor end to end: a real local Ray, the fake PBX (test double) on
127.0.0.1 in this process, a transfer and a health query through the actor."""

from __future__ import annotations

import pytest

from tests.asterisk.conftest import SECRET

ray = pytest.importorskip("ray")


@pytest.mark.slow
async def test_actor_transfers_and_reports_health(pbx, ray_cluster):
    from theo_ray.actors.ami_bridge import AmiBridgeActor
    from theo_ray.conversation.call_control import AmiCallControl
    from theo_ray.cli.asterisk_site import load_site_settings

    settings = load_site_settings(None, [f"ami.port={pbx.port}", "ami.backoff_initial_s=0.05"])
    bridge = None
    try:
        bridge = AmiBridgeActor.options(runtime_env={"env_vars": {"THEO_AMI_SECRET": SECRET}}).remote(settings)
        health = await bridge.start.remote()
        assert health.logged_in, health.reason
        sid = pbx.add_inbound_call()
        outcome = await AmiCallControl(bridge, sid).transfer("atendimento", "pedido do cliente")
        assert outcome.ok, outcome.detail
        assert pbx.caller_channel(sid).context == "theo-transfer"
        stats = await bridge.stats.remote()
        assert stats.redirects == 1
        await bridge.stop.remote()
    finally:
        if bridge is not None:
            ray.kill(bridge)
