"""SRTP keyed in the SDP (SDES): the policy (sip.srtp, srtp_over_udp), the a=crypto lines,
libsrtp protection with its drop counters, and a real pjsua2 caller offering SRTP over
SIP over TLS to a real gateway (SipUserAgent) on loopback."""

from __future__ import annotations

import asyncio
import base64
import struct

import pytest

from tests.sip.conftest import free_port
from tests.sip.raw_sip import send_and_read_final
from tests.sip.test_tls import PASSPHRASE
from tests.sip.tls_certs import make_pki
from theo_ray.media.media_stats import DropCounters
from theo_ray.media.srtp import SUITE, SrtpContext, SrtpKeys, new_key
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.sdes import SrtpRefused, answer_crypto, came_over_tls, keys_from_answer, negotiate_srtp, secure_offer
from theo_ray.sip.sdp import build_answer, parse_offer, SdpOrigin
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.tls import SipTlsSettings
from theo_ray.sip.user_agent import SipUserAgent

PLAIN = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
KEY = bytes(range(30))


def savp(*crypto: str) -> str:
    return PLAIN.replace("RTP/AVP", "RTP/SAVP") + "".join(f"a=crypto:{c}\r\n" for c in crypto)


def inline(key: bytes = KEY, suite: str = SUITE, tag: int = 1, extra: str = "") -> str:
    return f"{tag} {suite} inline:{base64.b64encode(key).decode()}{extra}"


def rtp(seq: int, payload: bytes = b"\xff" * 160, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def test_the_policy_decides_what_an_offer_gets():
    offer = parse_offer(savp(inline()))
    keys = negotiate_srtp(offer, "optional", over_tls=True, srtp_over_udp=False)
    assert keys is not None and keys.remote_key == KEY and len(keys.local_key) == 30 and keys.tag == 1
    assert negotiate_srtp(parse_offer(PLAIN), "optional", True, False) is None
    with pytest.raises(SrtpRefused, match="in clear"):
        negotiate_srtp(offer, "optional", over_tls=False, srtp_over_udp=False)
    assert negotiate_srtp(offer, "optional", over_tls=False, srtp_over_udp=True) is not None
    with pytest.raises(SrtpRefused, match="required"):
        negotiate_srtp(parse_offer(PLAIN), "required", True, False)
    with pytest.raises(SrtpRefused, match="off"):
        negotiate_srtp(offer, "off", True, False)
    # Theo keeps its key across re-offers.
    again = negotiate_srtp(offer, "optional", True, False, local_key=keys.local_key)
    assert again == keys


def test_only_usable_crypto_lines_are_taken():
    usable = inline(tag=7)
    offer = parse_offer(savp(
        inline(suite="AES_CM_128_HMAC_SHA1_32", tag=1),  # another suite
        inline(tag=2, extra="|2^20|1:4"),  # MKI
        f"3 {SUITE} inline:not-base64!",
        inline(key=KEY[:16], tag=4),  # short key
        usable,
    ))
    keys = negotiate_srtp(offer, "optional", True, False)
    assert keys is not None and keys.tag == 7
    with pytest.raises(SrtpRefused, match="no usable"):
        negotiate_srtp(parse_offer(savp(inline(tag=2, extra="|2^20|1:4"))), "optional", True, False)
    answer = build_answer(offer, offer.formats[0], "127.0.0.1", 5000, SdpOrigin(1), crypto=answer_crypto(keys))
    assert "m=audio 5000 RTP/SAVP 0" in answer
    assert keys_from_answer(parse_offer(answer), KEY).remote_key == keys.local_key
    assert base64.b64encode(keys.local_key).decode() not in repr(keys)  # keys stay out of logs


def test_secure_offer_and_the_via_check():
    offer = parse_offer(secure_offer(PLAIN, KEY))
    assert offer.secure and offer.crypto == [inline()]
    assert came_over_tls("INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9\r\n")
    assert not came_over_tls("INVITE sip:x SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9\r\n")


def test_tampered_replayed_and_short_packets_are_dropped_and_counted():
    theo_key, pbx_key = new_key(), new_key()
    theo_drops, pbx_drops = DropCounters(), DropCounters()
    theo = SrtpContext(SrtpKeys(SUITE, remote_key=pbx_key, local_key=theo_key), theo_drops)
    pbx = SrtpContext(SrtpKeys(SUITE, remote_key=theo_key, local_key=pbx_key), pbx_drops)
    packets = [pbx.protect(rtp(seq)) for seq in range(1, 4)]
    assert theo.unprotect(packets[0]) == rtp(1)
    tampered = bytearray(packets[1])
    tampered[20] ^= 0x01
    assert theo.unprotect(bytes(tampered)) is None and theo_drops.srtp_auth == 1
    assert theo.unprotect(packets[1]) == rtp(2)  # the genuine one still goes through
    assert theo.unprotect(packets[1]) is None and theo_drops.srtp_replay == 1
    assert theo.unprotect(b"\x80\x00") is None and theo_drops.srtp_other == 1
    assert theo.unprotect(rtp(9)) is None  # plain RTP on an SRTP call: no valid tag
    assert theo_drops.srtp_auth == 2
    report = theo.protect_rtcp(struct.pack("!BBHI", 0x80, 201, 1, 0x99))
    assert pbx.unprotect_rtcp(report) == struct.pack("!BBHI", 0x80, 201, 1, 0x99)


@pytest.fixture
async def srtp_gateway(router, tmp_path, monkeypatch):
    pki = make_pki(tmp_path / "pki", passphrase=PASSPHRASE)
    monkeypatch.setenv("THEO_SIP_TLS_KEY_PASSPHRASE", PASSPHRASE)
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    agent = SipUserAgent(SipSettings(port=free_port(), transports=["udp"], tls=tls, srtp="optional", log_level=1),
                         router)
    await agent.start()
    yield agent, pki
    await agent.stop()


async def test_an_srtp_offer_over_tls_is_answered_with_theos_key(srtp_gateway, router):
    gateway, pki = srtp_gateway
    host, port = gateway.addresses["tls"]
    caller_key = new_key()
    settings = CallerSettings(transport="tls", tls_ca_file=pki.ca_file, media="external", codecs=["PCMU"], srtp=True)
    async with SipCaller(settings) as caller:
        await caller.dial(f"sip:theo@{host}:{port};transport=tls", headers={"X-Theo-Session": "srtp-1"},
                          local_rtp_host="127.0.0.1", local_rtp_port=40100, srtp_key=caller_key)
        answered = await caller.wait_for("answered", 10)
        await caller.wait_for("confirmed", 5)
        answer = parse_offer(answered.sdp)
        setup = router.setups[0]
        assert answer.secure and setup.remote.srtp is not None
        assert setup.remote.srtp.remote_key == caller_key
        assert keys_from_answer(answer, caller_key).remote_key == setup.remote.srtp.local_key
        await caller.hangup()
        await caller.wait_for("disconnected", 5)
    assert gateway.stats().srtp_calls == 1


async def test_srtp_over_plain_sip_and_plain_rtp_when_required_get_488(router):
    settings = SipSettings(port=free_port(), transports=["udp"], srtp="required", log_level=1)
    agent = SipUserAgent(settings, router)
    await agent.start()
    try:
        port = agent.addresses["udp"][1]
        for body in (savp(inline()), PLAIN):
            line = await asyncio.to_thread(send_and_read_final, "INVITE", port, body=body)
            assert line.split()[1] == "488", line
        assert agent.stats().srtp_refused == 2 and not router.setups
    finally:
        await agent.stop()
    # srtp_over_udp: the operator accepts SDES keys in clear (a network of its own).
    agent = SipUserAgent(msgspec_replace(settings, port=free_port(), srtp_over_udp=True), router)
    await agent.start()
    try:
        line = await asyncio.to_thread(send_and_read_final, "INVITE", agent.addresses["udp"][1], body=savp(inline()))
        assert line.split()[1] == "200", line
        assert router.setups[-1].remote.srtp is not None
    finally:
        await agent.stop()


def msgspec_replace(struct_, **fields):
    import msgspec

    return msgspec.structs.replace(struct_, **fields)


def test_the_screen_applies_the_policy_to_the_initial_invite():
    from tests.sip.test_invite_screen import invite, screen
    from theo_ray.sip.invite_screen import Admitted, Refusal

    over_tls = invite(savp(inline())).replace("SIP/2.0/UDP", "SIP/2.0/TLS")
    verdict = screen(over_tls, srtp="optional")
    assert isinstance(verdict, Admitted) and verdict.srtp is not None and verdict.srtp.remote_key == KEY
    verdict = screen(invite(savp(inline())), srtp="optional")  # the same offer over UDP
    assert isinstance(verdict, Refusal) and (verdict.code, verdict.counter) == (488, "srtp_refused")
    verdict = screen(invite(body="", ctype=None), srtp="required")  # delayed offer: Theo's offer is plain
    assert isinstance(verdict, Refusal) and (verdict.code, verdict.counter) == (488, "srtp_refused")
    assert isinstance(screen(invite(PLAIN), srtp="optional"), Admitted)
