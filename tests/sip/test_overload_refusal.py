"""A call the supervisor's overload guard refuses (a MediaAnswer with `refusal`), over real
SIP on loopback: the gateway answers 503 + the answer's Retry-After (never 486, never a
200 with nowhere to send media), counts it as rejected_overload, and still closes the call
at the router once, as for any call it set up."""

from __future__ import annotations

import asyncio

from tests.sip.conftest import SocketRouter, free_port
from tests.sip.raw_sip import request
from tests.sip.test_admission import SDP, _final_responses
from theo_ray.sip.messages import CallSetup, MediaAnswer
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.stats import refusals
from theo_ray.sip.user_agent import SipUserAgent


class OverloadedRouter(SocketRouter):
    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        self.setups.append(setup)
        return MediaAnswer("", 0, refusal="cpu", retry_after_s=7)


async def test_an_overload_refusal_is_a_503_with_retry_after_and_counted():
    router = OverloadedRouter()
    agent = SipUserAgent(SipSettings(port=free_port(), allowed_peers=["127.0.0.1"], log_level=1), router)
    await agent.start()
    message, sock = request("INVITE", agent.addresses["udp"][1], body=SDP,
                            headers={"X-Theo-Session": "overload.1"})
    try:
        port = agent.addresses["udp"][1]
        sock.sendto(message.encode(), ("127.0.0.1", port))
        [final] = await asyncio.to_thread(_final_responses, [(message, sock)], port, 10.0)
        assert final.startswith("SIP/2.0 503 "), final[:80]
        assert "\r\nRetry-After: 7" in final
        await router.wait(lambda: len(router.closed) == 1, 10)
        assert router.closed[0].session_id == "overload.1"
        stats = agent.stats()
        assert refusals(stats) == {"rejected_overload": 1}
        assert stats.answered == 0 and stats.active_calls == 0
    finally:
        sock.close()
        await agent.stop()
