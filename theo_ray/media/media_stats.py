"""A call's media statistics: the MediaStats snapshot and the accounting behind it.

Owns the counters' shape (MediaStats, DropCounters), the outbound send-timing windows
(SendTiming) and the reception figures read into a snapshot (loss, jitter, jitter-buffer
depth, concealment, MOS). The inbound, outbound and RTCP parts of a session count into one
shared MediaStats; `RtpSession.stats()` completes and copies it.
"""

from __future__ import annotations

import msgspec
import numpy as np

from theo_ray.media.emodel import estimate_mos
from theo_ray.media.jitter_buffer import JitterBuffer
from theo_ray.media.plc import PacketLossConcealer
from theo_ray.media.reception_stats import ReceptionStats


class DropCounters(msgspec.Struct):
    """Inbound datagrams dropped, by reason (RTP and RTCP together unless named)."""

    short: int = 0
    bad_version: int = 0
    oversized: int = 0
    foreign_address: int = 0
    foreign_rtcp: int = 0  # RTCP from a port that is not the peer's RTCP (or rtcp-mux) port
    # Audio of another SSRC than the stream's, from the latched address. A switch (see
    # MediaStats.ssrc_switches) then delivers the newcomer's last few held-back packets,
    # which count in packets_in as well.
    foreign_ssrc: int = 0
    bad_payload_type: int = 0
    garbage: int = 0  # malformed header fields (padding/extension/CSRC) or undecodable payload
    rtcp_garbage: int = 0
    bad_telephone_event: int = 0  # RFC 4733 payload not whole 4-byte blocks, or not a DTMF event (0-15)
    not_started: int = 0  # arrived before start() chose a codec
    not_receiving: int = 0  # direction is sendonly/inactive (hold)
    # SRTP calls (media/srtp.py): RTP/RTCP whose authentication tag is wrong (tampered, or
    # not the negotiated key), that the replay window refused, or not SRTP at all.
    srtp_auth: int = 0
    srtp_replay: int = 0
    srtp_other: int = 0


class MediaStats(msgspec.Struct):
    codec: str = ""
    payload_type: int = -1
    local_port: int = 0
    remote: str = ""
    direction: str = "sendrecv"
    srtp: bool = False  # SRTP/SRTCP (SDES) on this call's media
    ssrc: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    # Inbound stream (RFC 3550 receiver statistics and jitter buffer).
    expected: int = 0
    lost: int = 0
    fraction_lost: float = 0.0  # at the last report interval, 0..1
    late: int = 0
    duplicates: int = 0
    concealed_frames: int = 0
    jitter_ms: float = 0.0  # RFC 3550 A.8, current
    jitter_mean_ms: float = 0.0  # RFC 3550 A.8, averaged over the call
    jitter_buffer_target_ms: float = 0.0
    jitter_buffer_depth_ms: float = 0.0
    jitter_overflow_dropped: int = 0  # frames dropped: the buffer held more than media.jitter_max_ms
    inbound_frames: int = 0
    inbound_frames_dropped: int = 0  # consumer too slow
    comfort_noise_packets: int = 0
    telephone_event_packets: int = 0
    # What the far end reports about our outbound stream (from its RR/SR blocks).
    rtt_ms: float | None = None
    remote_fraction_lost: float | None = None
    remote_cumulative_lost: int | None = None
    remote_jitter_ms: float | None = None
    mos: float | None = None  # inbound direction, simplified G.107
    # Outbound timing: |actual interval between consecutive packets - ptime|.
    send_interval_error_p50_ms: float = 0.0
    send_interval_error_p99_ms: float = 0.0
    send_interval_error_max_ms: float = 0.0
    send_lateness_p99_ms: float = 0.0  # send time minus its absolute deadline
    clock_resyncs: int = 0
    ssrc_switches: int = 0  # the stream changed SSRC without a re-INVITE (after silence)
    rtcp_in: int = 0
    rtcp_out: int = 0
    drops: DropCounters = msgspec.field(default_factory=DropCounters)


class SendTiming:
    """The last `window` send-interval errors and tick latenesses (ring buffers, seconds).

    Fixed windows so that a long call costs no more memory, and percentiles describe the
    recent sending rather than the whole call."""

    def __init__(self, window: int, ptime_ms: int) -> None:
        self._ptime_s = ptime_ms / 1000.0
        self._errors = np.zeros(window, dtype=np.float64)
        self._lateness = np.zeros(window, dtype=np.float64)
        self._error_samples = 0
        self._lateness_samples = 0

    def interval(self, interval_s: float) -> None:
        """Time between two packets of one talkspurt (a talkspurt start has no predecessor)."""
        self._errors[self._error_samples % self._errors.size] = abs(interval_s - self._ptime_s)
        self._error_samples += 1

    def lateness(self, late_s: float) -> None:
        """How long after its absolute deadline a tick ran."""
        self._lateness[self._lateness_samples % self._lateness.size] = late_s
        self._lateness_samples += 1

    def fill(self, stats: MediaStats) -> None:
        n = min(self._error_samples, self._errors.size)
        if n:
            errors = self._errors[:n] * 1000.0
            stats.send_interval_error_p50_ms = float(np.percentile(errors, 50))
            stats.send_interval_error_p99_ms = float(np.percentile(errors, 99))
            stats.send_interval_error_max_ms = float(errors.max())
        m = min(self._lateness_samples, self._lateness.size)
        if m:
            stats.send_lateness_p99_ms = float(np.percentile(self._lateness[:m], 99) * 1000.0)


def fill_reception(
    stats: MediaStats,
    codec_name: str,
    reception: ReceptionStats,
    jitter: JitterBuffer,
    plc: PacketLossConcealer,
    now: float,
    ptime_ms: int,
) -> None:
    """Inbound figures into `stats`, MOS included once a packet was expected."""
    jb = jitter.stats
    stats.expected = reception.expected
    stats.lost = reception.cumulative_lost
    stats.fraction_lost = reception.last_fraction_lost / 256.0
    stats.jitter_ms = reception.jitter_ms
    stats.jitter_mean_ms = reception.mean_jitter_ms
    stats.late = jb.late
    stats.duplicates = jb.duplicates
    stats.jitter_overflow_dropped = jb.overflow_dropped
    stats.concealed_frames = plc.concealed_frames
    stats.jitter_buffer_target_ms = jitter.target_ms
    stats.jitter_buffer_depth_ms = jitter.depth_ms(now)
    if reception.expected > 0:
        # Late packets are lost to the listener as much as missing ones.
        loss_pct = 100.0 * max(0, reception.cumulative_lost + jb.late) / reception.expected
        one_way = (stats.rtt_ms or 0.0) / 2.0
        stats.mos = round(estimate_mos(codec_name, one_way, stats.jitter_buffer_target_ms, loss_pct, ptime_ms), 3)
