"""The overload guard on a real echo call plane: with `call.overload.max_calls_when_pool_empty`
at 1 and no warm pool, a second call while the first is live gets 503 + Retry-After from
the shard (the CallSupervisor refused it; no CallActor opened), counted in the gateway's and
the supervisor's stats; once the first call ended the next one is answered again."""

from __future__ import annotations

import msgspec
import pytest

from theo_ray.bench.media_bench import EchoCallPlane, LoopbackCall
from theo_ray.conversation.overload_guard import OverloadSettings

pytestmark = pytest.mark.slow


async def test_a_call_beyond_the_overload_guard_gets_503_and_is_counted(ray_cluster, theo_config):
    # The CPU rule stays on (at 100 %: only a saturated node refuses by it) so that the
    # supervisor's sampling task is seen working.
    overload = OverloadSettings(cpu_percent=100.0, max_calls_when_pool_empty=1, retry_after_s=3)
    config = msgspec.structs.replace(theo_config, call=msgspec.structs.replace(theo_config.call, overload=overload))
    async with EchoCallPlane(config, warm_pool_size=0) as plane:
        first = LoopbackCall("it-overload-a", config.media)
        refused = LoopbackCall("it-overload-b", config.media)
        after = LoopbackCall("it-overload-c", config.media)
        try:
            await first.dial(plane.uri_for(0))
            with pytest.raises(RuntimeError, match="SIP 503"):
                await refused.dial(plane.uri_for(0))
            await first.hangup()
            await after.dial(plane.uri_for(0))  # no call live: admitted again
            await after.hangup()
            [gateway] = await plane.gateway_stats()
            supervisor = await plane.supervisor.stats.remote()
        finally:
            for line in (first, refused, after):
                await line.close()
    assert gateway.rejected_overload == 1 and gateway.answered == 2
    assert sum(supervisor.overload_refusals.values()) == 1  # "pool", or "cpu" on a saturated node
    assert 0.0 < supervisor.cpu_percent <= 100.0  # sampled in the actor, off its call path
    assert supervisor.opened == 2
