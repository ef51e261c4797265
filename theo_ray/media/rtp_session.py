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

Here: the sockets, the SDP-driven setup (codec, remote, direction, SRTP) and the clock's
two hands. The jobs: ``rtp_ingress`` (the checks and routing of each datagram), ``inbound``,
``outbound``, ``rtcp_reporter``, ``media_stats``, ``tick_clock``, ``rtp_sockets``, ``media_latch``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import numpy as np

from theo_ray.media import codecs as codec_registry
from theo_ray.media.codecs import Codec
from theo_ray.media.direction import DIRECTIONS, Direction
from theo_ray.media.inbound import InboundFrame, InboundPath, TelephoneEvent
from theo_ray.media.jitter_buffer import JitterBuffer
from theo_ray.media.media_latch import MediaLatch
from theo_ray.media.media_stats import DropCounters, MediaStats, SendTiming
from theo_ray.media.outbound import OutboundPath
from theo_ray.media.playout import FlushResult, MarkProgress, PlayoutQueue
from theo_ray.media.rtcp_reporter import RtcpReporter
from theo_ray.media.rtp_ingress import RtpIngress
from theo_ray.media.rtp_sockets import DatagramHandler
from theo_ray.media.rtp_sockets import bind_even_pair as _bind_even_pair
from theo_ray.media.settings import MediaSettings
from theo_ray.media.srtp import ProtectingTransport, SrtpContext, SrtpKeys
from theo_ray.media.tick_clock import TickClock

# Importable from here as before: the session's public types, and the pair binding tests use.
__all__ = ["Direction", "DropCounters", "InboundFrame", "MediaStats", "RtpSession",
           "TelephoneEvent", "_bind_even_pair"]


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
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.ssrc = ssrc if ssrc is not None else self._rng.getrandbits(32)
        self.cname = cname
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
        self._running = False
        self._tasks: list[asyncio.Task] = []
        # One MediaStats the parts count into; stats() completes and copies it.
        self._stats = MediaStats(local_port=self.local_address[1], ssrc=self.ssrc)
        self._timing = SendTiming(s.send_error_window, s.ptime_ms)
        self._ticks = TickClock(s.ptime_ms, s.max_catchup_frames, clock, sleep)
        self._rtcp = RtcpReporter(self.ssrc, cname, self._stats, clock, wallclock, sleep, self._rng)
        self._inbound = InboundPath(s, self._stats, clock)
        self._ingress = RtpIngress(s, self._stats, self._latch, self._inbound, self._rtcp, clock, allowed_remote_hosts)
        self._outbound = OutboundPath(
            s, model_rate, self.ssrc, self._stats, self._timing, self._rtcp.note_sent, clock, sleep
        )
        self.codec: Codec | None = None  # filled by start()
        self._recorder = None  # set_recorder()

    # ------------------------------------------------------------ setup

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return self._latch.peer

    @property
    def direction(self) -> Direction:
        return self._ingress.direction

    @property
    def playout(self) -> PlayoutQueue | None:
        """The current codec's playout queue (start() again with a new codec replaces it)."""
        return self._outbound.playout

    @property
    def _jitter(self) -> JitterBuffer | None:
        return self._inbound.jitter  # tests read the buffer's resync counts

    @property
    def _events(self) -> asyncio.Queue[TelephoneEvent]:
        return self._inbound.events  # tests read the DTMF queue's length

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
        self.codec = codec_registry.create_codec(codec, payload_type)
        self._inbound.configure(self.codec, codec, payload_type)
        self._outbound.configure(self.codec)
        self._stats.codec, self._stats.payload_type = self.codec.name, self.codec.payload_type
        self._ingress.codec_clock_rate = self.codec.clock_rate
        self._ingress.telephone_event_pt = telephone_event_pt
        self._outbound.telephone_event_pt = telephone_event_pt
        self.set_direction(direction)
        if remote is not None:
            self.update_remote(remote[0], remote[1])
        if self._running:
            return
        loop = asyncio.get_running_loop()
        self._rtp_transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramHandler(self._ingress.on_rtp), sock=self._rtp_sock
        )
        self._rtcp_transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramHandler(self._ingress.on_rtcp_socket), sock=self._rtcp_sock
        )
        self._running = True
        seq = self._rng.getrandbits(16)  # drawn before the timestamp origin, as always
        self._outbound.begin(ProtectingTransport(self._rtp_transport, self._protect_rtp), seq,
                             self._rng.getrandbits(32))
        self._tasks = [
            asyncio.create_task(
                self._ticks.run(lambda: self._running, self._on_tick, self._on_stall),
                name=f"rtp-clock-{self.local_address[1]}",
            ),
            asyncio.create_task(
                self._rtcp.run(self.settings.rtcp_interval_s, lambda: self._running, self._build_report, self._send_rtcp),
                name=f"rtcp-{self.local_address[1]}",
            ),
        ]

    def set_srtp(self, keys: SrtpKeys | None) -> None:
        """SRTP (SDES keys from the SDP) from the next packet on, both ways; None: plain RTP.
        The same keys again (a session refresh) keep the running contexts and their indexes."""
        ingress = self._ingress
        if keys is None:
            ingress.srtp = None
        elif ingress.srtp is None or ingress.srtp.keys != keys:
            ingress.srtp = SrtpContext(keys, self._stats.drops)
        self._stats.srtp = keys is not None

    def _protect_rtp(self, data: bytes) -> bytes:
        srtp = self._ingress.srtp
        return data if srtp is None else srtp.protect(data)

    def update_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """New media address from SDP (first answer or re-INVITE): re-latches on the next
        packet, and takes the next SSRC at once."""
        self._latch.expect(host, port, rtcp_port)
        self._ingress.expect_sdp_host(host)
        self._stats.remote = f"{host}:{port}"

    def set_direction(self, direction: Direction) -> None:
        """Our SDP direction: recvonly/inactive stop sending (hold), sendonly/inactive stop receiving."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self._ingress.direction = direction
        self._stats.direction = direction

    # ------------------------------------------------------------ inbound (routing: RtpIngress)

    @property
    def ptime_ms(self) -> int:
        """Audio per packet and per inbound frame, ms."""
        return self.settings.ptime_ms

    @property
    def jitter_depth_ms(self) -> float:
        """How long an in-order packet waits before its frame is handed out: the jitter
        buffer's target depth in clock delivery, 0 in arrival delivery (and before start())."""
        return self._inbound.depth_ms

    def set_arrival_probe(self, probe: Callable[[float, float], None] | None) -> None:
        """`probe(rms, arrival_at)` for every accepted audio packet (int16 RMS at the codec
        rate), before its frame is handed out: the turn loop pauses playout from here on a
        barge-in. In clock delivery that is at its arrival, a jitter-buffer depth sooner than
        the frame; in arrival delivery, when the frame is (a reordered packet waits for its
        predecessor)."""
        self._inbound.set_arrival_probe(probe)

    async def read_frame(self) -> InboundFrame | None:
        """The next inbound frame; None once the session has stopped."""
        return await self._inbound.read_frame()

    async def frames(self) -> AsyncIterator[InboundFrame]:
        async for frame in self._inbound.frames():
            yield frame

    async def telephone_events(self) -> AsyncIterator[TelephoneEvent]:
        async for event in self._inbound.telephone_events():
            yield event

    def send_dtmf(self, digits: str, event_ms: int | None = None, gap_ms: int | None = None) -> asyncio.Future:
        """Send `digits` as RFC 4733 telephone events in the outbound stream (the audio
        waits while a key is on the wire); the future is done when the last was sent.
        ValueError when the peer negotiated no telephone-event or a key is not DTMF."""
        if self._ingress.telephone_event_pt is None or self._outbound.dtmf is None:
            raise ValueError("the peer negotiated no telephone-event: DTMF cannot be sent")
        return self._outbound.dtmf.queue(digits, event_ms, gap_ms)

    # ------------------------------------------------------------ outbound

    def enqueue(self, pcm: np.ndarray, mark: str, last: bool = False) -> None:
        """Queue int16 PCM at `model_rate` for playout; `last=True` ends the mark's audio."""
        self._outbound.enqueue(pcm, mark, last)

    def mark_progress(self, mark: str) -> MarkProgress | None:
        """How much of `mark` has been sent (None: never enqueued, or long forgotten)."""
        return self._outbound.mark_progress(mark)

    def flush(self) -> FlushResult:
        """Barge-in: nothing more is sent from the next tick on; returns what was dropped."""
        return self._outbound.flush()

    def pause(self) -> None:
        self._outbound.pause()

    def resume(self) -> None:
        self._outbound.resume()

    async def drained(self, playout_delay_ms: float | None = None) -> float:
        """Resolves when the last enqueued sample was sent + the playout delay (GAP 6)."""
        return await self._outbound.drained(playout_delay_ms)

    def last_sent_pcm(self) -> np.ndarray | None:
        """The frame sent at the latest tick (codec rate), None if nothing was sent: the
        echo reference for the turn loop's EchoGate."""
        return self._outbound.last_sent_pcm

    def set_recorder(self, recorder) -> None:
        """Record both directions on this session's clock (a media.call_recorder.CallRecorder,
        or None to stop): each decoded caller frame and each tick's played frame, codec rate."""
        self._recorder = self._inbound.recorder = recorder

    # ------------------------------------------------------------ the clock

    def _on_tick(self, now: float, deadline: float, k: int) -> None:
        self._timing.lateness(now - deadline)
        held = self._ingress.direction not in ("sendrecv", "sendonly")  # nothing goes out on hold
        self._outbound.tick(now, k, None if held else self._latch.peer)
        if self._recorder is not None:
            self._recorder.agent(self._outbound.last_sent_pcm, deadline)
        self._inbound.tick(deadline)

    def _on_stall(self, skipped: list[float]) -> None:
        # The loop stalled. Outbound jumps to the current tick (the RTP timestamp jumps
        # with it, as it should) instead of bursting stale frames; inbound still produces
        # every skipped tick, so VAD/STT time stays continuous.
        for tick_time in skipped:
            self._inbound.tick(tick_time)
        self._stats.clock_resyncs += 1

    # ------------------------------------------------------------ RTCP (receiving: RtpIngress)

    def _rtp_timestamp_at(self, now: float) -> int:
        """Our stream's RTP timestamp at clock time `now` (for the SR), unwrapped."""
        assert self.codec is not None
        return self._outbound.ts_origin + int(round((now - self._ticks.origin) * self.codec.clock_rate))

    def _build_report(self) -> bytes:
        if self.codec is None:
            return self._rtcp.build_report(None, None)
        return self._rtcp.build_report(self._inbound.reception, self._rtp_timestamp_at)

    def _send_rtcp(self, data: bytes) -> None:
        remote = self._latch.rtcp_peer
        if self._rtcp_transport is not None and remote is not None:
            srtp = self._ingress.srtp
            if srtp is not None:
                data = srtp.protect_rtcp(data)
            self._rtcp_transport.sendto(data, remote)
            self._stats.rtcp_out += 1

    # ------------------------------------------------------------ stop / stats

    async def stop(self) -> None:
        """BYE: stop sending at once, send RTCP BYE, close both sockets, end frames()."""
        if not self._running:
            self._rtp_sock.close()
            self._rtcp_sock.close()
            self._inbound.end()
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            self._send_rtcp(self._build_report() + self._rtcp.bye())
        except OSError:
            pass  # the peer is gone; the BYE is best effort
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._inbound.end()

    @property
    def running(self) -> bool:
        return self._running

    def stats(self) -> MediaStats:
        s = self._stats
        if self.codec is not None:
            self._inbound.fill_stats(self.codec.name)
        self._timing.fill(s)
        return msgspec.structs.replace(s, drops=msgspec.structs.replace(s.drops))
