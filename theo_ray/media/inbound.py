"""The inbound half of a session, from an accepted audio packet to 20 ms frames.

Owns the per-codec receive chain (jitter buffer, RFC 3550 reception statistics, decoder,
PLC, the one inbound resampler to `inbound_rate`) and what it hands out: the frame queue
(`frames()`, never a gap), RFC 4733 DTMF events and the barge-in arrival probe. Deciding
which packets are audio of the stream (addresses, latching, payload types) is the
session's; this part starts at `accept_audio`.

Delivery: "arrival" hands each frame out as soon as its packet is here in order (VAD/STT
gain the buffer's depth); "clock" hands out one per 20 ms tick after the adaptive depth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec
import numpy as np

from theo_ray.media import codecs as codec_registry
from theo_ray.media.codecs import Codec, PayloadError
from theo_ray.media.jitter_buffer import JitterBuffer, JitterFrame
from theo_ray.media.media_stats import MediaStats, fill_reception
from theo_ray.media.plc import PacketLossConcealer
from theo_ray.media.reception_stats import ReceptionStats
from theo_ray.media.resample import Resampler
from theo_ray.media.rtp import RtpPacket
from theo_ray.media.settings import MediaSettings
from theo_ray.media.telephone_event import TelephoneEventError, parse_telephone_event


class InboundFrame(msgspec.Struct):
    """20 ms of caller audio at the inbound rate (16 kHz int16)."""

    pcm: np.ndarray
    # When it was handed out: in clock delivery the tick's scheduled time (exactly ptime
    # apart, even across loop stalls); in arrival delivery the clock at hand-out.
    at: float
    received_at: float  # arrival of the packet it came from; 0.0 when concealed
    concealed: bool
    sequence: int = 0


class TelephoneEvent(msgspec.Struct, frozen=True):
    """An RFC 4733 DTMF event, reported once when its end packet arrives."""

    event: int  # 0-9, 10 = '*', 11 = '#', 12-15 = A-D
    duration: int  # timestamp units
    at: float


class InboundPath:
    def __init__(self, settings: MediaSettings, stats: MediaStats, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._stats = stats
        self._clock = clock
        self.arrival_delivery = settings.inbound_delivery == "arrival"
        # Both queues outlive codec changes (re-INVITE): the consumer never re-subscribes.
        self._frames: asyncio.Queue[InboundFrame | None] = asyncio.Queue()
        self.events: asyncio.Queue[TelephoneEvent] = asyncio.Queue(maxsize=64)
        self._last_event_ts: int | None = None
        # Barge-in fast path: called with (rms, arrival time) of each audio packet. In arrival
        # delivery from the frame path's own decode (the packet is handed out as it arrives);
        # in clock delivery before the jitter buffer, with a decoder of its own so that a
        # stateful codec's (G.722) main decoder never sees a packet twice.
        self._arrival_probe: Callable[[float, float], None] | None = None
        self._probe_decoder: Codec | None = None
        # A call recording's caller tap: `recorder.caller(pcm at the codec rate, at)` per frame.
        self.recorder = None
        # Filled by configure():
        self.decoder: Codec | None = None
        self.jitter: JitterBuffer | None = None

    def configure(self, codec: Codec, name: str, payload_type: int | None) -> None:
        """A fresh receive chain for `codec` (start(), or a re-INVITE's new codec)."""
        s = self.settings
        self.decoder = codec_registry.create_codec(name, payload_type)
        # Clock delivery probes packets ahead of the frame path, with a decoder of its own.
        self._probe_decoder = None if self.arrival_delivery else codec_registry.create_codec(name, payload_type)
        rate = codec.sample_rate
        frame_samples = codec.samples_per_frame(s.ptime_ms)
        self._inbound_frame_samples = s.inbound_rate * s.ptime_ms // 1000
        self.jitter = JitterBuffer(codec.clock_rate, s.ptime_ms, s.jitter_min_ms, s.jitter_max_ms)
        self.reception = ReceptionStats(codec.clock_rate)
        self.plc = PacketLossConcealer(rate, frame_samples)
        self._resampler = Resampler(rate, s.inbound_rate, s.resampler)
        self._fifo = np.zeros(0, dtype=np.int16)
        self._primed = self._resampler.passthrough
        if not self._primed:
            # Push one frame of made-up silence through first and drop what comes out: the
            # filter's start-up falls on it, so every real tick yields one whole frame and
            # no residue (= no buffering latency beyond the filter's own ~6 ms) stays behind.
            self._resampler.process(np.zeros(frame_samples, dtype=np.int16))

    # ------------------------------------------------------------ packets in

    def accept_audio(self, packet: RtpPacket, size: int, now: float) -> None:
        """An audio packet of the stream (the session checked address, SSRC and type)."""
        self._stats.packets_in += 1
        self._stats.bytes_in += size
        self.reception.update(packet.ssrc, packet.sequence, packet.timestamp, now)
        self.jitter.put(packet, now)
        if self.arrival_delivery:
            self._arrived(now)  # probes what it decodes (_decode_and_deliver)
        elif self._arrival_probe is not None and self._probe_decoder is not None:
            try:
                pcm = self._probe_decoder.decode(packet.payload)
            except (PayloadError, ValueError):
                return  # counted as garbage when the jitter buffer hands it out
            self._probe(pcm, now)

    def telephone_event(self, timestamp: int, payload: bytes) -> None:
        """An RFC 4733 packet: queue the event once, at its (first) end packet."""
        self._stats.telephone_event_packets += 1
        try:
            block = parse_telephone_event(payload)
        except TelephoneEventError:
            self._stats.drops.bad_telephone_event += 1
            return
        if block.end and timestamp != self._last_event_ts:
            # RFC 4733: the end packet is sent three times; report the event once.
            self._last_event_ts = timestamp
            event = TelephoneEvent(block.event, block.duration, self._clock())
            if self.events.full():
                self.events.get_nowait()
            self.events.put_nowait(event)

    def _probe(self, pcm: np.ndarray, arrival_at: float) -> None:
        if self._arrival_probe is not None and pcm.size:
            self._arrival_probe(float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))), arrival_at)

    def set_arrival_probe(self, probe: Callable[[float, float], None] | None) -> None:
        self._arrival_probe = probe

    @property
    def depth_ms(self) -> float:
        """How long an in-order packet waits before its frame is handed out."""
        if self.jitter is None or self.arrival_delivery:
            return 0.0
        return self.jitter.target_ms

    def fill_stats(self, codec_name: str) -> None:
        """This stream's reception figures (loss, jitter, buffer, MOS) into the shared stats."""
        assert self.jitter is not None
        fill_reception(
            self._stats, codec_name, self.reception, self.jitter, self.plc, self._clock(), self.settings.ptime_ms
        )

    # ------------------------------------------------------------ frames out

    def tick(self, tick_time: float) -> None:
        """The session clock's tick: in clock delivery the frame due now (or concealment)."""
        if self.arrival_delivery:
            self._arrived(self._clock())
            return
        frame = self.jitter.pop(tick_time)
        if frame is not None:
            self._decode_and_deliver(frame, tick_time)

    def _arrived(self, now: float) -> None:
        for frame in self.jitter.pop_arrived(now):
            self._decode_and_deliver(frame, now)

    def _decode_and_deliver(self, frame: JitterFrame, at: float) -> None:
        decoder = self.decoder
        assert decoder is not None
        if frame.payload is None:
            pcm = self.plc.conceal()
            concealed = True
        else:
            try:
                decoded = decoder.decode(frame.payload)
                if not decoded.size:
                    raise PayloadError("empty payload")  # an RTP header alone: no audio in it
            except (PayloadError, ValueError):
                self._stats.drops.garbage += 1
                pcm = self.plc.conceal()
                concealed = True
            else:
                if self.arrival_delivery:
                    self._probe(decoded, frame.received_at)
                pcm = self.plc.good(decoded)
                concealed = False
        if self.recorder is not None:
            self.recorder.caller(pcm, at)
        out = self._resampler.process(pcm)
        fifo = np.concatenate((self._fifo, out)) if self._fifo.size else out
        if not self._primed and fifo.size:
            # Pad the resampler's start-up delay once, so that every tick yields exactly
            # one whole frame (no residue = no extra buffering latency).
            self._primed = True
            short = (-fifo.size) % self._inbound_frame_samples
            fifo = np.concatenate((np.zeros(short, dtype=np.int16), fifo))
        n = self._inbound_frame_samples
        start = 0
        while fifo.size - start >= n:
            self._deliver(InboundFrame(fifo[start : start + n], at, frame.received_at, concealed, frame.sequence))
            start += n
        self._fifo = fifo[start:]

    def _deliver(self, frame: InboundFrame) -> None:
        queue = self._frames
        if queue.qsize() >= self.settings.inbound_queue_frames:
            queue.get_nowait()  # the consumer is too slow: drop the oldest, keep it live
            self._stats.inbound_frames_dropped += 1
        queue.put_nowait(frame)
        self._stats.inbound_frames += 1

    def end(self) -> None:
        """No more frames: `read_frame()` returns None and `frames()` stops."""
        self._frames.put_nowait(None)

    async def read_frame(self) -> InboundFrame | None:
        return await self._frames.get()

    async def frames(self) -> AsyncIterator[InboundFrame]:
        while True:
            frame = await self._frames.get()
            if frame is None:
                return
            yield frame

    async def telephone_events(self) -> AsyncIterator[TelephoneEvent]:
        while True:
            yield await self.events.get()
