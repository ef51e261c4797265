"""Receiver statistics of one inbound RTP source (RFC 3550 appendix A.1, A.3, A.8).

It owns the extended highest sequence number, expected/received/lost counts, the
fraction lost between two reports and the interarrival jitter, and produces the
RTCP report block about that source. Loss follows the RFC: late and duplicate
packets count as received, so "lost" can even go negative with duplicates.
"""

from __future__ import annotations

from theo_ray.media.rtcp import ReportBlock

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class ReceptionStats:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.received = 0
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._last_transit: float | None = None
        self.jitter = 0.0  # RFC 3550 A.8 estimate, timestamp units
        self._jitter_sum = 0.0
        self._jitter_samples = 0
        self.last_fraction_lost = 0  # 0..255 at the last report

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0

    def update(self, ssrc: int, seq: int, rtp_timestamp: int, arrival: float) -> bool:
        """Count one packet (arrival in seconds); False if it was rejected as a stray (A.1)."""
        if self.ssrc != ssrc:
            # New source (first packet, or the sender restarted): start over.
            self.ssrc = ssrc
            self._init_seq(seq)
            self._last_transit = None
            self.jitter = 0.0
        else:
            udelta = (seq - self._max_seq) & 0xFFFF
            if udelta < MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += RTP_SEQ_MOD  # wrapped
                self._max_seq = seq
            elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
                # A very large jump: accept only if the next packet confirms it (A.1).
                if seq == self._bad_seq:
                    self._init_seq(seq)
                else:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return False
            elif self._cycles == 0 and 0 < self._base_seq - seq < MAX_MISORDER:
                # Reordered ahead of the very first packet: the stream started earlier.
                self._base_seq = seq
            # else: duplicate or reordered packet, counted as received below.
        self.received += 1
        # A.8: transit in timestamp units; D wraps with the 32-bit RTP timestamp.
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._last_transit is not None:
            d = transit - self._last_transit
            d = (d + 2**31) % 2**32 - 2**31
            self.jitter += (abs(d) - self.jitter) / 16.0
            self._jitter_sum += self.jitter
            self._jitter_samples += 1
        self._last_transit = transit
        return True

    @property
    def extended_max(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self._base_seq + 1 if self.ssrc is not None else 0

    @property
    def cumulative_lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    @property
    def mean_jitter_ms(self) -> float:
        """The RFC 3550 jitter averaged over the whole call (the instantaneous value is noisy)."""
        if not self._jitter_samples:
            return 0.0
        return self._jitter_sum / self._jitter_samples * 1000.0 / self.clock_rate

    def report_block(self, last_sr: int = 0, delay_since_last_sr: int = 0) -> ReportBlock | None:
        """The report block for the next RR/SR (A.3); advances the 'since last report' interval."""
        if self.ssrc is None:
            return None
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        self.last_fraction_lost = min(fraction, 255)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.last_fraction_lost,
            cumulative_lost=self.cumulative_lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            last_sr=last_sr,
            delay_since_last_sr=delay_since_last_sr,
        )
