"""RFC 4028 session timers between the gateway and pjsua2 callers (GAP 8). Slow: ~65 s."""

from __future__ import annotations

import time

import pytest

from tests.sip.conftest import free_port
from tests.sip.test_gateway import uri
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.user_agent import SipUserAgent


def test_pjsip_refuses_min_se_below_the_rfc_floor():
    # Documented here because the test below can only be this fast: RFC 4028 and pjsip
    # put Min-SE at 90 s, and the non-refresher ends the call at SE - max(32, SE/3).
    assert SipSettings().min_se == 90


@pytest.mark.slow
async def test_refreshing_call_survives_and_silent_peer_is_torn_down(router):
    agent = SipUserAgent(
        SipSettings(port=free_port(), session_expires=90, min_se=90, session_timers="optional"),
        router,
    )
    await agent.start()
    timers = CallerSettings(media="external", session_expires=90, min_se=90)
    try:
        async with SipCaller(timers) as live, SipCaller(timers) as hung:
            await live.dial(uri(agent), headers={"X-Theo-Session": "live"},
                            local_rtp_host="127.0.0.1", local_rtp_port=40100)
            await hung.dial(uri(agent), headers={"X-Theo-Session": "hung"},
                            local_rtp_host="127.0.0.1", local_rtp_port=40102)
            await live.wait_for("confirmed", 10)
            await hung.wait_for("confirmed", 10)
            started = time.monotonic()
            # The hung caller stops all SIP work: no refresh at SE/2, no answers.
            await hung.go_silent(64)

            await router.wait(lambda: any(c.session_id == "hung" for c in router.closed), 80)
            elapsed = time.monotonic() - started
            ended = next(c for c in router.closed if c.session_id == "hung")
            assert ended.reason == "session_timer_expired"
            assert 55 <= elapsed <= 70, elapsed
            # The refreshing call is still up and did refresh (caller is refresher at SE/2).
            assert agent.active_sessions() == ["live"]
            stats = agent.stats()
            assert stats.timers_expired == 1 and stats.refreshes_answered >= 1
            # Once the hung caller wakes up, pjsip's retransmitted BYE reaches it.
            await hung.wait_for("bye_received", 15)
            await live.hangup()
            await live.wait_for("disconnected", 5)
    finally:
        await agent.stop()
    assert sorted(c.reason for c in router.closed) == ["caller_bye", "session_timer_expired"]
    print(f"timer expiry after {elapsed:.1f} s; refreshes answered: {stats.refreshes_answered}")
