"""Fuzzing the SIP edge's own parsers: SDP offers, the INVITE screen, the From reader and
the BYE Theo builds from a stored INVITE. Each input is a valid message with its lines
dropped, doubled, extended or given a tricky field; the property: a typed answer
(SdpError / a Refusal / an Admitted INVITE), never another exception.

Found by these tests and fixed: "²" (isdigit() but not int()) in an m= port, payload
type, rtpmap rate/channels, Session-Expires or CSeq, and "a=ptime:inf", each raised
ValueError/OverflowError inside pjsua's INVITE callback; an empty CSeq raised IndexError
when an unACKed call was released.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theo_ray.sip.dialog_release import release_bye
from theo_ray.sip.invite import PeerFilter, parse_from, parse_invite
from theo_ray.sip.invite_screen import Admitted, Refusal, screen_invite
from theo_ray.sip.sdp import SdpError, SdpOrigin, build_answer, choose_codec, parse_offer

from tests.security.strategies import mutated_lines, token, wire_text

VALID_SDP = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 4000 RTP/AVP 9 0 8 96 101",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:96 L16/16000/1",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
    "m=video 5000 RTP/AVP 96",
]
PREFERENCE = ["G722", "PCMU", "PCMA", "L16"]


def _offer_or_error(text: str) -> None:
    try:
        offer = parse_offer(text)
        codec = choose_codec(offer, PREFERENCE)
    except SdpError:
        return
    # What the gateway does next with an accepted offer must not fail either.
    answer = build_answer(offer, codec, "127.0.0.1", 40000, SdpOrigin(7))
    assert parse_offer(answer).audio_port == 40000
    assert 0 <= offer.audio_port <= 65535
    assert all(0 <= f.payload_type <= 127 for f in offer.formats)


@given(mutated_lines(VALID_SDP), st.sampled_from(["\r\n", "\n"]))
@example(["v=0", "c=IN IP4 127.0.0.1", "m=audio 4000 RTP/AVP 0", "a=ptime:inf"], "\r\n")
@example(["v=0", "c=IN IP4 127.0.0.1", "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/²"], "\r\n")
@example(["v=0", "c=IN IP4 127.0.0.1", "m=audio ² RTP/AVP 0"], "\r\n")
def test_sdp_offer_parses_or_is_refused_with_a_reason(lines, eol):
    _offer_or_error(eol.join(lines) + eol)


@given(st.text(max_size=300))
def test_sdp_of_random_text_is_refused_with_a_reason(text):
    _offer_or_error(text)


def _invite(headers: list[str], body: str) -> str:
    return "\r\n".join(headers) + "\r\n\r\n" + body


VALID_HEADERS = [
    "INVITE sip:theo@127.0.0.1:5080 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1;rport",
    "Max-Forwards: 70",
    'From: "Ana" <sip:1001@127.0.0.1>;tag=abc',
    "To: <sip:theo@127.0.0.1:5080>",
    "Call-ID: fuzz-1@127.0.0.1",
    "CSeq: 1 INVITE",
    "Contact: <sip:1001@127.0.0.1:5999>",
    "X-Theo-Session: s-1",
    "Session-Expires: 1800;refresher=uac",
    "Content-Type: application/sdp",
]
PEERS = PeerFilter(["127.0.0.1"])


@given(mutated_lines(VALID_HEADERS), mutated_lines(VALID_SDP), st.sampled_from(["exact", "none", "off"]),
       st.sampled_from(["127.0.0.1:5999", "10.0.0.9:5060", "[::1]:5060", "garbage", ""]))
@example(VALID_HEADERS + ["Session-Expires: ²"], VALID_SDP, "exact", "127.0.0.1:5999")
@example([h for h in VALID_HEADERS if not h.startswith("CSeq")] + ["CSeq:"], VALID_SDP, "exact", "127.0.0.1:5999")
def test_invite_screen_always_decides(headers, sdp_lines, length_mode, source):
    body = "\r\n".join(sdp_lines) + "\r\n"
    if length_mode == "exact":
        headers = [*headers, f"Content-Length: {len(body.encode('utf-8', 'surrogateescape'))}"]
    elif length_mode == "off":
        headers = [*headers, "Content-Length: 1" + "0" * 40]
    text = _invite(headers, body)
    verdict = screen_invite(text, source, PEERS, PREFERENCE, free_slots=2)
    assert isinstance(verdict, (Refusal, Admitted))
    if isinstance(verdict, Refusal):
        assert 400 <= verdict.code <= 599 and verdict.counter
    else:
        assert verdict.info.call_id
    info = parse_invite(text)
    assert info.session_expires >= 0
    # The BYE Theo would send to release this call if it were never ACKed.
    bye = release_bye(text, "tag1", "sip:x@127.0.0.1", "127.0.0.1", 5080)
    assert bye.startswith(b"BYE ")


@given(wire_text, token)
def test_from_header_reader_never_raises(prefix, value):
    display, user = parse_from(prefix + value)
    assert isinstance(display, str) and isinstance(user, str)


@pytest.mark.parametrize("value", ["²", "٣", "1_000", " 12 ", "9" * 40])
def test_content_length_is_read_as_pjsip_reads_it(value):
    text = _invite(VALID_HEADERS + [f"Content-Length: {value}"], "\r\n".join(VALID_SDP) + "\r\n")
    verdict = screen_invite(text, "127.0.0.1:5999", PEERS, PREFERENCE)
    assert isinstance(verdict, (Refusal, Admitted))
