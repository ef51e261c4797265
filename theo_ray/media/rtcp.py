"""RTCP packets (RFC 3550 section 6): SR, RR, SDES (CNAME) and BYE, in compound packets.

Build and parse only; the statistics that fill the report blocks live in
reception_stats.py. Unknown packet types inside a compound packet (XR, feedback)
are skipped; anything malformed raises `RtcpParseError` with a counter-name reason.
Hand-written with `struct` because no maintained Python package offers plain
RTCP without a whole WebRTC stack.
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE = 200, 201, 202, 203
SDES_CNAME = 1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

RtcpReason = Literal["short", "bad_version", "bad_length", "bad_packet"]


class RtcpParseError(ValueError):
    def __init__(self, reason: RtcpReason) -> None:
        super().__init__(reason)
        self.reason: RtcpReason = reason


class ReportBlock(msgspec.Struct, frozen=True):
    ssrc: int  # the source this block reports on
    fraction_lost: int  # 0..255, fixed point /256, since the previous report
    cumulative_lost: int  # signed 24 bits
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, RTP timestamp units
    last_sr: int = 0  # middle 32 bits of the NTP time of the last SR received (LSR)
    delay_since_last_sr: int = 0  # 1/65536 s (DLSR)


class SenderReport(msgspec.Struct, frozen=True):
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP fixed point
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = []


class ReceiverReport(msgspec.Struct, frozen=True):
    ssrc: int
    reports: list[ReportBlock] = []


class SourceDescription(msgspec.Struct, frozen=True):
    chunks: list[tuple[int, str]]  # (ssrc, CNAME)


class Bye(msgspec.Struct, frozen=True):
    ssrcs: list[int]
    reason: str = ""


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SR_INFO = struct.Struct("!IQIII")


def ntp_from_unix(seconds: float) -> int:
    whole = int(seconds) + NTP_EPOCH_OFFSET
    frac = int((seconds - int(seconds)) * (1 << 32)) & 0xFFFFFFFF
    return ((whole & 0xFFFFFFFF) << 32) | frac


def ntp_middle32(ntp: int) -> int:
    return (ntp >> 16) & 0xFFFFFFFF


# ---------------------------------------------------------------- build


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be 32-bit aligned")
    return _HEADER.pack(0x80 | (count & 0x1F), packet_type, len(body) // 4) + body


def _blocks(reports: list[ReportBlock]) -> bytes:
    if len(reports) > 31:
        raise ValueError("at most 31 report blocks per RTCP packet")
    out = []
    for r in reports:
        fraction = max(0, min(255, r.fraction_lost))
        lost = max(-0x800000, min(0x7FFFFF, r.cumulative_lost)) & 0xFFFFFF
        out.append(
            _BLOCK.pack(
                r.ssrc & 0xFFFFFFFF,
                (fraction << 24) | lost,
                r.highest_sequence & 0xFFFFFFFF,
                max(0, r.jitter) & 0xFFFFFFFF,
                r.last_sr & 0xFFFFFFFF,
                r.delay_since_last_sr & 0xFFFFFFFF,
            )
        )
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def build_packet(packet: RtcpPacket) -> bytes:
    if isinstance(packet, SenderReport):
        body = _SR_INFO.pack(
            packet.ssrc & 0xFFFFFFFF,
            packet.ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        ) + _blocks(packet.reports)
        return _header(len(packet.reports), RTCP_SR, body)
    if isinstance(packet, ReceiverReport):
        return _header(len(packet.reports), RTCP_RR, struct.pack("!I", packet.ssrc) + _blocks(packet.reports))
    if isinstance(packet, SourceDescription):
        chunks = []
        for ssrc, cname in packet.chunks:
            text = cname.encode()[:255]
            # Items, then a null item type; at least one null octet, padded to 32 bits.
            chunks.append(_pad4(struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text + b"\x00"))
        return _header(len(packet.chunks), RTCP_SDES, b"".join(chunks))
    if isinstance(packet, Bye):
        body = b"".join(struct.pack("!I", s) for s in packet.ssrcs)
        if packet.reason:
            text = packet.reason.encode()[:255]
            body += _pad4(bytes([len(text)]) + text)
        return _header(len(packet.ssrcs), RTCP_BYE, body)
    raise TypeError(f"not an RTCP packet: {type(packet).__name__}")


def build_compound(packets: list[RtcpPacket]) -> bytes:
    """RFC 3550 6.1: a compound packet starts with SR or RR and carries an SDES CNAME."""
    if not packets or not isinstance(packets[0], (SenderReport, ReceiverReport)):
        raise ValueError("a compound RTCP packet must start with an SR or RR")
    return b"".join(build_packet(p) for p in packets)


# ---------------------------------------------------------------- parse


def _parse_blocks(data: bytes, offset: int, count: int, end: int) -> list[ReportBlock]:
    if offset + count * _BLOCK.size > end:
        raise RtcpParseError("bad_length")
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset + i * _BLOCK.size)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return blocks


def _parse_sdes(data: bytes, offset: int, count: int, end: int) -> SourceDescription:
    chunks = []
    for _ in range(count):
        if offset + 4 > end:
            raise RtcpParseError("bad_packet")
        (ssrc,) = struct.unpack_from("!I", data, offset)
        offset += 4
        cname = ""
        while True:
            if offset >= end:
                raise RtcpParseError("bad_packet")
            item = data[offset]
            if item == 0:
                offset += 1
                offset += -offset % 4  # chunk ends on a 32-bit boundary
                break
            if offset + 2 > end or offset + 2 + data[offset + 1] > end:
                raise RtcpParseError("bad_packet")
            length = data[offset + 1]
            if item == SDES_CNAME:
                cname = data[offset + 2 : offset + 2 + length].decode("utf-8", "replace")
            offset += 2 + length
        chunks.append((ssrc, cname))
    return SourceDescription(chunks)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """All SR/RR/SDES/BYE packets in one datagram (others skipped), in order."""
    if len(data) < 4:
        raise RtcpParseError("short")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise RtcpParseError("bad_length")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpParseError("bad_version")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpParseError("bad_length")
        if first & 0x20:  # padding (only legal on the last packet)
            pad = data[end - 1]
            if pad == 0 or end - pad < offset + 4:
                raise RtcpParseError("bad_packet")
            body_end = end - pad
        else:
            body_end = end
        count = first & 0x1F
        body = offset + 4
        if packet_type == RTCP_SR:
            if body + 24 > body_end:
                raise RtcpParseError("bad_length")
            ssrc, ntp, rtp_ts, pkts, octets = _SR_INFO.unpack_from(data, body)
            packets.append(SenderReport(ssrc, ntp, rtp_ts, pkts, octets, _parse_blocks(data, body + 24, count, body_end)))
        elif packet_type == RTCP_RR:
            if body + 4 > body_end:
                raise RtcpParseError("bad_length")
            (ssrc,) = struct.unpack_from("!I", data, body)
            packets.append(ReceiverReport(ssrc, _parse_blocks(data, body + 4, count, body_end)))
        elif packet_type == RTCP_SDES:
            packets.append(_parse_sdes(data, body, count, body_end))
        elif packet_type == RTCP_BYE:
            if body + 4 * count > body_end:
                raise RtcpParseError("bad_length")
            ssrcs = list(struct.unpack_from(f"!{count}I", data, body))
            reason = ""
            at = body + 4 * count
            if at < body_end:
                length = data[at]
                reason = data[at + 1 : min(at + 1 + length, body_end)].decode("utf-8", "replace")
            packets.append(Bye(ssrcs, reason))
        offset = end
    return packets
