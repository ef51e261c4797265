"""Adaptive jitter buffer for one inbound RTP stream (one packet = one ptime frame).

It owns the order and the timing of received payloads: packets go in as they
arrive (any order, duplicates, late ones), and the playout clock takes exactly
one frame per tick, either a payload or a "missing" marker that the PLC fills.

Depth adapts to measured jitter: the target playout delay is the spread of the
network transit time (97th percentile minus minimum over the last few seconds)
plus one frame for tick phase, clamped to [min_ms, max_ms]. The buffer grows by
repeating a tick (a concealed frame) and shrinks by skipping one frame, at most
once every `adapt_every_ticks`, so adaptation is gentle.

Two ways out:
- `pop(now)`, one frame per playout tick: for a listener that plays the audio out at an even
  pace (the depth above is what absorbs the network's jitter).
- `pop_arrived(now)`, arrival order: for a listener that does not play the audio out (VAD,
  turn model, STT). Every frame whose packet is here in sequence goes out at once, so an
  in-order packet waits 0 ms instead of the playout depth; a missing one is concealed once
  it is `target` overdue (the same adaptive bound), so time keeps moving when packets stop.
"""

from __future__ import annotations

from collections import deque

import msgspec
import numpy as np

from theo_ray.media.rtp import RtpPacket

# RFC 3550 A.1: jumps larger than this are a restarted stream, not loss.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class JitterFrame(msgspec.Struct, frozen=True):
    """What the playout clock gets for one tick; `payload is None` means missing."""

    payload: bytes | None
    sequence: int = 0  # 16-bit RTP sequence (0 when missing)
    timestamp: int = 0
    received_at: float = 0.0
    marker: bool = False

    @property
    def missing(self) -> bool:
        return self.payload is None


class JitterBufferStats(msgspec.Struct):
    late: int = 0
    duplicates: int = 0
    underruns: int = 0  # ticks with nothing at all buffered
    concealed: int = 0  # missing frames handed out (loss, lateness or growth)
    grown: int = 0  # ticks repeated to deepen the buffer
    shrunk: int = 0  # frames skipped to make it shallower
    overflow_dropped: int = 0  # frames dropped because depth exceeded max_ms
    resyncs: int = 0  # stream restarts (SSRC change or huge sequence jump)
    target_ms: float = 0.0
    depth_ms: float = 0.0


class JitterBuffer:
    def __init__(
        self,
        clock_rate: int,
        ptime_ms: int = 20,
        min_ms: float = 40.0,
        max_ms: float = 200.0,
        window_packets: int = 250,
        adapt_every_ticks: int = 10,
    ) -> None:
        if not 0 < min_ms <= max_ms:
            raise ValueError("jitter buffer needs 0 < min_ms <= max_ms")
        self.clock_rate = clock_rate
        self.ptime = ptime_ms / 1000.0
        self.min_delay = min_ms / 1000.0
        self.max_delay = max_ms / 1000.0
        self.adapt_every_ticks = adapt_every_ticks
        self.stats = JitterBufferStats(target_ms=min_ms)
        self._transits = np.zeros(window_packets, dtype=np.float64)
        self._transit_count = 0
        self._target = self.min_delay
        self.reset()

    # ------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the stream (new SSRC, re-INVITE): next packet starts a fresh one."""
        self._slots: dict[int, RtpPacket] = {}
        self._arrivals: dict[int, float] = {}
        self._ssrc: int | None = None
        self._highest = -1  # extended sequence
        self._next = 0  # extended sequence to play next
        self._ts_base: int | None = None
        self._ts_last = 0  # extended timestamp of the highest packet
        self._first_arrival: float | None = None
        self._playing = False
        self._played: set[int] = set()
        self._played_order: deque[int] = deque()
        self._ticks_since_adapt = 0
        self._offset: float | None = None  # playout time minus media time, seconds
        self._transit_count = 0
        self._due: float | None = None  # arrival mode: by when the next frame must go out

    @property
    def started(self) -> bool:
        return self._playing

    @property
    def target_ms(self) -> float:
        return self._target * 1000.0

    # ------------------------------------------------------------ input

    def _extend_seq(self, seq: int) -> int:
        if self._highest < 0:
            return seq
        delta = (seq - self._highest) & 0xFFFF
        return self._highest + delta if delta < 0x8000 else self._highest - (0x10000 - delta)

    def _extend_ts(self, ts: int) -> int:
        delta = (ts - (self._ts_last & 0xFFFFFFFF)) & 0xFFFFFFFF
        return self._ts_last + delta if delta < 0x80000000 else self._ts_last - (0x100000000 - delta)

    def put(self, packet: RtpPacket, arrival: float) -> str:
        """Queue one packet; returns "queued", "late", "duplicate" or "resync"."""
        outcome = "queued"
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            self._resync()
            outcome = "resync"
        if self._ssrc is None:
            self._ssrc = packet.ssrc
            self._highest = packet.sequence
            self._next = packet.sequence
            self._ts_base = packet.timestamp
            self._ts_last = packet.timestamp
            self._first_arrival = arrival
        ext = self._extend_seq(packet.sequence)
        if ext > self._highest + MAX_DROPOUT or ext < self._next - MAX_MISORDER - MAX_DROPOUT:
            self._resync()
            return self.put(packet, arrival) and "resync"
        if ext < self._next and not self._playing and ext >= self._next - MAX_MISORDER:
            self._next = ext  # reordered before playout began: start from the earlier one
        if ext < self._next:
            if ext in self._played:
                self.stats.duplicates += 1
                return "duplicate"
            self.stats.late += 1
            return "late"
        if ext in self._slots:
            self.stats.duplicates += 1
            return "duplicate"
        self._slots[ext] = packet
        self._arrivals[ext] = arrival
        if ext > self._highest:
            self._highest = ext
            self._ts_last = self._extend_ts(packet.timestamp)
            ts_ext = self._ts_last
        else:
            ts_ext = self._extend_ts(packet.timestamp)
        self._record_transit(arrival - ts_ext / self.clock_rate)
        self._limit_depth()
        return outcome

    def _resync(self) -> None:
        keep_stats, target = self.stats, self._target
        self.reset()
        self.stats, self._target = keep_stats, target
        self.stats.resyncs += 1

    def _record_transit(self, transit: float) -> None:
        n = self._transits.size
        self._transits[self._transit_count % n] = transit
        self._transit_count += 1
        # Recompute the target every 10 packets: a percentile over 250 floats is ~10 us.
        if self._transit_count % 10 == 0 or self._transit_count == 1:
            window = self._transits[: min(self._transit_count, n)]
            spread = float(np.percentile(window, 97) - window.min())
            target = spread + self.ptime
            self._target = min(max(target, self.min_delay), self.max_delay)
            self.stats.target_ms = self._target * 1000.0

    def _limit_depth(self) -> None:
        max_frames = int(round(self.max_delay / self.ptime)) + 1
        while self._highest - self._next + 1 > max_frames:
            self._slots.pop(self._next, None)
            self._arrivals.pop(self._next, None)
            self._remember_played(self._next)
            self._next += 1
            self.stats.overflow_dropped += 1

    # ------------------------------------------------------------ playout

    def _remember_played(self, ext: int) -> None:
        self._played.add(ext)
        self._played_order.append(ext)
        if len(self._played_order) > 2 * MAX_MISORDER:
            self._played.discard(self._played_order.popleft())

    def pop(self, now: float) -> JitterFrame | None:
        """The frame for the tick at `now`; None until the first prefill completes."""
        if not self._playing:
            if self._first_arrival is None or now - self._first_arrival < self._target - self.ptime:
                return None
            self._playing = True
        self._ticks_since_adapt += 1
        if self._ticks_since_adapt >= self.adapt_every_ticks and self._offset is not None:
            depth = self._depth(now)
            surplus = self._highest - self._next  # frames buffered beyond the one due now
            if (
                depth > self._target + self.ptime
                and surplus * self.ptime >= self._target
                and self._next in self._slots
            ):
                # Too deep, and the packets really are sitting here (not merely a stale
                # minimum transit after a path-delay step): skip one frame.
                self._slots.pop(self._next)
                self._arrivals.pop(self._next)
                self._remember_played(self._next)
                self._next += 1
                self._offset -= self.ptime
                self.stats.shrunk += 1
                self._ticks_since_adapt = 0
            elif depth < self._target - 1.5 * self.ptime:
                # Too shallow: repeat this tick (concealed) and play the same frame next tick.
                self._offset += self.ptime
                self.stats.grown += 1
                self.stats.concealed += 1
                self._ticks_since_adapt = 0
                return JitterFrame(None)
        frame = self._take_next()
        if frame is not None:
            self._offset = now - self._extend_ts(frame.timestamp) / self.clock_rate
            return frame
        if self._conceal_next() and self._offset is not None:
            self._offset += self.ptime  # the playout point slips by one frame
        return JitterFrame(None)

    def _take_next(self) -> JitterFrame | None:
        """The next frame in sequence if its packet is here (it is then played)."""
        packet = self._slots.pop(self._next, None)
        if packet is None:
            return None
        received_at = self._arrivals.pop(self._next)
        self._remember_played(self._next)
        self._next += 1
        return JitterFrame(packet.payload, packet.sequence, packet.timestamp, received_at, packet.marker)

    def _conceal_next(self) -> bool:
        """Count the next frame concealed; True when nothing is buffered (an underrun).

        Nothing buffered means the next packet has not arrived yet (everything that did
        arrive was played): it is late, lost, or the sender paused. The sequence does not
        run ahead of the sender then, so a paused sender's next packet is not counted late.
        With later packets here, it is lost or late; if it shows up later it is counted late."""
        self.stats.concealed += 1
        if self._slots:
            self._next += 1
            return False
        self.stats.underruns += 1
        return True

    def pop_arrived(self, now: float) -> list[JitterFrame]:
        """Arrival-order delivery: every frame ready now, in sequence order (may be empty).

        A frame is ready when its packet is here, or, concealed, once `target` has passed
        since it would have arrived following the frame before it. A concealed frame with
        nothing buffered behind it does not advance the sequence (the sender may have
        paused): if the packet does come, it still goes out, one frame later in time."""
        out: list[JitterFrame] = []
        if self._first_arrival is None:
            return out
        self._playing = True
        while True:
            frame = self._take_next()
            if frame is not None:
                # The next packet is expected one frame after this one arrived.
                self._due = frame.received_at + self.ptime + self._target
                out.append(frame)
                continue
            if self._due is None or now < self._due:
                return out
            self._conceal_next()
            self._due += self.ptime
            out.append(JitterFrame(None))

    def _depth(self, now: float) -> float:
        """Current playout delay beyond the fastest packet in the window, seconds."""
        if self._offset is None or self._transit_count == 0:
            return 0.0
        window = self._transits[: min(self._transit_count, self._transits.size)]
        return self._offset - float(window.min())

    def depth_ms(self, now: float) -> float:
        depth = self._depth(now) * 1000.0
        self.stats.depth_ms = depth
        return depth

    @property
    def buffered(self) -> int:
        return len(self._slots)
