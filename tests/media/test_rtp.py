"""RTP packet build/parse (RFC 3550 5.1) and the typed parse errors."""

from __future__ import annotations

import struct

import pytest

from theo_ray.media.rtp import RtpPacket, RtpParseError, build_rtp_fast, looks_like_rtcp, parse_rtp


def test_round_trip_every_header_field():
    packet = RtpPacket(
        payload_type=96,
        sequence=65535,
        timestamp=0xFFFFFFF0,
        ssrc=0xDEADBEEF,
        payload=b"\x01\x02\x03",
        marker=True,
        csrcs=(1, 2),
        extension_profile=0xBEDE,
        extension=b"\x10\xaa\x00\x00",
        padding=4,
    )
    data = packet.to_bytes()
    assert len(data) == 12 + 8 + 4 + 4 + 3 + 4
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    parsed = parse_rtp(data)
    assert parsed == RtpPacket(
        payload_type=96, sequence=65535, timestamp=0xFFFFFFF0, ssrc=0xDEADBEEF, payload=b"\x01\x02\x03",
        marker=True, csrcs=(1, 2), extension_profile=0xBEDE, extension=b"\x10\xaa\x00\x00",
    )


def test_fast_builder_matches_struct_builder():
    fast = build_rtp_fast(0, 7, 160, 42, b"\xff" * 160, True)
    assert fast == RtpPacket(0, 7, 160, 42, b"\xff" * 160, marker=True).to_bytes()
    assert parse_rtp(fast).marker and parse_rtp(fast).sequence == 7


def header(first=0x80, second=0, seq=1, ts=0, ssrc=1):
    return struct.pack("!BBHII", first, second, seq, ts, ssrc)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "short"),
        (b"\x80\x00\x00", "short"),
        (header()[:11], "short"),
        (header(first=0x40) + b"x", "bad_version"),
        (header(first=0x00) + b"x", "bad_version"),
        (header() + b"\x00" * 2000, "oversized"),
        (header(first=0x80 | 3) + b"\x00" * 8, "bad_csrc"),
        (header(first=0x90), "bad_extension"),
        (header(first=0x90) + struct.pack("!HH", 0xBEDE, 5) + b"\x00" * 4, "bad_extension"),
        (header(first=0xA0) + b"ab\x00", "bad_padding"),
        (header(first=0xA0) + b"ab\x09", "bad_padding"),
    ],
)
def test_malformed_packets_raise_typed_reason(data, reason):
    with pytest.raises(RtpParseError) as err:
        parse_rtp(data)
    assert err.value.reason == reason


def test_header_only_packet_is_valid_with_empty_payload():
    assert parse_rtp(header()).payload == b""


def test_rtcp_mux_detection():
    assert looks_like_rtcp(bytes([0x81, 201]) + b"\x00\x01" + b"\x00" * 4)
    assert not looks_like_rtcp(build_rtp_fast(0, 1, 1, 1, b"", False))
    assert not looks_like_rtcp(build_rtp_fast(9, 1, 1, 1, b"", True))
