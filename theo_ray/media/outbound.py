"""The outbound half of a session: model-rate PCM in, one RTP packet per clock tick out.

Owns the per-codec send chain: the one outbound resampler (model rate -> codec rate),
the PlayoutQueue (marks, flush, pause/resume, drained), the idle fill, the encoder side
of the stream (sequence number, timestamp origin, marker bit) and the echo reference
(`last_sent_pcm`). The session's clock calls `tick()`; whether and where to send
(direction, latched peer) is the session's to say. Marks are passed through as given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from theo_ray.media.codecs import Codec
from theo_ray.media.dtmf_sender import DtmfSender
from theo_ray.media.media_stats import MediaStats, SendTiming
from theo_ray.media.playout import FlushResult, MarkProgress, PlayoutQueue
from theo_ray.media.resample import Resampler
from theo_ray.media.rtp import build_rtp_fast
from theo_ray.media.settings import MediaSettings
from theo_ray.media.comfort_noise import ComfortNoise


class OutboundPath:
    def __init__(
        self,
        settings: MediaSettings,
        model_rate: int,
        ssrc: int,
        stats: MediaStats,
        timing: SendTiming,
        on_sent: Callable[[int], None],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.model_rate = model_rate
        self._ssrc = ssrc
        self._stats = stats
        self._timing = timing
        self._on_sent = on_sent  # payload octets of each packet sent (RTCP's SR counts)
        self._clock = clock
        self._sleep = sleep
        self.playout: PlayoutQueue | None = None
        self._codec: Codec | None = None
        self._out_mark: str | None = None
        self._last_enqueue_at = 0.0
        self._last_send_time: float | None = None
        self._last_sent_pcm: np.ndarray | None = None
        self._idle_fill: ComfortNoise | None = None
        self._resume_marker = False
        self._transport: asyncio.DatagramTransport | None = None
        self._seq = 0
        self.ts_origin = 0
        self.dtmf: DtmfSender | None = None  # set by configure(); keys wait for telephone_event_pt
        self.telephone_event_pt: int | None = None

    def configure(self, codec: Codec) -> None:
        """A fresh send chain for `codec`; the new PlayoutQueue keeps the old one's listeners."""
        s = self.settings
        self._codec = codec
        rate = codec.sample_rate
        self._frame_samples = codec.samples_per_frame(s.ptime_ms)
        self.ts_step = codec.timestamp_step(s.ptime_ms)
        if self.dtmf is not None:
            self.dtmf.cancel()  # a codec change mid-key: the rest of the keys are not sent
        self.dtmf = DtmfSender(self.ts_step, s.ptime_ms)
        self._resampler = Resampler(self.model_rate, rate, s.resampler)
        self._idle_fill = (
            ComfortNoise(rate, level_dbfs=s.idle_fill_dbfs, seed=self._ssrc) if s.idle_fill_dbfs is not None else None
        )
        old = self.playout
        self.playout = PlayoutQueue(rate, self._frame_samples, s.playout_delay_ms, self._clock, self._sleep)
        if old is not None:
            for listener in old.listeners:
                self.playout.add_listener(listener)

    def begin(self, transport: asyncio.DatagramTransport, seq: int, ts_origin: int) -> None:
        """The socket is open: the stream's random first sequence number and timestamp."""
        self._transport = transport
        self._seq = seq
        self.ts_origin = ts_origin

    # ------------------------------------------------------------ the producer's side

    def enqueue(self, pcm: np.ndarray, mark: str, last: bool = False) -> None:
        playout = self.playout
        if playout is None:
            raise RuntimeError("start() the session before enqueueing audio")
        resampler = self._resampler
        if self._out_mark is not None and mark != self._out_mark and resampler.holds_samples:
            # The previous mark's tail belongs to it, not to the next one.
            playout.enqueue(resampler.flush(), self._out_mark)
        self._out_mark = mark
        playout.enqueue(resampler.process(pcm), mark)
        if last:
            playout.enqueue(resampler.flush(), mark)
        self._last_enqueue_at = self._clock()

    def mark_progress(self, mark: str) -> MarkProgress | None:
        assert self.playout is not None
        return self.playout.progress(mark)

    def flush(self) -> FlushResult:
        assert self.playout is not None
        self._resampler.reset()
        self._out_mark = None
        return self.playout.flush()

    def pause(self) -> None:
        assert self.playout is not None
        self.playout.pause()

    def resume(self) -> None:
        assert self.playout is not None
        self.playout.resume()

    async def drained(self, playout_delay_ms: float | None = None) -> float:
        assert self.playout is not None
        while True:
            heard_at = await self.playout.drained(playout_delay_ms)
            if not self._resampler.holds_samples:
                return heard_at
            # A tail is still inside the resampler: let the clock flush it, then wait again.
            await self._sleep(self.settings.ptime_ms / 1000.0)

    @property
    def last_sent_pcm(self) -> np.ndarray | None:
        return self._last_sent_pcm

    # ------------------------------------------------------------ the clock's side

    def tick(self, now: float, k: int, remote: tuple[str, int] | None) -> None:
        """Tick `k` (RTP timestamp origin + k steps): send one frame to `remote`, or none.

        `remote` is None while we must not send (no peer yet, or on hold)."""
        playout = self.playout
        assert playout is not None and self._codec is not None
        self._last_sent_pcm = None
        if remote is None:
            self._resume_marker = True  # held: the first packet after it starts a talkspurt
            return
        if (
            playout.pending_samples < self._frame_samples
            and self._resampler.holds_samples
            and now - self._last_enqueue_at >= 3 * self.settings.ptime_ms / 1000.0
        ):
            # The producer went quiet: release the resampler's tail rather than hold it.
            # Quiet means 3 frame times: a producer feeding every 20 ms (an echo, a live
            # relay) is often one tick late, and flushing it would cut its stream into
            # pieces with a filter restart (a click) at every cut.
            playout.enqueue(self._resampler.flush(), self._out_mark or "")
        timestamp = self.ts_origin + k * self.ts_step
        if self.dtmf is not None and self.dtmf.busy and self.telephone_event_pt is not None:
            event = self.dtmf.packet(timestamp)
            if event is not None:  # a key on the wire: the audio waits a tick
                self._send(build_rtp_fast(self.telephone_event_pt, self._seq, event.timestamp, self._ssrc,
                                          event.payload, event.marker), len(event.payload), remote)
                self._resume_marker = True
                return
        frame = playout.pull(now)
        if frame is None:
            if self._idle_fill is None:
                return
            pcm, marker = self._idle_fill.frame_array(self._frame_samples), False
        else:
            pcm, marker = frame.pcm, frame.talkspurt_start
        self._last_sent_pcm = pcm
        payload = self._codec.encode(pcm)
        marker = marker or self._resume_marker
        self._resume_marker = False
        self._send(build_rtp_fast(self._codec.payload_type, self._seq, timestamp, self._ssrc, payload, marker),
                   len(payload), remote)
        last = self._last_send_time
        if last is not None and not marker:
            self._timing.interval(now - last)
        self._last_send_time = now

    def _send(self, data: bytes, payload_octets: int, remote: tuple[str, int]) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        assert self._transport is not None
        self._transport.sendto(data, remote)
        self._stats.packets_out += 1
        self._stats.bytes_out += len(data)
        self._on_sent(payload_octets)
