"""Outbound playout queue at the network (codec) rate: what the caller will hear next.

It owns the audio waiting to be sent and the exact accounting of what was sent:
- `enqueue(pcm, mark)` appends int16 PCM tagged with a mark (e.g. a sentence id);
- `pull(now)` hands the RTP clock one ptime frame, or None when there is nothing
  to send (so silence is not sent unless comfort noise was enqueued);
- `flush()` (barge-in) empties it: the very next pull returns None;
- `pause()` fades out over one frame and `resume()` restarts at the exact sample
  where the fade began (with a one-frame fade-in), for a cough or a backchannel;
- per mark, how many samples were sent and when the first one went out, so the
  turn loop can map "samples played" to "text the caller heard";
- `drained()` resolves when the last enqueued sample has been sent plus the
  playout delay (GAP 6: side effects wait for this, never for a sleep guess).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import numpy as np

MAX_TRACKED_MARKS = 512


class PlayoutFrame(msgspec.Struct):
    pcm: np.ndarray  # int16, exactly frame_samples
    talkspurt_start: bool  # first frame after a pause in sending: RTP marker bit
    marks: list[tuple[str, int]]  # (mark, samples of it in this frame), in order
    sent_at: float


class MarkProgress(msgspec.Struct):
    """How much of one mark the caller has been sent (samples at the network rate)."""

    mark: str
    sample_rate: int
    enqueued_samples: int = 0
    sent_samples: int = 0
    dropped_samples: int = 0  # removed by flush() before being sent
    first_sent_at: float | None = None
    last_sent_at: float | None = None

    @property
    def sent_seconds(self) -> float:
        return self.sent_samples / self.sample_rate

    @property
    def sent_fraction(self) -> float:
        total = self.enqueued_samples
        return self.sent_samples / total if total else 0.0

    @property
    def complete(self) -> bool:
        return self.enqueued_samples > 0 and self.sent_samples == self.enqueued_samples


PlayoutEventKind = Literal["mark_started", "mark_done", "flushed", "paused", "resumed", "idle"]


class PlayoutEvent(msgspec.Struct, frozen=True):
    """Something the turn loop may want to know, stamped with the playout clock.

    mark_started: first sample of `mark` sent; mark_done: every sample enqueued so far
    for `mark` sent and the queue moved on; idle: the queue ran empty after sending.
    """

    kind: PlayoutEventKind
    at: float
    mark: str = ""
    samples: int = 0


class FlushResult(msgspec.Struct, frozen=True):
    at: float
    dropped_samples: int
    # Per mark, what had been sent when the flush hit (the caller heard these).
    progress: list[MarkProgress] = []


class PlayoutQueue:
    def __init__(
        self,
        sample_rate: int,
        frame_samples: int,
        playout_delay_ms: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.playout_delay_ms = playout_delay_ms
        self._clock = clock
        self._sleep = sleep
        self._segments: deque[list] = deque()  # [mark, pcm, offset]
        self._pending = 0
        self._marks: OrderedDict[str, MarkProgress] = OrderedDict()
        self._listeners: list[Callable[[PlayoutEvent], None]] = []
        self._in_talkspurt = False
        self._pausing = False  # pause requested, fade-out frame not yet sent
        self._paused = False
        self._resuming = False
        self._last_sent_at: float | None = None
        self._change: asyncio.Event | None = None
        # Pause: a 5 ms raised-cosine fade, then silence for the rest of the frame. Enough to
        # avoid a click, and the caller hears the agent stop ~15 ms sooner than with a fade
        # over the whole 20 ms packet (measured in the barge-in reaction). Resume fades in
        # over the whole frame: nothing is in a hurry there.
        fade = max(1, min(frame_samples, sample_rate // 200))
        ramp = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32)))
        self._fade_out = np.concatenate((ramp, np.zeros(frame_samples - fade, np.float32)))
        self._fade_in = np.linspace(0.0, 1.0, frame_samples, dtype=np.float32)
        self._current_mark: str | None = None

    # ------------------------------------------------------------ listeners

    def add_listener(self, callback: Callable[[PlayoutEvent], None]) -> None:
        """`callback(event)` runs synchronously on the clock tick; keep it tiny."""
        self._listeners.append(callback)

    @property
    def listeners(self) -> list[Callable[[PlayoutEvent], None]]:
        return list(self._listeners)

    def _emit(self, kind: PlayoutEventKind, at: float, mark: str = "", samples: int = 0) -> None:
        if self._listeners:
            event = PlayoutEvent(kind, at, mark, samples)
            for callback in self._listeners:
                callback(event)

    def _changed(self) -> None:
        if self._change is not None:
            self._change.set()

    # ------------------------------------------------------------ input

    def enqueue(self, pcm: np.ndarray, mark: str) -> None:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError("PlayoutQueue takes 1-D int16 PCM")
        if pcm.size == 0:
            return
        self._segments.append([mark, pcm, 0])
        self._pending += pcm.size
        progress = self._marks.get(mark)
        if progress is None:
            progress = self._marks[mark] = MarkProgress(mark, self.sample_rate)
            if len(self._marks) > MAX_TRACKED_MARKS:
                self._marks.popitem(last=False)
        progress.enqueued_samples += pcm.size
        self._changed()

    @property
    def pending_samples(self) -> int:
        return self._pending

    @property
    def paused(self) -> bool:
        return self._paused or self._pausing

    def progress(self, mark: str) -> MarkProgress | None:
        return self._marks.get(mark)

    # ------------------------------------------------------------ control

    def flush(self) -> FlushResult:
        """Barge-in: drop everything queued; the next pull returns None."""
        now = self._clock()
        dropped = self._pending
        touched: dict[str, MarkProgress] = {}
        for mark, pcm, offset in self._segments:
            progress = self._marks[mark] if mark in self._marks else MarkProgress(mark, self.sample_rate)
            progress.dropped_samples += pcm.size - offset
            touched[mark] = progress
        self._segments.clear()
        self._pending = 0
        self._pausing = self._paused = self._resuming = False
        self._in_talkspurt = False
        self._current_mark = None
        self._emit("flushed", now, samples=dropped)
        self._changed()
        return FlushResult(now, dropped, [msgspec.structs.replace(p) for p in touched.values()])

    def pause(self) -> None:
        if not self.paused:
            self._pausing = self._in_talkspurt and self._pending > 0
            self._paused = not self._pausing
            self._resuming = False

    def resume(self) -> None:
        if self.paused:
            was_sending = self._pausing  # fade-out never went out: nothing to fade in
            self._pausing = self._paused = False
            self._resuming = not was_sending
            self._emit("resumed", self._clock())
            self._changed()

    # ------------------------------------------------------------ clock side

    def _peek(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        for _mark, pcm, offset in self._segments:
            take = min(n - filled, pcm.size - offset)
            out[filled : filled + take] = pcm[offset : offset + take]
            filled += take
            if filled == n:
                break
        return out

    def pull(self, now: float) -> PlayoutFrame | None:
        """The frame to send at `now` (the caller sends it at once), or None for nothing."""
        if self._paused:
            return None
        if self._pending == 0:
            if self._in_talkspurt:
                self._in_talkspurt = False
                self._finish_current(now)
                self._emit("idle", now)
                self._changed()
            return None
        n = self.frame_samples
        if self._pausing:
            # Fade out over one frame without consuming: resume() replays from here.
            pcm = (self._peek(n) * self._fade_out).astype(np.int16)
            self._pausing = False
            self._paused = True
            self._in_talkspurt = False
            self._last_sent_at = now
            self._emit("paused", now)
            return PlayoutFrame(pcm, False, [], now)
        out = np.zeros(n, dtype=np.int16)
        marks: list[tuple[str, int]] = []
        filled = 0
        segments = self._segments
        while filled < n and segments:
            segment = segments[0]
            mark, pcm, offset = segment
            take = min(n - filled, pcm.size - offset)
            out[filled : filled + take] = pcm[offset : offset + take]
            filled += take
            segment[2] = offset + take
            if marks and marks[-1][0] == mark:
                marks[-1] = (mark, marks[-1][1] + take)
            else:
                marks.append((mark, take))
            if segment[2] == pcm.size:
                segments.popleft()
        self._pending -= filled
        if self._resuming:
            out = (out * self._fade_in).astype(np.int16)
            self._resuming = False
        talkspurt_start = not self._in_talkspurt
        self._in_talkspurt = True
        self._last_sent_at = now
        for mark, count in marks:
            self._account(mark, count, now)
        if self._pending == 0:
            # Last sample is out: `drained()` can start its playout-delay wait now.
            self._changed()
        return PlayoutFrame(out, talkspurt_start, marks, now)

    def _account(self, mark: str, count: int, now: float) -> None:
        if self._current_mark is not None and self._current_mark != mark:
            self._finish_current(now)
        self._current_mark = mark
        progress = self._marks.get(mark)
        if progress is None:  # evicted from tracking by a very long call
            progress = self._marks[mark] = MarkProgress(mark, self.sample_rate)
        if progress.first_sent_at is None:
            progress.first_sent_at = now
            self._emit("mark_started", now, mark)
        progress.sent_samples += count
        progress.last_sent_at = now

    def _finish_current(self, now: float) -> None:
        mark = self._current_mark
        if mark is not None:
            progress = self._marks.get(mark)
            self._emit("mark_done", now, mark, progress.sent_samples if progress else 0)
        self._current_mark = None

    # ------------------------------------------------------------ drained

    async def drained(self, playout_delay_ms: float | None = None) -> float:
        """Wait until everything enqueued has been sent, plus the playout delay.

        Returns the clock time at which the caller has heard the last sample
        (last frame's send time + delay). Audio enqueued while waiting extends the
        wait; a flush ends it (what was sent is all the caller will hear).
        """
        delay = (self.playout_delay_ms if playout_delay_ms is None else playout_delay_ms) / 1000.0
        if self._change is None:
            self._change = asyncio.Event()
        while True:
            if self._pending == 0:
                last = self._last_sent_at
                if last is None:
                    return self._clock()
                remaining = last + delay - self._clock()
                if remaining <= 0:
                    return last + delay
                self._change.clear()
                await self._sleep(remaining)
                if self._pending == 0 and self._last_sent_at == last:
                    return last + delay
                continue
            self._change.clear()
            await self._change.wait()
