"""Admission control, over real SIP on loopback: a flood of INVITEs from one source gets
503 + Retry-After (never 486, never silence), while a call from another source (the
project's own pjsua2 caller on 127.0.0.2) is still answered; every refusal is counted.
The token bucket and the per-source cap are also tested alone, in virtual time."""

from __future__ import annotations

import asyncio
import select
import time

import pytest

from tests.sip.conftest import free_port
from tests.sip.raw_sip import _ack_for, request
from theo_ray.errors import ConfigError
from theo_ray.sip.admission import AdmissionControl, AdmissionSettings, TokenBucket
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.stats import refusals
from theo_ray.sip.user_agent import SipUserAgent
from theo_ray.sim.sip_caller import CallerSettings, SipCaller

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
FLOOD = 40  # INVITEs from one source, sent within ~1 s


def test_token_bucket_refills_at_its_rate_and_keeps_at_most_its_burst():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token came back in 0.5 s
    assert bucket.take(100.0) == 0.0  # a long pause saves up the burst, no more
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


def test_admission_refuses_by_reason_with_retry_after():
    control = AdmissionControl(
        AdmissionSettings(invites_per_s_per_source=1.0, invite_burst_per_source=2, invites_per_s=1.0,
                          invite_burst=3, max_calls_per_source=1),
        shard_max_calls=3, retry_after_s=2,
    )
    assert control.check("10.0.0.1", 0.0, 0) is None
    held = control.check("10.0.0.1", 0.0, 1)
    assert (held.code, held.counter, held.headers) == (503, "refused_source_calls", {"Retry-After": "2"})
    rate = control.check("10.0.0.1", 0.1, 0)
    assert (rate.code, rate.counter, rate.headers) == (503, "refused_source_rate", {"Retry-After": "1"})
    assert control.check("10.0.0.2", 0.1, 0) is None  # another source has its own bucket
    shard = control.check("10.0.0.3", 0.1, 0)  # the shard's burst of 3 is spent
    assert (shard.code, shard.counter) == (503, "refused_global_rate")


@pytest.mark.parametrize("key, value", [("invites_per_s", -1.0), ("invites_per_s", float("inf")),
                                        ("invite_burst", 0), ("max_calls_per_source", -1)])
def test_admission_settings_refuse_nonsense(key, value):
    with pytest.raises(ConfigError, match=f"sip.admission.{key}"):
        AdmissionSettings(**{key: value})


def _final_responses(sockets: list, port: int, deadline_s: float) -> list[str]:
    """The first final response each socket gets (ACKed, as a caller would), '' if none came."""
    finals: dict[int, str] = {}
    messages = {id(sock): message for message, sock in sockets}
    socks = [sock for _, sock in sockets]
    deadline = time.monotonic() + deadline_s
    while len(finals) < len(socks) and time.monotonic() < deadline:
        ready, _, _ = select.select([s for s in socks if id(s) not in finals], [], [], 0.2)
        for sock in ready:
            data = sock.recv(65535).decode(errors="replace")
            code = int(data.split(" ", 2)[1])
            if code >= 200:
                finals[id(sock)] = data
                sock.sendto(_ack_for(messages[id(sock)], data).encode(), ("127.0.0.1", port))
    return [finals.get(id(s), "") for s in socks]


async def test_a_flood_from_one_source_gets_503_retry_after_while_another_source_is_answered(router):
    settings = SipSettings(
        port=free_port(), allowed_peers=["127.0.0.0/8"], max_calls=3,
        admission=AdmissionSettings(invites_per_s_per_source=5.0, invite_burst_per_source=5,
                                    invites_per_s=100.0, invite_burst=100, max_calls_per_source=2),
    )
    agent = SipUserAgent(settings, router)
    await agent.start()
    caller = SipCaller(CallerSettings(host="127.0.0.2", media="external"))
    sockets = []
    try:
        port = agent.addresses["udp"][1]
        started = time.monotonic()
        for i in range(FLOOD):
            message, sock = request("INVITE", port, body=SDP, headers={"X-Theo-Session": f"flood.{i}"})
            sock.sendto(message.encode(), ("127.0.0.1", port))
            sockets.append((message, sock))
            await asyncio.sleep(0.025)  # 40/s
        sent_s = time.monotonic() - started
        finals = await asyncio.to_thread(_final_responses, sockets, port, 10.0)
        codes = [int(f.split(" ", 2)[1]) if f else 0 for f in finals]
        assert 0 not in codes, codes  # every INVITE was answered
        assert 486 not in codes, codes
        assert codes.count(200) == 2, codes  # max_calls_per_source
        refused = [f for f, c in zip(finals, codes, strict=True) if c == 503]
        assert len(refused) == FLOOD - 2, codes
        assert all("\r\nRetry-After: " in f for f in refused)
        # The other source, a real pjsua2 user agent on 127.0.0.2, still gets its call.
        await caller.start()
        await caller.dial(f"sip:theo@127.0.0.1:{port}", headers={"X-Theo-Session": "other.1"},
                          local_rtp_host="127.0.0.2", local_rtp_port=41200)
        answered = await caller.wait_for("confirmed", 10)
        assert answered is not None
        stats = agent.stats()
        counted = refusals(stats)
        assert counted.get("refused_source_rate", 0) + counted.get("refused_source_calls", 0) == FLOOD - 2
        assert counted.get("refused_source_rate", 0) > 0 and counted.get("refused_source_calls", 0) > 0
        assert stats.answered == 3 and stats.active_calls == 3 and stats.rejected_by_stack == 0
        print(f"flood: {FLOOD} INVITEs in {sent_s:.2f} s -> 200 x {codes.count(200)}, 503 x {len(refused)}; "
              f"refusals {counted}; 127.0.0.2 answered")
        await caller.hangup()
    finally:
        await caller.close()
        for _, sock in sockets:
            sock.close()
        await agent.stop()
    await router.wait(lambda: len(router.closed) == len(router.setups), 10)
    assert router.sockets == {}
