"""RTP packets (RFC 3550 section 5.1): parse one datagram, build one datagram.

Parsing is strict: anything that is not a well-formed RTP version-2 packet raises
`RtpParseError` whose `reason` is one of a fixed set of short strings, so the
caller can count drops by reason instead of crashing.
Written by hand (not a library) because the fixed header is 12 bytes of `struct`
and the per-packet cost must stay in the microseconds.
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")
# An Ethernet MTU minus IPv4 and UDP headers: bigger datagrams never come from a sane PBX.
MAX_DATAGRAM = 1472

ParseReason = Literal["short", "bad_version", "oversized", "bad_padding", "bad_extension", "bad_csrc"]


class RtpParseError(ValueError):
    """A datagram is not a valid RTP packet; `reason` is a counter name."""

    def __init__(self, reason: ParseReason) -> None:
        super().__init__(reason)
        self.reason: ParseReason = reason


class RtpPacket(msgspec.Struct, frozen=True):
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    # Header extension (RFC 3550 5.3.1): profile-defined 16 bits + data (multiple of 4 bytes).
    extension_profile: int | None = None
    extension: bytes = b""
    # Padding bytes to append when building (the parser strips padding and keeps 0).
    padding: int = 0

    def to_bytes(self) -> bytes:
        return build_rtp(self)


def build_rtp(packet: RtpPacket) -> bytes:
    has_ext = packet.extension_profile is not None
    first = (
        (RTP_VERSION << 6)
        | (0x20 if packet.padding else 0)
        | (0x10 if has_ext else 0)
        | len(packet.csrcs)
    )
    second = (0x80 if packet.marker else 0) | (packet.payload_type & 0x7F)
    parts = [
        RTP_HEADER.pack(
            first, second, packet.sequence & 0xFFFF, packet.timestamp & 0xFFFFFFFF, packet.ssrc & 0xFFFFFFFF
        )
    ]
    if packet.csrcs:
        parts.append(struct.pack(f"!{len(packet.csrcs)}I", *packet.csrcs))
    if has_ext:
        if len(packet.extension) % 4:
            raise ValueError("RTP header extension length must be a multiple of 4 bytes")
        parts.append(struct.pack("!HH", packet.extension_profile, len(packet.extension) // 4))
        parts.append(packet.extension)
    parts.append(packet.payload)
    if packet.padding:
        if not 0 < packet.padding < 256:
            raise ValueError("RTP padding must be 1..255 bytes")
        parts.append(b"\x00" * (packet.padding - 1) + bytes([packet.padding]))
    return b"".join(parts)


def build_rtp_fast(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool) -> bytes:
    """The hot send path: plain header + payload without building an RtpPacket first."""
    return (
        RTP_HEADER.pack(
            0x80, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
        )
        + payload
    )


def parse_rtp(data: bytes, max_size: int = MAX_DATAGRAM) -> RtpPacket:
    """Parse one datagram; RtpParseError(reason) if it is not valid RTP v2."""
    size = len(data)
    if size > max_size:
        raise RtpParseError("oversized")
    if size < 12:
        raise RtpParseError("short")
    first, second, sequence, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError("bad_version")
    offset = 12
    csrc_count = first & 0x0F
    csrcs: tuple[int, ...] = ()
    if csrc_count:
        end = offset + 4 * csrc_count
        if end > size:
            raise RtpParseError("bad_csrc")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
        offset = end
    extension_profile = None
    extension = b""
    if first & 0x10:
        if offset + 4 > size:
            raise RtpParseError("bad_extension")
        extension_profile, words = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + 4 * words
        if end > size:
            raise RtpParseError("bad_extension")
        extension = data[offset + 4 : end]
        offset = end
    end = size
    if first & 0x20:
        pad = data[-1]
        if pad == 0 or offset + pad > size:
            raise RtpParseError("bad_padding")
        end = size - pad
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[offset:end],
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension_profile=extension_profile,
        extension=extension,
    )


def looks_like_rtcp(data: bytes) -> bool:
    """RFC 5761 4: with rtcp-mux, RTCP packet types 200..204 land in RTP's PT range 72..76."""
    return len(data) >= 2 and 72 <= (data[1] & 0x7F) <= 76 and data[0] >> 6 == RTP_VERSION
