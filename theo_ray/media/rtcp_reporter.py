"""A session's RTCP (RFC 3550): reports in, reports out, and when they go.

Owns what RTCP needs beyond the shared counters: the octets sent since the start, whether
we sent since the last report (SR or RR), and the peer's last SR (LSR/DLSR, for its RTT).
Reads the peer's reports about our stream into MediaStats (loss, jitter, RTT); builds
SR/RR + SDES compounds and the closing BYE; sends a report every ~`interval_s`,
randomised. Addresses and sockets stay with the session (media latching).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from theo_ray.media.media_stats import MediaStats
from theo_ray.media.reception_stats import ReceptionStats
from theo_ray.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    build_compound,
    build_packet,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
)


class RtcpReporter:
    def __init__(
        self,
        ssrc: int,
        cname: str,
        stats: MediaStats,
        clock: Callable[[], float],
        wallclock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
    ) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self._stats = stats
        self._clock = clock
        self._wallclock = wallclock
        self._sleep = sleep
        self._rng = rng  # the session's: one seeded generator keeps a test run reproducible
        self._octets_out = 0
        self._sent_since_report = False
        self._last_sr_ntp_mid = 0  # LSR to echo: middle 32 bits of the peer's last SR
        self._last_sr_arrival = 0.0

    def note_sent(self, payload_octets: int) -> None:
        """One RTP packet of ours left (its payload size): the next report is an SR."""
        self._octets_out += payload_octets
        self._sent_since_report = True

    def receive(self, data: bytes, clock_rate: int | None) -> bool:
        """One RTCP datagram from an accepted address; True if it parsed.

        `clock_rate`: the codec's RTP clock (None before start()), to read jitter in ms."""
        try:
            packets = parse_compound(data)
        except RtcpParseError:
            self._stats.drops.rtcp_garbage += 1
            return False
        self._stats.rtcp_in += 1
        arrival = self._clock()
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._last_sr_ntp_mid = ntp_middle32(packet.ntp_timestamp)
                self._last_sr_arrival = arrival
            if isinstance(packet, (SenderReport, ReceiverReport)):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._on_report_about_us(block, clock_rate)
        return True

    def _on_report_about_us(self, block: ReportBlock, clock_rate: int | None) -> None:
        stats = self._stats
        stats.remote_fraction_lost = block.fraction_lost / 256.0
        stats.remote_cumulative_lost = block.cumulative_lost
        if clock_rate is not None:
            stats.remote_jitter_ms = block.jitter * 1000.0 / clock_rate
        if block.last_sr:
            now_mid = ntp_middle32(ntp_from_unix(self._wallclock()))
            rtt = ((now_mid - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF) / 65536.0
            if rtt < 60.0:  # anything bigger is a wrapped (bogus) value
                stats.rtt_ms = rtt * 1000.0

    def build_report(self, reception: ReceptionStats | None, rtp_timestamp_at: Callable[[float], int] | None) -> bytes:
        """SR (if we sent since the last report) or RR, plus SDES.

        `reception` and `rtp_timestamp_at` (our stream's RTP timestamp at a clock time)
        are None before start() chose a codec: then an RR without blocks."""
        blocks = []
        if reception is not None:
            dlsr = 0
            if self._last_sr_ntp_mid:
                dlsr = int((self._clock() - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
            block = reception.report_block(self._last_sr_ntp_mid, dlsr)
            if block is not None:
                blocks.append(block)
        if self._sent_since_report and rtp_timestamp_at is not None:
            rtp_ts = rtp_timestamp_at(self._clock())
            report: RtcpPacket = SenderReport(
                self.ssrc,
                ntp_from_unix(self._wallclock()),
                rtp_ts & 0xFFFFFFFF,
                self._stats.packets_out,
                self._octets_out,
                blocks,
            )
        else:
            report = ReceiverReport(self.ssrc, blocks)
        self._sent_since_report = False
        return build_compound([report, SourceDescription([(self.ssrc, self.cname)])])

    def bye(self) -> bytes:
        return build_packet(Bye([self.ssrc], "call ended"))

    async def run(
        self,
        interval_s: float,
        running: Callable[[], bool],
        report: Callable[[], bytes],
        send: Callable[[bytes], None],
    ) -> None:
        """Send `report()` every `interval_s` x U(0.5, 1.5) while `running()` (RFC 3550 6.2:
        randomised so that many calls started together do not report in step)."""
        while running():
            await self._sleep(interval_s * self._rng.uniform(0.5, 1.5))
            if not running():
                return
            send(report())
