"""Where each datagram arriving at a call's RTP and RTCP sockets goes: dropped and counted, or routed.

For an RtpSession, :class:`RtpIngress` applies, in order: the remote-host allow-list, symmetric
RTP (media_latch.py: only the latched address, or the SDP's own one taking it back), rtcp-mux
(RFC 5761), SRTP unprotect, RTP parsing, the receive direction, payload-type routing (the
codec's audio, telephone-event, comfort noise) and the SSRC switch rules; audio goes to the
InboundPath, RTCP to the RtcpReporter. It owns the state those checks read (allow-list, SRTP
context, direction, telephone-event type); the session sets it from SDP. Nothing here raises
on bad input.
"""

from __future__ import annotations

from collections.abc import Callable

from theo_ray.media.direction import Direction
from theo_ray.media.inbound import InboundPath
from theo_ray.media.media_latch import DROP, SWITCH, MediaLatch
from theo_ray.media.media_stats import MediaStats
from theo_ray.media.rtcp_reporter import RtcpReporter
from theo_ray.media.rtp import RtpParseError, looks_like_rtcp, parse_rtp
from theo_ray.media.settings import MediaSettings
from theo_ray.media.srtp import SrtpContext

COMFORT_NOISE_PT = 13  # RFC 3389


class RtpIngress:
    """The checks and routing of one session's inbound datagrams (see the module docstring)."""

    def __init__(
        self,
        settings: MediaSettings,
        stats: MediaStats,
        latch: MediaLatch,
        inbound: InboundPath,
        rtcp: RtcpReporter,
        clock: Callable[[], float],
        allowed_remote_hosts: list[str] | None,
    ) -> None:
        self.settings = settings
        self._stats = stats
        self._latch = latch
        self._inbound = inbound
        self._rtcp = rtcp
        self._clock = clock
        self.explicit_allowed = allowed_remote_hosts is not None
        self.allowed: frozenset[str] | None = frozenset(allowed_remote_hosts) if allowed_remote_hosts else None
        self.srtp: SrtpContext | None = None  # SRTP/SRTCP both ways (RtpSession.set_srtp)
        self.direction: Direction = "sendrecv"
        self.telephone_event_pt: int | None = None
        self.codec_clock_rate: int | None = None  # the codec's RTP clock, for RTCP (after start())

    def expect_sdp_host(self, host: str) -> None:
        """A new SDP media address: without an explicit allow-list, only its host is accepted."""
        if not self.explicit_allowed:
            self.allowed = frozenset({host})

    def address_allowed(self, addr: tuple) -> bool:
        return self.allowed is None or addr[0] in self.allowed

    def on_rtp(self, data: bytes, addr: tuple) -> None:
        """One datagram on the RTP socket: dropped and counted, or routed (never raises)."""
        drops = self._stats.drops
        latch = self._latch
        relatch = not latch.latched
        if relatch:
            if not self.address_allowed(addr):
                drops.foreign_address += 1
                return
        elif addr[1] != latch.port or addr[0] != latch.host:
            # Symmetric RTP: only the latched address, or the SDP's own one taking it back.
            if not (latch.is_sdp(addr[0], addr[1]) and self.address_allowed(addr)):
                drops.foreign_address += 1
                return
            relatch = True
        if looks_like_rtcp(data):  # rtcp-mux peer (RFC 5761)
            self.handle_rtcp(data, addr)
            return
        if self.srtp is not None:
            data = self.srtp.unprotect(data)  # None: tampered, replayed or not SRTP (counted)
            if data is None:
                return
        try:
            packet = parse_rtp(data, self.settings.max_datagram_bytes)
        except RtpParseError as err:
            reason = err.reason
            if reason in ("short", "bad_version", "oversized"):
                setattr(drops, reason, getattr(drops, reason) + 1)
            else:
                drops.garbage += 1
            return
        codec = self._inbound.decoder
        if codec is None:
            drops.not_started += 1
            return
        if self.direction in ("sendonly", "inactive"):
            drops.not_receiving += 1
            return
        if packet.payload_type != codec.payload_type:
            if packet.ssrc == latch.ssrc:
                latch.ssrc_heard_at = self._clock()  # comfort noise / DTMF: the stream is alive
            if packet.payload_type == self.telephone_event_pt:
                self._inbound.telephone_event(packet.timestamp, packet.payload)
            elif packet.payload_type == COMFORT_NOISE_PT:
                self._stats.comfort_noise_packets += 1
            else:
                drops.bad_payload_type += 1
            return
        now = self._clock()
        if relatch:
            # Symmetric RTP: from now on we send to, and only accept from, this address.
            latch.latch(addr[0], addr[1])
            self._stats.remote = f"{addr[0]}:{addr[1]}"
        if packet.ssrc == latch.ssrc:
            latch.ssrc_heard_at = now
        else:
            verdict = latch.other_ssrc(packet.ssrc, packet, len(data), now)
            if verdict == DROP:
                drops.foreign_ssrc += 1  # never reaches the jitter buffer: no reset
                return
            if verdict == SWITCH:
                # The stream really changed source (silence, then a sustained newcomer):
                # its held-back first packets go in first, so the switch loses no audio.
                self._stats.ssrc_switches += 1
                for held, size, arrival in latch.take_held():
                    self._inbound.accept_audio(held, size, arrival)
        self._inbound.accept_audio(packet, len(data), now)

    def on_rtcp_socket(self, data: bytes, addr: tuple) -> None:
        if self.handle_rtcp(data, addr):
            # Symmetric RTCP, within the accepted addresses: report to where reports come from.
            self._latch.rtcp_heard(addr[0], addr[1])

    def handle_rtcp(self, data: bytes, addr: tuple) -> bool:
        """One RTCP datagram (RTCP socket or rtcp-mux); True if it was taken."""
        if not (self._latch.rtcp_accepts(addr[0], addr[1]) and self.address_allowed(addr)):
            # Only the peer's RTCP port (RTP port + 1, the SDP's a=rtcp) or its RTP port (mux).
            self._stats.drops.foreign_rtcp += 1
            return False
        if self.srtp is not None:
            data = self.srtp.unprotect_rtcp(data)
            if data is None:
                return False
        return self._rtcp.receive(data, self.codec_clock_rate)
