"""FakeLine: one call's media plane on the loop's clock, without sockets.

Test double for `RtpSession` where the real one cannot run (a virtual-time loop has no
network): a real `PlayoutQueue` is pulled every 20 ms tick as the RTP clock would, what it
sends is recorded (the caller's ear), and the scripted caller's audio is handed out as
inbound frames on the same tick (plus, optionally, our own audio echoed back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec
import numpy as np

from theo_ray.media.playout import FlushResult, MarkProgress, PlayoutQueue
from theo_ray.media.rtp_session import InboundFrame, TelephoneEvent
from tests.fakes.scripted_caller import RATE, ScriptedCaller


class SentFrame(msgspec.Struct, frozen=True):
    at: float  # offset from the call's start, seconds
    rms: float
    marks: tuple[str, ...]


class _PtimeSettings(msgspec.Struct, frozen=True):
    ptime_ms: int = 20


class FakeLine:
    def __init__(self, caller: ScriptedCaller, echo: tuple[float, float] | None = None) -> None:
        self.caller = caller
        self.settings = _PtimeSettings()
        self.frame_samples = RATE * self.settings.ptime_ms // 1000
        self.echo = echo  # (delay s, gain) of our own audio coming back on the line
        self.sent: list[SentFrame] = []
        self.jitter_depth_ms = 0.0
        self.ptime_ms = self.settings.ptime_ms
        self.direction = "sendrecv"
        self.stop_after_s: float | None = None  # the caller's packets stop (a lost call)
        self.playout: PlayoutQueue | None = None
        self._frames: asyncio.Queue[InboundFrame | None] = asyncio.Queue()
        self._keys: asyncio.Queue[TelephoneEvent] = asyncio.Queue()
        self.presses: list[tuple[float, str]] = []  # (offset s, keys) the caller types
        self.keys_sent: list[tuple[float, str]] = []  # (offset s, keys) the agent sends
        self._probe: Callable[[float, float], None] | None = None
        self._last_sent: np.ndarray | None = None
        self._sent_pcm: list[np.ndarray] = []
        self._task: asyncio.Task | None = None
        self.t0 = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.playout = PlayoutQueue(RATE, self.frame_samples, clock=loop.time)
        self.t0 = loop.time()
        self._task = asyncio.create_task(self._ticks())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._frames.put_nowait(None)

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, self.t0 + k * self.frame_samples / RATE - loop.time()))
            self._tick(k, loop.time())

    def _tick(self, k: int, now: float) -> None:
        assert self.playout is not None
        frame = self.playout.pull(now)
        pcm = frame.pcm if frame is not None else np.zeros(self.frame_samples, np.int16)
        self._last_sent = frame.pcm if frame is not None else None
        self._sent_pcm.append(pcm)
        rms = float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2)))
        self.sent.append(SentFrame(now - self.t0, rms, tuple(m for m, _n in frame.marks) if frame else ()))
        inbound = self.caller.audio((k - 1) * self.frame_samples, self.frame_samples)
        if self.echo is not None:
            delay, gain = self.echo
            back = k - 1 - round(delay * RATE / self.frame_samples)
            if 0 <= back < len(self._sent_pcm):
                inbound = np.clip(inbound + self._sent_pcm[back] * gain, -32768, 32767).astype(np.int16)
        if self.stop_after_s is not None and now - self.t0 >= self.stop_after_s:
            return  # nothing arrives any more
        if self._probe is not None:
            self._probe(float(np.sqrt(np.mean(inbound.astype(np.float32) ** 2))), now)
        self._frames.put_nowait(InboundFrame(pcm=inbound, at=now, received_at=now, concealed=False, sequence=k))
        while self.presses and self.presses[0][0] <= now - self.t0:
            _at, keys = self.presses.pop(0)
            for key in keys:  # one RFC 4733 event per key, as the inbound path reports them
                self._keys.put_nowait(TelephoneEvent(event="0123456789*#ABCD".index(key), duration=800, at=now))

    # ---------------------------------------------------------------- RtpSession's members

    async def frames(self) -> AsyncIterator[InboundFrame]:
        while (frame := await self._frames.get()) is not None:
            yield frame

    async def telephone_events(self) -> AsyncIterator[TelephoneEvent]:
        while True:
            yield await self._keys.get()

    def send_dtmf(self, digits: str) -> asyncio.Future:
        """Keys the agent sends: recorded with the instant (offset s) they were sent."""
        if not digits or any(k not in "0123456789*#ABCD" for k in digits):
            raise ValueError(f"not DTMF keys: {digits!r}")
        loop = asyncio.get_running_loop()
        self.keys_sent.append((loop.time() - self.t0, digits))
        done = loop.create_future()
        loop.call_later(0.16 * len(digits), done.set_result, None)  # ~100 ms a key + 60 ms gap
        return done

    def set_arrival_probe(self, probe: Callable[[float, float], None] | None) -> None:
        self._probe = probe

    def last_sent_pcm(self) -> np.ndarray | None:
        return self._last_sent

    def enqueue(self, pcm: np.ndarray, mark: str, last: bool = False) -> None:
        assert self.playout is not None
        self.playout.enqueue(pcm, mark)

    def mark_progress(self, mark: str) -> MarkProgress | None:
        assert self.playout is not None
        return self.playout.progress(mark)

    def flush(self) -> FlushResult:
        assert self.playout is not None
        return self.playout.flush()

    def pause(self) -> None:
        assert self.playout is not None
        self.playout.pause()

    def resume(self) -> None:
        assert self.playout is not None
        self.playout.resume()

    async def drained(self, playout_delay_ms: float | None = None) -> float:
        assert self.playout is not None
        return await self.playout.drained(playout_delay_ms)

    # ---------------------------------------------------------------- what the caller heard

    def agent_audio_spans(self, min_rms: float = 100.0, gap_s: float = 0.1) -> list[tuple[float, float]]:
        """(start, end) offsets of agent audio the caller received, gaps < gap_s merged."""
        spans: list[list[float]] = []
        for f in self.sent:
            if f.rms < min_rms:
                continue
            if spans and f.at - spans[-1][1] <= gap_s:
                spans[-1][1] = f.at + 0.02
            else:
                spans.append([f.at, f.at + 0.02])
        return [(a, b) for a, b in spans]

    def marks_heard(self) -> list[str]:
        out: list[str] = []
        for f in self.sent:
            for m in f.marks:
                if not out or out[-1] != m:
                    out.append(m)
        return out
