"""DtmfSender: keys sent as RFC 4733 telephone-event packets on the session's own clock.

Each key is one event: `event_ms` of packets sharing the event's first timestamp, the first
with the marker bit, each with the duration so far; then the end packet three times (RFC
4733 section 2.5.1.4), then `gap_ms` of ordinary audio before the next key. While an event
is on the wire the audio waits (the outbound path sends these packets instead of pulling
its playout queue). Used by the agent's `send_dtmf` tool (IVR navigation) and by the
caller simulator's `dtmf` step.
"""

from __future__ import annotations

import asyncio
import collections

from theo_ray.media.telephone_event import BLOCK_BYTES

KEYS = "0123456789*#ABCD"
END_REPEATS = 3
VOLUME = 10  # -dBm0: a typical DTMF level


def telephone_event_payload(event: int, end: bool, duration: int) -> bytes:
    return bytes((event, (0x80 if end else 0) | VOLUME, (duration >> 8) & 0xFF, duration & 0xFF))


class DtmfPacket:
    __slots__ = ("payload", "timestamp", "marker")

    def __init__(self, payload: bytes, timestamp: int, marker: bool) -> None:
        assert len(payload) == BLOCK_BYTES
        self.payload = payload
        self.timestamp = timestamp
        self.marker = marker


class DtmfSender:
    def __init__(self, ts_step: int, ptime_ms: int, event_ms: int = 100, gap_ms: int = 60) -> None:
        self._ts_step = ts_step
        self._ptime_ms = ptime_ms
        self._event_ms, self._gap_ms = event_ms, gap_ms
        # (event code, event ticks, gap ticks, the future of the last key of a queue() call)
        self._keys: collections.deque[tuple[int, int, int, asyncio.Future | None]] = collections.deque()
        self._current: int | None = None  # event code on the wire
        self._event_ticks = self._gap_ticks = 1
        self._done: asyncio.Future | None = None
        self._tick = 0  # ticks into the current key (event, end packets, gap)
        self._start_ts = 0
        self.sent_keys = 0

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._keys)

    def queue(self, digits: str, event_ms: int | None = None, gap_ms: int | None = None) -> asyncio.Future:
        """Queue `digits` (0-9 * # A-D), each `event_ms` long with `gap_ms` of audio after
        it; the future is done once the last one was sent."""
        bad = [d for d in digits if d.upper() not in KEYS]
        if bad or not digits:
            raise ValueError(f"not DTMF keys: {digits!r}")
        event_ticks = max(1, round((event_ms or self._event_ms) / self._ptime_ms))
        gap_ticks = max(1, round((gap_ms or self._gap_ms) / self._ptime_ms))
        done = asyncio.get_running_loop().create_future()
        for i, digit in enumerate(digits):
            last = i == len(digits) - 1
            self._keys.append((KEYS.index(digit.upper()), event_ticks, gap_ticks, done if last else None))
        return done

    def cancel(self) -> None:
        for *_, done in self._keys:
            if done is not None and not done.done():
                done.cancel()
        self._keys.clear()

    def packet(self, timestamp: int) -> DtmfPacket | None:
        """This tick's telephone-event packet (`timestamp`: the tick's RTP timestamp), or
        None when the tick carries audio (nothing queued, or the gap between keys)."""
        if self._current is None:
            if not self._keys:
                return None
            self._current, self._event_ticks, self._gap_ticks, self._done = self._keys.popleft()
            self._tick, self._start_ts = 0, timestamp
        event, n = self._current, self._tick
        self._tick += 1
        if n < self._event_ticks:
            return DtmfPacket(telephone_event_payload(event, False, (n + 1) * self._ts_step), self._start_ts, n == 0)
        if n < self._event_ticks + END_REPEATS:
            duration = self._event_ticks * self._ts_step
            return DtmfPacket(telephone_event_payload(event, True, duration), self._start_ts, False)
        if n == self._event_ticks + END_REPEATS:
            self.sent_keys += 1
        if n >= self._event_ticks + END_REPEATS + self._gap_ticks - 1:
            if self._done is not None and not self._done.done():
                self._done.set_result(None)
            self._current = self._done = None
        return None  # the gap: audio
