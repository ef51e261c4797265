"""One call's RTP/RTCP endpoint (asyncio): the whole media plane a CallActor owns.

- binds an even RTP port and RTCP on port + 1 (port 0: pick a free even pair);
- inbound: datagram -> checks (address, parse, payload type) -> jitter buffer -> decode ->
  PLC -> resample to 16 kHz -> `frames()` (never a gap): by default each frame as soon as
  its packet is here in order (`inbound_delivery = "arrival"`: VAD/STT gain the buffer's
  depth), or one per 20 ms tick after the adaptive depth ("clock");
- outbound: `enqueue(pcm at the model rate, mark)` -> resample once to the codec rate ->
  PlayoutQueue -> one packet per 20 ms tick on ABSOLUTE monotonic deadlines (tick k is
  due at t0 + k * ptime, so there is no drift however long the call), marker bit on
  each talkspurt start, nothing sent when there is nothing to play;
- symmetric RTP / media latching (media_latch.py): replies go where the peer's packets
  come from (latched on the first valid packet); RTP from any other address, RTCP from
  any other port and audio of a foreign SSRC are dropped and counted;
- RTCP SR/RR + SDES every ~5 s (randomised), RTT from LSR/DLSR, BYE on stop();
- `stats()` gives a MediaStats snapshot (counters, jitter, loss, RTT, MOS, send timing).

The two directions share one clock task per call: one wake-up per 20 ms per call.
Every malformed or unexpected datagram is dropped and counted; none raises.

Over 400 lines: one real-time clock drives both directions, RTCP and latching share the
socket state; the split by job (RTCP reporter, inbound decode/PLC/DTMF, stats) is issue 14's.
The latching rule itself lives in ``media_latch``.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import numpy as np

from theo_ray.media import codecs as codec_registry
from theo_ray.media.codecs import Codec, PayloadError
from theo_ray.media.direction import DIRECTIONS, Direction
from theo_ray.media.emodel import estimate_mos
from theo_ray.media.jitter_buffer import JitterBuffer, JitterFrame
from theo_ray.media.media_latch import DROP, SWITCH, MediaLatch
from theo_ray.media.plc import PacketLossConcealer
from theo_ray.media.playout import FlushResult, MarkProgress, PlayoutQueue
from theo_ray.media.reception_stats import ReceptionStats
from theo_ray.media.resample import Resampler
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
from theo_ray.media.rtp import RtpPacket, RtpParseError, build_rtp_fast, looks_like_rtcp, parse_rtp
from theo_ray.turn.fillers import ComfortNoise
from theo_ray.media.settings import MediaSettings

COMFORT_NOISE_PT = 13  # RFC 3389


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
    not_started: int = 0  # arrived before start() chose a codec
    not_receiving: int = 0  # direction is sendonly/inactive (hold)


class MediaStats(msgspec.Struct):
    codec: str = ""
    payload_type: int = -1
    local_port: int = 0
    remote: str = ""
    direction: str = "sendrecv"
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


def _bind_even_pair(host: str, port: int, settings: MediaSettings) -> tuple[socket.socket, socket.socket]:
    family = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][0]

    def try_pair(rtp_port: int) -> tuple[socket.socket, socket.socket] | None:
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, rtp_port))
            actual = rtp.getsockname()[1]
            if actual % 2:
                rtp.close()
                return None
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp.bind((host, actual + 1))
            except OSError:
                rtcp.close()
                rtp.close()
                return None
            return rtp, rtcp
        except OSError:
            rtp.close()
            if rtp_port:
                return None
            raise

    if port:
        if port % 2:
            raise ValueError("RTP port must be even (RTCP takes port + 1)")
        pair = try_pair(port)
        if pair is None:
            raise OSError(f"RTP/RTCP ports {port}/{port + 1} on {host} are not free")
        return pair
    for _ in range(200):
        if settings.rtp_port_min and settings.rtp_port_max:
            candidate = random.randrange(settings.rtp_port_min, settings.rtp_port_max) & ~1
        else:
            candidate = 0
        pair = try_pair(candidate)
        if pair is not None:
            return pair
    raise OSError(f"no free even RTP/RTCP port pair on {host}")


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple], None]) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: nothing to do, keep going.
        return None


class RtpSession:
    def __init__(
        self,
        settings: MediaSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model_rate: int = 24000,
        allowed_remote_hosts: list[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssrc: int | None = None,
        cname: str = "theo",
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or MediaSettings()
        self.model_rate = model_rate
        self._clock = clock
        self._wallclock = wallclock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.ssrc = ssrc if ssrc is not None else self._rng.getrandbits(32)
        self.cname = cname
        self._explicit_allowed = allowed_remote_hosts is not None
        self._allowed: frozenset[str] | None = frozenset(allowed_remote_hosts) if allowed_remote_hosts else None
        self._rtp_sock, self._rtcp_sock = _bind_even_pair(host, port, self.settings)
        self.local_address: tuple[str, int] = self._rtp_sock.getsockname()[:2]
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        s = self.settings
        self._latch = MediaLatch(
            s.ssrc_switch_silence_ms / 1000.0,
            s.ssrc_switch_packets,
            # Enough for a newcomer that starts right as the stream stops, plus some slack.
            min(64, s.ssrc_switch_packets + s.ssrc_switch_silence_ms // s.ptime_ms + 2),
        )
        self._direction: Direction = "sendrecv"
        self._running = False
        self._tasks: list[asyncio.Task] = []
        self._frames: asyncio.Queue[InboundFrame | None] = asyncio.Queue()
        self._stats = MediaStats(local_port=self.local_address[1], ssrc=self.ssrc)
        self._send_errors = np.zeros(self.settings.send_error_window, dtype=np.float64)
        self._send_lateness = np.zeros(self.settings.send_error_window, dtype=np.float64)
        self._send_samples = 0
        self._lateness_samples = 0
        self._clock_origin = 0.0
        self._last_send_time: float | None = None
        self._last_sent_pcm: np.ndarray | None = None
        self._idle_fill: ComfortNoise | None = None
        self._resume_marker = False
        self._telephone_event_pt: int | None = None
        self._last_event_ts: int | None = None
        self._events: asyncio.Queue[TelephoneEvent] = asyncio.Queue(maxsize=64)
        # Filled by start():
        self.codec: Codec | None = None
        self._decoder: Codec | None = None
        # Barge-in fast path: called with (rms, arrival time) of each audio packet. In arrival
        # delivery from the frame path's own decode (the packet is handed out as it arrives);
        # in clock delivery before the jitter buffer, with a decoder of its own so that a
        # stateful codec's (G.722) main decoder never sees a packet twice.
        self._arrival_probe: Callable[[float, float], None] | None = None
        self._probe_decoder: Codec | None = None
        self._jitter: JitterBuffer | None = None
        self._arrival_delivery = self.settings.inbound_delivery == "arrival"
        self.playout: PlayoutQueue | None = None
        self._out_mark: str | None = None
        self._last_enqueue_at = 0.0
        # RTCP state.
        self._octets_out = 0
        self._sent_since_report = False
        self._last_sr_ntp_mid = 0  # LSR to echo: middle 32 bits of the peer's last SR
        self._last_sr_arrival = 0.0

    # ------------------------------------------------------------ setup

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return self._latch.peer

    @property
    def direction(self) -> Direction:
        return self._direction

    def _configure_codec(self, codec: str, payload_type: int | None) -> None:
        s = self.settings
        self.codec = codec_registry.create_codec(codec, payload_type)
        self._decoder = codec_registry.create_codec(codec, payload_type)
        # Clock delivery probes packets ahead of the frame path, with a decoder of its own.
        self._probe_decoder = None if self._arrival_delivery else codec_registry.create_codec(codec, payload_type)
        rate = self.codec.sample_rate
        self._frame_samples = self.codec.samples_per_frame(s.ptime_ms)
        self._ts_step = self.codec.timestamp_step(s.ptime_ms)
        self._inbound_frame_samples = s.inbound_rate * s.ptime_ms // 1000
        self._jitter = JitterBuffer(self.codec.clock_rate, s.ptime_ms, s.jitter_min_ms, s.jitter_max_ms)
        self._reception = ReceptionStats(self.codec.clock_rate)
        self._plc = PacketLossConcealer(rate, self._frame_samples)
        self._in_resampler = Resampler(rate, s.inbound_rate, s.resampler)
        self._out_resampler = Resampler(self.model_rate, rate, s.resampler)
        self._in_fifo = np.zeros(0, dtype=np.int16)
        self._in_primed = self._in_resampler.passthrough
        if not self._in_primed:
            # Push one frame of made-up silence through first and drop what comes out: the
            # filter's start-up falls on it, so every real tick yields one whole frame and
            # no residue (= no buffering latency beyond the filter's own ~6 ms) stays behind.
            self._in_resampler.process(np.zeros(self._frame_samples, dtype=np.int16))
        self._idle_fill = (
            ComfortNoise(rate, level_dbfs=s.idle_fill_dbfs, seed=self.ssrc) if s.idle_fill_dbfs is not None else None
        )
        old = self.playout
        self.playout = PlayoutQueue(rate, self._frame_samples, s.playout_delay_ms, self._clock, self._sleep)
        if old is not None:
            for listener in old.listeners:
                self.playout.add_listener(listener)
        self._stats.codec = self.codec.name
        self._stats.payload_type = self.codec.payload_type

    async def start(
        self,
        codec: str,
        remote: tuple[str, int] | None = None,
        payload_type: int | None = None,
        telephone_event_pt: int | None = None,
        direction: Direction = "sendrecv",
    ) -> None:
        """Choose the codec (from the SDP answer) and start both directions.

        Calling it again (re-INVITE with another codec) swaps the codec between ticks.
        `remote` is the SDP's media address; replies latch to the real source anyway.
        """
        self._configure_codec(codec, payload_type)
        self._telephone_event_pt = telephone_event_pt
        self.set_direction(direction)
        if remote is not None:
            self.update_remote(remote[0], remote[1])
        if self._running:
            return
        loop = asyncio.get_running_loop()
        self._rtp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagram(self._on_rtp), sock=self._rtp_sock
        )
        self._rtcp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagram(self._on_rtcp_socket), sock=self._rtcp_sock
        )
        self._running = True
        self._seq = self._rng.getrandbits(16)
        self._ts_origin = self._rng.getrandbits(32)
        self._tasks = [
            asyncio.create_task(self._run_clock(), name=f"rtp-clock-{self.local_address[1]}"),
            asyncio.create_task(self._run_rtcp(), name=f"rtcp-{self.local_address[1]}"),
        ]

    def update_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """New media address from SDP (first answer or re-INVITE): re-latches on the next
        packet, and takes the next SSRC at once."""
        self._latch.expect(host, port, rtcp_port)
        if not self._explicit_allowed:
            self._allowed = frozenset({host})
        self._stats.remote = f"{host}:{port}"

    def set_direction(self, direction: Direction) -> None:
        """Our SDP direction: recvonly/inactive stop sending (hold), sendonly/inactive stop receiving."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self._direction = direction
        self._stats.direction = direction

    # ------------------------------------------------------------ inbound

    def _address_allowed(self, addr: tuple) -> bool:
        if self._allowed is not None and addr[0] not in self._allowed:
            return False
        return True

    def _on_rtp(self, data: bytes, addr: tuple) -> None:
        drops = self._stats.drops
        latch = self._latch
        relatch = not latch.latched
        if relatch:
            if not self._address_allowed(addr):
                drops.foreign_address += 1
                return
        elif addr[1] != latch.port or addr[0] != latch.host:
            # Symmetric RTP: only the latched address, or the SDP's own one taking it back.
            if not (latch.is_sdp(addr[0], addr[1]) and self._address_allowed(addr)):
                drops.foreign_address += 1
                return
            relatch = True
        if looks_like_rtcp(data):  # rtcp-mux peer (RFC 5761)
            self._handle_rtcp(data, addr)
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
        codec = self._decoder
        if codec is None:
            drops.not_started += 1
            return
        if self._direction in ("sendonly", "inactive"):
            drops.not_receiving += 1
            return
        if packet.payload_type != codec.payload_type:
            if packet.ssrc == latch.ssrc:
                latch.ssrc_heard_at = self._clock()  # comfort noise / DTMF: the stream is alive
            if packet.payload_type == self._telephone_event_pt:
                self._on_telephone_event(packet.timestamp, packet.payload)
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
                    self._accept_audio(held, size, arrival)
        self._accept_audio(packet, len(data), now)

    def _accept_audio(self, packet: RtpPacket, size: int, now: float) -> None:
        self._stats.packets_in += 1
        self._stats.bytes_in += size
        self._reception.update(packet.ssrc, packet.sequence, packet.timestamp, now)
        self._jitter.put(packet, now)
        if self._arrival_delivery:
            self._inbound_arrived(now)  # probes what it decodes (_decode_and_deliver)
        elif self._arrival_probe is not None and self._probe_decoder is not None:
            try:
                pcm = self._probe_decoder.decode(packet.payload)
            except (PayloadError, ValueError):
                return  # counted as garbage when the jitter buffer hands it out
            self._probe(pcm, now)

    def _probe(self, pcm: np.ndarray, arrival_at: float) -> None:
        if self._arrival_probe is not None and pcm.size:
            self._arrival_probe(float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))), arrival_at)

    @property
    def jitter_depth_ms(self) -> float:
        """How long an in-order packet waits before its frame is handed out: the jitter
        buffer's target depth in clock delivery, 0 in arrival delivery (and before start())."""
        if self._jitter is None or self._arrival_delivery:
            return 0.0
        return self._jitter.target_ms

    def set_arrival_probe(self, probe: Callable[[float, float], None] | None) -> None:
        """`probe(rms, arrival_at)` for every accepted audio packet (int16 RMS at the codec
        rate), before its frame is handed out: the turn loop pauses playout from here on a
        barge-in. In clock delivery that is at its arrival, a jitter-buffer depth sooner than
        the frame; in arrival delivery, when the frame is (a reordered packet waits for its
        predecessor)."""
        self._arrival_probe = probe

    def _on_telephone_event(self, timestamp: int, payload: bytes) -> None:
        self._stats.telephone_event_packets += 1
        if len(payload) < 4:
            self._stats.drops.garbage += 1
            return
        end = payload[1] & 0x80
        if end and timestamp != self._last_event_ts:
            # RFC 4733: the end packet is sent three times; report the event once.
            self._last_event_ts = timestamp
            event = TelephoneEvent(payload[0], int.from_bytes(payload[2:4], "big"), self._clock())
            if self._events.full():
                self._events.get_nowait()
            self._events.put_nowait(event)

    def _inbound_tick(self, tick_time: float) -> None:
        if self._arrival_delivery:
            self._inbound_arrived(self._clock())
            return
        frame = self._jitter.pop(tick_time)
        if frame is not None:
            self._decode_and_deliver(frame, tick_time)

    def _inbound_arrived(self, now: float) -> None:
        for frame in self._jitter.pop_arrived(now):
            self._decode_and_deliver(frame, now)

    def _decode_and_deliver(self, frame: JitterFrame, at: float) -> None:
        decoder = self._decoder
        assert decoder is not None
        if frame.payload is None:
            pcm = self._plc.conceal()
            concealed = True
        else:
            try:
                decoded = decoder.decode(frame.payload)
            except (PayloadError, ValueError):
                self._stats.drops.garbage += 1
                pcm = self._plc.conceal()
                concealed = True
            else:
                if self._arrival_delivery:
                    self._probe(decoded, frame.received_at)
                pcm = self._plc.good(decoded)
                concealed = False
        out = self._in_resampler.process(pcm)
        fifo = np.concatenate((self._in_fifo, out)) if self._in_fifo.size else out
        if not self._in_primed and fifo.size:
            # Pad the resampler's start-up delay once, so that every tick yields exactly
            # one whole frame (no residue = no extra buffering latency).
            self._in_primed = True
            short = (-fifo.size) % self._inbound_frame_samples
            fifo = np.concatenate((np.zeros(short, dtype=np.int16), fifo))
        n = self._inbound_frame_samples
        start = 0
        while fifo.size - start >= n:
            self._deliver(
                InboundFrame(fifo[start : start + n], at, frame.received_at, concealed, frame.sequence)
            )
            start += n
        self._in_fifo = fifo[start:]

    def _deliver(self, frame: InboundFrame) -> None:
        queue = self._frames
        if queue.qsize() >= self.settings.inbound_queue_frames:
            queue.get_nowait()
            self._stats.inbound_frames_dropped += 1
        queue.put_nowait(frame)
        self._stats.inbound_frames += 1

    async def read_frame(self) -> InboundFrame | None:
        """The next inbound frame; None once the session has stopped."""
        return await self._frames.get()

    async def frames(self) -> AsyncIterator[InboundFrame]:
        while True:
            frame = await self._frames.get()
            if frame is None:
                return
            yield frame

    async def telephone_events(self) -> AsyncIterator[TelephoneEvent]:
        while True:
            yield await self._events.get()

    # ------------------------------------------------------------ outbound

    def enqueue(self, pcm: np.ndarray, mark: str, last: bool = False) -> None:
        """Queue int16 PCM at `model_rate` for playout; `last=True` ends the mark's audio."""
        playout = self.playout
        if playout is None:
            raise RuntimeError("start() the session before enqueueing audio")
        resampler = self._out_resampler
        if self._out_mark is not None and mark != self._out_mark and resampler.holds_samples:
            playout.enqueue(resampler.flush(), self._out_mark)
        self._out_mark = mark
        playout.enqueue(resampler.process(pcm), mark)
        if last:
            playout.enqueue(resampler.flush(), mark)
        self._last_enqueue_at = self._clock()

    def mark_progress(self, mark: str) -> MarkProgress | None:
        """How much of `mark` has been sent (None: never enqueued, or long forgotten)."""
        assert self.playout is not None
        return self.playout.progress(mark)

    def flush(self) -> FlushResult:
        """Barge-in: nothing more is sent from the next tick on; returns what was dropped."""
        assert self.playout is not None
        self._out_resampler.reset()
        self._out_mark = None
        return self.playout.flush()

    def pause(self) -> None:
        assert self.playout is not None
        self.playout.pause()

    def resume(self) -> None:
        assert self.playout is not None
        self.playout.resume()

    async def drained(self, playout_delay_ms: float | None = None) -> float:
        """Resolves when the last enqueued sample was sent + the playout delay (GAP 6)."""
        assert self.playout is not None
        while True:
            heard_at = await self.playout.drained(playout_delay_ms)
            if not self._out_resampler.holds_samples:
                return heard_at
            # A tail is still inside the resampler: let the clock flush it, then wait again.
            await self._sleep(self.settings.ptime_ms / 1000.0)

    def last_sent_pcm(self) -> np.ndarray | None:
        """The frame sent at the latest tick (codec rate), None if nothing was sent: the
        echo reference for the turn loop's EchoGate."""
        return self._last_sent_pcm

    def _outbound_tick(self, now: float, k: int) -> None:
        playout = self.playout
        assert playout is not None and self.codec is not None
        self._last_sent_pcm = None
        remote = self._latch.peer
        if self._direction not in ("sendrecv", "sendonly") or remote is None:
            self._resume_marker = True  # held: the first packet after it starts a talkspurt
            return
        if (
            playout.pending_samples < self._frame_samples
            and self._out_resampler.holds_samples
            and now - self._last_enqueue_at >= 3 * self.settings.ptime_ms / 1000.0
        ):
            # The producer went quiet: release the resampler's tail rather than hold it.
            # Quiet means 3 frame times: a producer feeding every 20 ms (an echo, a live
            # relay) is often one tick late, and flushing it would cut its stream into
            # pieces with a filter restart (a click) at every cut.
            playout.enqueue(self._out_resampler.flush(), self._out_mark or "")
        frame = playout.pull(now)
        if frame is None:
            if self._idle_fill is None:
                return
            pcm, marker = self._idle_fill.frame_array(self._frame_samples), False
        else:
            pcm, marker = frame.pcm, frame.talkspurt_start
        self._last_sent_pcm = pcm
        payload = self.codec.encode(pcm)
        timestamp = self._ts_origin + k * self._ts_step
        marker = marker or self._resume_marker
        self._resume_marker = False
        data = build_rtp_fast(self.codec.payload_type, self._seq, timestamp, self.ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        assert self._rtp_transport is not None
        self._rtp_transport.sendto(data, remote)
        self._stats.packets_out += 1
        self._stats.bytes_out += len(data)
        self._octets_out += len(payload)
        self._sent_since_report = True
        last = self._last_send_time
        if last is not None and not marker:
            i = self._send_samples % self._send_errors.size
            self._send_errors[i] = abs((now - last) - self.settings.ptime_ms / 1000.0)
            self._send_samples += 1
        self._last_send_time = now

    # ------------------------------------------------------------ the clock

    async def _run_clock(self) -> None:
        ptime = self.settings.ptime_ms / 1000.0
        origin = self._clock()
        self._clock_origin = origin
        k = 0
        max_behind = self.settings.max_catchup_frames * ptime
        lateness_i = 0
        while self._running:
            deadline = origin + k * ptime
            wait = deadline - self._clock()
            if wait > 0:
                await self._sleep(wait)
                if not self._running:
                    return
            now = self._clock()
            if now - deadline > max_behind:
                # The loop stalled. Outbound jumps to the current tick (the RTP timestamp
                # jumps with it, as it should) instead of bursting stale frames; inbound
                # still produces every skipped tick, so VAD/STT time stays continuous.
                target = math.ceil((now - origin) / ptime)
                for skipped in range(k, target):
                    self._inbound_tick(origin + skipped * ptime)
                k = target
                self._stats.clock_resyncs += 1
                continue
            self._send_lateness[lateness_i % self._send_lateness.size] = now - deadline
            lateness_i += 1
            self._lateness_samples = lateness_i
            self._outbound_tick(now, k)
            self._inbound_tick(deadline)
            k += 1

    # ------------------------------------------------------------ RTCP

    def _on_rtcp_socket(self, data: bytes, addr: tuple) -> None:
        if self._handle_rtcp(data, addr):
            # Symmetric RTCP, within the accepted addresses: report to where reports come from.
            self._latch.rtcp_heard(addr[0], addr[1])

    def _handle_rtcp(self, data: bytes, addr: tuple) -> bool:
        """One RTCP datagram (RTCP socket or rtcp-mux); True if it was taken."""
        if not (self._latch.rtcp_accepts(addr[0], addr[1]) and self._address_allowed(addr)):
            # Only the peer's RTCP port (RTP port + 1, the SDP's a=rtcp) or its RTP port (mux).
            self._stats.drops.foreign_rtcp += 1
            return False
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
                        self._on_report_about_us(block)
        return True

    def _on_report_about_us(self, block: ReportBlock) -> None:
        stats = self._stats
        stats.remote_fraction_lost = block.fraction_lost / 256.0
        stats.remote_cumulative_lost = block.cumulative_lost
        if self.codec is not None:
            stats.remote_jitter_ms = block.jitter * 1000.0 / self.codec.clock_rate
        if block.last_sr:
            now_mid = ntp_middle32(ntp_from_unix(self._wallclock()))
            rtt = ((now_mid - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF) / 65536.0
            if rtt < 60.0:  # anything bigger is a wrapped (bogus) value
                stats.rtt_ms = rtt * 1000.0

    def _build_report(self) -> bytes:
        blocks = []
        if self.codec is not None:
            dlsr = 0
            if self._last_sr_ntp_mid:
                dlsr = int((self._clock() - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
            block = self._reception.report_block(self._last_sr_ntp_mid, dlsr)
            if block is not None:
                blocks.append(block)
        if self._sent_since_report and self.codec is not None:
            now = self._clock()
            rtp_ts = self._ts_origin + int(round((now - self._clock_origin) * self.codec.clock_rate))
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

    def _send_rtcp(self, data: bytes) -> None:
        remote = self._latch.rtcp_peer
        if self._rtcp_transport is not None and remote is not None:
            self._rtcp_transport.sendto(data, remote)
            self._stats.rtcp_out += 1

    async def _run_rtcp(self) -> None:
        interval = self.settings.rtcp_interval_s
        while self._running:
            await self._sleep(interval * self._rng.uniform(0.5, 1.5))
            if not self._running:
                return
            self._send_rtcp(self._build_report())

    # ------------------------------------------------------------ stop / stats

    async def stop(self) -> None:
        """BYE: stop sending at once, send RTCP BYE, close both sockets, end frames()."""
        if not self._running:
            self._rtp_sock.close()
            self._rtcp_sock.close()
            self._frames.put_nowait(None)
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            self._send_rtcp(self._build_report() + build_packet(Bye([self.ssrc], "call ended")))
        except OSError:
            pass  # the peer is gone; the BYE is best effort
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._frames.put_nowait(None)

    @property
    def running(self) -> bool:
        return self._running

    def stats(self) -> MediaStats:
        s = self._stats
        if self.codec is not None:
            rec = self._reception
            jb = self._jitter.stats
            s.expected = rec.expected
            s.lost = rec.cumulative_lost
            s.fraction_lost = rec.last_fraction_lost / 256.0
            s.jitter_ms = rec.jitter_ms
            s.jitter_mean_ms = rec.mean_jitter_ms
            s.late = jb.late
            s.duplicates = jb.duplicates
            s.concealed_frames = self._plc.concealed_frames
            s.jitter_buffer_target_ms = self._jitter.target_ms
            s.jitter_buffer_depth_ms = self._jitter.depth_ms(self._clock())
            if rec.expected > 0:
                loss_pct = 100.0 * max(0, rec.cumulative_lost + jb.late) / rec.expected
                one_way = (s.rtt_ms or 0.0) / 2.0
                s.mos = round(
                    estimate_mos(self.codec.name, one_way, s.jitter_buffer_target_ms, loss_pct, self.settings.ptime_ms),
                    3,
                )
        n = min(self._send_samples, self._send_errors.size)
        if n:
            errors = self._send_errors[:n] * 1000.0
            s.send_interval_error_p50_ms = float(np.percentile(errors, 50))
            s.send_interval_error_p99_ms = float(np.percentile(errors, 99))
            s.send_interval_error_max_ms = float(errors.max())
        m = min(self._lateness_samples, self._send_lateness.size)
        if m:
            s.send_lateness_p99_ms = float(np.percentile(self._send_lateness[:m], 99) * 1000.0)
        return msgspec.structs.replace(s, drops=msgspec.structs.replace(s.drops))

