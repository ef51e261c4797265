"""Fuzzing the media plane's parsers: RTP, RTCP (compound), RFC 4733 telephone events,
and a live RtpSession fed hostile datagrams from its own peer's address.

Properties: a parser returns a packet or raises its typed error with a counter-name reason;
a session never raises, and counts every datagram it is given (as audio, a drop by reason,
a telephone event, comfort noise or RTCP).
"""

from __future__ import annotations

import asyncio
import struct
import typing

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theo_ray.media.rtcp import RtcpParseError, RtcpReason, parse_compound
from theo_ray.media.rtp import ParseReason, RtpPacket, RtpParseError, build_rtp, parse_rtp
from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.telephone_event import (
    TelephoneEventError,
    TelephoneEventReason,
    build_telephone_event,
    parse_telephone_event,
)


def _header(first: int, second: int, rest: bytes) -> bytes:
    return bytes([first, second]) + rest


# RTP-shaped bytes: a version-2 first byte most of the time, so the parser gets past it.
rtp_like = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.integers(0x80, 0xBF), st.integers(0, 255), st.binary(max_size=120)).map(lambda t: _header(*t)),
)
rtcp_like = st.one_of(
    st.binary(max_size=64),
    st.lists(
        st.tuples(st.integers(0x80, 0xBF), st.sampled_from([200, 201, 202, 203, 204, 207]),
                  st.integers(0, 12), st.binary(max_size=60)),
        min_size=1, max_size=4,
    ).map(lambda parts: b"".join(bytes([f, t]) + struct.pack("!H", w) + body for f, t, w, body in parts)),
)


@given(rtp_like)
@example(b"\x90\x00" + b"\x00" * 10 + b"\x00\x00\xff\xff")  # extension longer than the packet
@example(b"\xaf\x00" + b"\x00" * 10)  # 15 CSRCs announced, none there
def test_rtp_parses_or_names_why_not(data):
    try:
        packet = parse_rtp(data)
    except RtpParseError as err:
        assert err.reason in typing.get_args(ParseReason)
        return
    assert len(packet.payload) <= len(data) - 12
    assert 0 <= packet.payload_type <= 127


@given(st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.binary(max_size=160), st.booleans(), st.lists(st.integers(0, 2**32 - 1), max_size=15),
       st.integers(0, 255))
def test_rtp_round_trips(pt, seq, ts, ssrc, payload, marker, csrcs, padding):
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrcs), padding=padding)
    parsed = parse_rtp(build_rtp(packet))
    assert msgspec.structs.replace(parsed, padding=padding) == packet


@given(rtcp_like)
def test_rtcp_parses_or_names_why_not(data):
    try:
        packets = parse_compound(data)
    except RtcpParseError as err:
        assert err.reason in typing.get_args(RtcpReason)
        return
    assert isinstance(packets, list)


@given(st.binary(max_size=24))
def test_telephone_event_parses_or_names_why_not(payload):
    try:
        block = parse_telephone_event(payload)
    except TelephoneEventError as err:
        assert err.reason in typing.get_args(TelephoneEventReason)
        return
    assert 0 <= block.event <= 15 and 0 <= block.duration <= 0xFFFF


@given(st.integers(0, 15), st.booleans(), st.integers(0, 0xFFFF))
def test_telephone_event_round_trips(event, end, duration):
    block = parse_telephone_event(build_telephone_event(event, end, duration))
    assert (block.event, block.end, block.duration) == (event, end, duration)


def _counted(session: RtpSession) -> int:
    s = session.stats()
    drops = sum(msgspec.structs.asdict(s.drops).values())
    return s.packets_in + drops + s.telephone_event_packets + s.comfort_noise_packets + s.rtcp_in


@pytest.fixture(scope="module", params=[("PCMU", 0), ("G722", 9), ("L16/16000", 96)])
def live_session(request):
    """One started session per codec (telephone-event 101) whose peer is 127.0.0.1:40000."""
    codec, _ = request.param
    loop = asyncio.new_event_loop()
    session = RtpSession(host="127.0.0.1")
    loop.run_until_complete(session.start(codec, remote=("127.0.0.1", 40000), telephone_event_pt=101))
    yield loop, session
    loop.run_until_complete(session.stop())
    loop.close()


peer_datagram = st.one_of(
    rtp_like,
    rtcp_like,
    # Well-formed RTP of the stream's SSRC or another, the codec's type, DTMF, CN or other.
    st.tuples(st.sampled_from([0, 9, 96, 101, 13, 8]), st.integers(0, 0xFFFF), st.sampled_from([1, 2, 99]),
              st.binary(max_size=200))
    .map(lambda t: build_rtp(RtpPacket(t[0], t[1], t[1] * 160, t[2], t[3]))),
)


@given(st.lists(st.tuples(peer_datagram, st.sampled_from(["rtp", "rtcp"]),
                          st.sampled_from([("127.0.0.1", 40000), ("127.0.0.1", 40001), ("127.0.0.9", 40000)])),
                min_size=1, max_size=12))
def test_a_live_session_counts_every_hostile_datagram(live_session, datagrams):
    _, session = live_session
    for data, socket_kind, addr in datagrams:
        before = _counted(session)
        if socket_kind == "rtp":
            session._ingress.on_rtp(data, addr)
        else:
            session._ingress.on_rtcp_socket(data, addr)
        assert _counted(session) > before, (data, socket_kind, addr)
