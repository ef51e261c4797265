"""InviteScreen: the one rule that decides every new INVITE (pure function, no pjsua)."""

from __future__ import annotations

import pytest

from theo_ray.sip.invite import PeerFilter
from theo_ray.sip.invite_screen import PJSIP_MAX_PKT_LEN, Admitted, Refusal, message_body, screen_invite

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
PEERS = PeerFilter(["127.0.0.1"])
PREFERENCE = ["G722", "PCMU", "PCMA"]


def invite(body: str = SDP, *, ctype: str | None = "application/sdp", extra: tuple[str, ...] = (),
           length: int | None = None, method: str = "INVITE") -> str:
    lines = [
        f"{method} sip:theo@127.0.0.1:5080 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport",
        "Max-Forwards: 70",
        "From: <sip:1001@127.0.0.1>;tag=a",
        "To: <sip:theo@127.0.0.1>",
        "Call-ID: call-1",
        "CSeq: 1 INVITE",
        *extra,
    ]
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(body.encode()) if length is None else length}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def screen(text: str, **kwargs) -> Refusal | Admitted:
    return screen_invite(text, kwargs.pop("source", "127.0.0.1:5060"), PEERS, PREFERENCE, **kwargs)


def test_an_offer_is_admitted_with_its_codec():
    verdict = screen(invite())
    assert isinstance(verdict, Admitted) and not verdict.delayed_offer
    assert verdict.codec is not None and verdict.codec.encoding == "PCMU"


@pytest.mark.parametrize(
    "text",
    [
        invite(""),  # no body at all
        invite("", ctype=None),
        invite(SDP, length=0),  # Content-Length 0: pjsip sees no body, neither does Theo
        invite("\r\n", ctype="application/sdp"),
    ],
)
def test_no_usable_body_is_a_delayed_offer(text):
    verdict = screen(text)
    assert isinstance(verdict, Admitted) and verdict.delayed_offer and verdict.offer is None


@pytest.mark.parametrize(
    ("text", "code", "counter"),
    [
        (invite(ctype=None), 400, "malformed_invite"),  # SDP without Content-Type: pjsip sees no offer
        (invite("hello", ctype="text/plain"), 415, "unsupported_body"),
        (invite(extra=("Content-Encoding: gzip",)), 415, "unsupported_body"),
        (invite(length=len(SDP) + 50), 513, "too_large"),  # the datagram was cut
        (invite(extra=("Subject: " + "x" * 4500,)), 513, "too_large"),
        (invite(extra=("Call-ID: other",)), 400, "malformed_invite"),  # pjsip reads the last, Theo the first
        (invite(extra=("i: other",)), 400, "malformed_invite"),
        (invite(method="invite"), 501, "malformed_invite"),
        (invite(extra=()).replace("Max-Forwards: 70", "Max-Forwards: 0"), 483, "malformed_invite"),
        (invite(SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 ::1")), 488, "malformed_sdp"),
        # SRTP over plain SIP: its SDES keys would travel in clear (sip.srtp, tests/sip/test_srtp.py).
        (invite(SDP.replace("RTP/AVP 0", "RTP/SAVP 0")), 488, "srtp_refused"),
        (invite(SDP.replace("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", "m=audio 4000 RTP/AVP 18")), 488,
         "no_common_codec"),
        (invite(SDP + "".join(f"m=video {5000 + i} RTP/AVP 96\r\n" for i in range(16))), 488, "malformed_sdp"),
        (invite("v=1\r\n"), 400, "malformed_sdp"),
    ],
)
def test_unusable_invites_get_a_clean_refusal(text, code, counter):
    verdict = screen(text)
    assert isinstance(verdict, Refusal), verdict
    assert (verdict.code, verdict.counter) == (code, counter), verdict.detail


def test_strangers_get_403_before_anything_is_read():
    verdict = screen("garbage", source="10.9.9.9:5060")
    assert isinstance(verdict, Refusal) and verdict.code == 403


def test_a_full_shard_says_503_with_retry_after():
    verdict = screen(invite(), free_slots=0, retry_after_s=3)
    assert isinstance(verdict, Refusal) and verdict.code == 503
    assert verdict.headers == {"Retry-After": "3"}


def test_a_datagram_at_pjsips_buffer_size_is_too_large():
    text = invite()
    text = text.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nX-Pad: " + "p" * (PJSIP_MAX_PKT_LEN - len(text)))
    verdict = screen(text[:PJSIP_MAX_PKT_LEN])
    assert isinstance(verdict, Refusal) and verdict.code == 513


def test_the_body_is_bounded_by_content_length():
    assert message_body(invite("v=0\r\nextra", length=5)) == ("v=0\r\n", 5)
    assert message_body(invite("abc", length=-1))[1] is None
